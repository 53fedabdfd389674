"""The experiment behind the data path: ways to move a pipe into a file (and hash it),
outside palhm, so that only the mechanism differs.

`head -c SIZE /dev/zero | cat` writes into a 1 MiB pipe; this process moves it into
FILE (then fsync) by one of:

  readwrite  blocking readv into one reused buffer, hash, write (palhm's read path)
  splice     splice(2) pipe -> file, no hash (palhm's path for checksum none)
  splicemmap splice into the file, then hash the file's pages through mmap
  tee        tee(2) into a second pipe, splice the first into the file, read the
             second and hash it

Prints this process's own CPU time (the stages' is the same for all).

    .venv/bin/python bench/exp_pump_variants.py MODE [--mib N] [--hash blake3|xxh3]
        [--buffer BYTES] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import mmap
import os
import resource
import subprocess
import time
from typing import Any

PIPE = 1 << 20


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def new_hasher(name: str) -> Any:
    if name == "blake3":
        import blake3

        return blake3.blake3(max_threads=1)
    import xxhash

    return xxhash.xxh3_128()


def write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["readwrite", "splice", "splicemmap", "tee"])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--hash", default="blake3", choices=["blake3", "xxh3"])
    parser.add_argument("--buffer", type=int, default=1 << 20)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE)
    source = ["head", "-c", str(args.mib << 20), "/dev/zero"]
    head = subprocess.Popen(source, stdout=subprocess.PIPE)
    cat = subprocess.Popen(["cat"], stdin=head.stdout, stdout=write_end)
    assert head.stdout is not None
    head.stdout.close()
    os.close(write_end)
    path = os.path.join(args.dir, f"palhm-exp-{os.getpid()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    hasher = new_hasher(args.hash)
    start_wall, start_cpu = time.perf_counter(), cpu()
    total = globals()[f"run_{args.mode}"](read_end, fd, hasher, args.buffer)
    os.fsync(fd)
    wall, own = time.perf_counter() - start_wall, cpu() - start_cpu
    head.wait()
    cat.wait()
    os.close(fd)
    os.unlink(path)
    print(f"{args.mode:<10} {args.hash:<6} {total >> 20} MiB  wall {wall:.3f} s  own cpu {own:.3f}")


def run_readwrite(pipe: int, fd: int, hasher: Any, size: int) -> int:
    buffer, total = memoryview(bytearray(size)), 0
    while count := os.readv(pipe, [buffer]):
        hasher.update(buffer[:count])
        write_all(fd, buffer[:count])
        total += count
    return total


def run_splice(pipe: int, fd: int, hasher: Any, size: int) -> int:
    total = 0
    while count := os.splice(pipe, fd, PIPE):
        total += count
    return total


def run_splicemmap(pipe: int, fd: int, hasher: Any, size: int) -> int:
    window, total, hashed = 8 << 20, 0, 0
    while True:
        count = os.splice(pipe, fd, PIPE)
        total += count
        while total - hashed >= window or (count == 0 and total > hashed):
            length = min(window, total - hashed)
            with mmap.mmap(fd, length, offset=hashed, access=mmap.ACCESS_READ) as pages:
                hasher.update(pages)
            hashed += length
        if count == 0:
            return total


def run_tee(pipe: int, fd: int, hasher: Any, size: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    second_read, second_write = os.pipe()
    fcntl.fcntl(second_write, fcntl.F_SETPIPE_SZ, PIPE)
    buffer, total = memoryview(bytearray(PIPE)), 0
    while (count := libc.tee(pipe, second_write, PIPE, 0)) > 0:
        left = count
        while left:
            left -= os.splice(pipe, fd, left)
        left = count
        while left:
            got = os.readv(second_read, [buffer[:left]])
            hasher.update(buffer[:got])
            left -= got
        total += count
    return total


if __name__ == "__main__":
    main()
