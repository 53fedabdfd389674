"""How much the first touch of memory the host took back costs on this VM.

A VM with free page reporting (virtio-balloon and similar) tells its host which of
its pages are free, and the host takes them back; the next time the guest uses such
a page, the host has to find and map a new one. Writing a file allocates a page-cache
page for every 4 KiB, so a 2 GiB write that lands on such pages pays for it, whatever
program does the writing. This script writes SIZE through the page cache (no
fsync: the cost is in the copy into the cache) from a page-aligned buffer, in three
states, alternating:

  warm   right after a file of the same size was written and deleted: the write
         gets the pages just freed;
  idle   the same, then IDLE seconds of waiting first (the host takes them back);
  fresh  while another SIZE file is kept: the pages come from the rest of memory.

It prints the system CPU time per GiB of each write, and the page-reporting counters
of the kernel when it has them (/sys/module/page_reporting/parameters).

    .venv/bin/python bench/exp_cold_memory.py --dir /var/tmp [--mib 1024] [--idle 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench_default_path import MIB, REPORTED, fill, reported_mib


def measure(state: str, work: Path, mib: int, idle: float) -> tuple[float, float | None]:
    scratch, kept, target = work / "scratch", work / "kept", work / "target"
    fill(scratch, mib * MIB)
    if state == "fresh":
        scratch.rename(kept)  # its pages stay in use: the write must take others
    else:
        scratch.unlink()
    if state == "idle":
        time.sleep(idle)
    before = reported_mib()
    seconds = fill(target, mib * MIB)
    after = reported_mib()
    target.unlink()
    kept.unlink(missing_ok=True)
    reported = after - before if REPORTED.exists() else None
    return seconds * 1024 / mib, reported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a directory on a real disk")
    parser.add_argument("--mib", type=int, default=1024, help="size of each write")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle state")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.dir) / f"palhm-cold-memory-{os.getpid()}"
    work.mkdir()
    states = ("warm", "idle", "fresh")
    found: dict[str, list[float]] = {state: [] for state in states}
    try:
        for number in range(args.rounds):
            for state in states[number % 3 :] + states[: number % 3]:
                per_gib, reported = measure(state, work, args.mib, args.idle)
                found[state].append(per_gib)
                note = "" if reported is None else f", {reported:.0f} MiB reported meanwhile"
                print(f"  round {number + 1} {state:<5} sys {per_gib:.2f} s/GiB{note}")
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
    warm = statistics.median(found["warm"])
    for state in states:
        value = statistics.median(found[state])
        print(f"{state:<5} median sys {value:.2f} s/GiB (x{value / warm:.1f} of warm)")
    if REPORTED.exists():
        print(f"free page reporting is on ({REPORTED.parent})")


if __name__ == "__main__":
    main()
