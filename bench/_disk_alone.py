"""The disk alone: write SIZE bytes of zeros into each FILE durably, with no pipeline,
no page cache and no checksum, for bench_default_path.py's "disk alone" line.

    python bench/_disk_alone.py SIZE FILE [FILE ...]

O_DIRECT writes of 4 MiB from one aligned buffer, four in flight: one thread per
file, or, for a single file, four threads writing its four quarters. Each file is
fsynced at the end (O_DIRECT leaves the file's metadata to it). This is about the
least any tool must wait to have these bytes on this disk: what a run takes beyond
it is the cost of producing the bytes, not of keeping them. Where O_DIRECT is
refused (tmpfs), plain writes and fsync.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading

BLOCK = 4 << 20
IN_FLIGHT = 4


def write_range(fd: int, start: int, stop: int, block: memoryview) -> None:
    offset = start
    while offset < stop:
        offset += os.pwrite(fd, block[: min(BLOCK, stop - offset)], offset)


def main() -> None:
    size, files = int(sys.argv[1]), sys.argv[2:]
    block = memoryview(mmap.mmap(-1, BLOCK))  # page-aligned zeros, as O_DIRECT needs
    fds: list[int] = []
    for name in files:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fds.append(os.open(name, flags | os.O_DIRECT, 0o600))
        except OSError:
            fds.append(os.open(name, flags, 0o600))
    if len(fds) == 1:  # one file: its quarters in parallel (4 MiB aligned)
        step = -(-size // IN_FLIGHT // BLOCK) * BLOCK
        jobs = [(fds[0], start, min(size, start + step)) for start in range(0, size, step)]
    else:
        jobs = [(fd, 0, size) for fd in fds]
    threads = [threading.Thread(target=write_range, args=(*job, block)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fd in fds:
        os.fsync(fd)
        os.close(fd)


if __name__ == "__main__":
    main()
