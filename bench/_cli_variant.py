"""Run the palhm CLI with one data-path variant patched in, for exp_cli_variants.py.

    PALHM_VARIANT=mmap:8 python bench/_cli_variant.py -q -f CFG run b

Variants (the value of $PALHM_VARIANT):

  current        palhm as it is
  mmap:W         no copy out of the pipe: splice it into the object file, then hash
                 the new bytes through a read-only mapping of the file, W MiB windows
  midpipe:K      the pipes *between* stages K KiB instead of 1 MiB (the last one,
                 into palhm, unchanged)
  blake3:N       blake3 spread over N threads (0 = as many as it likes)
  nowriteback    no early write-out (localfs leaves it all to the fsync)

Block sizes need no patch: exp_cli_variants.py writes them into the config. These
patches are experiments: they replace palhm internals and are not part of palhm.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import sys
from typing import Any

import palhm.backends.localfs as localfs
import palhm.engine.checksum as checksum
import palhm.engine.execute as execute
import palhm.engine.pump as pump
from palhm.engine.spawn import PIPE_SIZE

_F_SETPIPE_SZ = 1031


def _mmap_hashing(window_mib: int) -> None:
    window = window_mib << 20
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_long,
    ]  # fmt: skip
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    failed = ctypes.c_void_p(-1).value
    plain_init, plain_splice = pump.Pump.__init__, pump.Pump._splice

    def init(self: Any, fd: int, sink: Any, hasher: Any, *rest: Any) -> None:
        plain_init(self, fd, sink, hasher, *rest)
        if hasher is None:
            return
        self.splice_to, self.view = sink.splice_fd(), None
        # the object's descriptor is write-only: a mapping needs one open for reading
        self.reader = os.open(f"/proc/self/fd/{self.splice_to}", os.O_RDONLY | os.O_CLOEXEC)
        self.mapped, self.mapped_at, self.hashed = None, 0, 0

    def spliced(self: Any) -> int:
        count = plain_splice(self)
        while self.hasher is not None and self.hashed < self.size:
            if self.mapped is None or self.hashed >= self.mapped_at + window:
                if self.mapped is not None:
                    self.mapped_view.release()
                    libc.munmap(self.mapped, window)
                self.mapped_at = self.hashed - self.hashed % window
                # libc's mmap: Python's refuses a window past the end of the file
                self.mapped = libc.mmap(
                    None, window, mmap.PROT_READ, mmap.MAP_SHARED, self.reader, self.mapped_at
                )
                if self.mapped == failed:
                    raise OSError(ctypes.get_errno(), "mmap")
                memory = (ctypes.c_char * window).from_address(self.mapped)
                self.mapped_view = memoryview(memory).cast("B")
            stop = min(self.size, self.mapped_at + window)
            self.hasher.update(
                self.mapped_view[self.hashed - self.mapped_at : stop - self.mapped_at]
            )
            self.hashed = stop
        return count

    pump.Pump.__init__ = init  # type: ignore[method-assign]
    pump.Pump._splice = spliced  # type: ignore[method-assign]


def _middle_pipes(kib: int) -> None:
    plain_pipe, plain_spawn = execute.data_pipe, execute._spawn_stages

    def small_pipe() -> tuple[int, int]:
        read_end, write_end = plain_pipe()
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, kib << 10)
        return read_end, write_end

    def spawn_stages(run: Any, stages: Any, *, discard: bool) -> int | None:
        # every pipe gets K KiB, then the last one (palhm's) gets its usual size back
        execute.data_pipe = small_pipe
        try:
            last = plain_spawn(run, stages, discard=discard)
        finally:
            execute.data_pipe = plain_pipe
        if last is not None:
            fcntl.fcntl(last, _F_SETPIPE_SZ, PIPE_SIZE)
        return last

    execute._spawn_stages = spawn_stages


def apply(variant: str) -> None:
    name, _, value = variant.partition(":")
    if name == "mmap":
        _mmap_hashing(int(value or 8))
    elif name == "midpipe":
        _middle_pipes(int(value))
    elif name == "blake3":
        import blake3

        checksum.BLAKE3_MAX_THREADS = int(value) or blake3.blake3.AUTO  # type: ignore[misc]
    elif name == "nowriteback":
        localfs.WRITEBACK_STEP = 1 << 62  # type: ignore[misc]
    elif name != "current":
        raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    apply(os.environ.get("PALHM_VARIANT", "current"))
    from palhm.cli.main import main as palhm_main

    sys.exit(palhm_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
