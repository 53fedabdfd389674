"""Experiment: how much each write() into the object file should carry.

One `palhm run` (in this process, so its own user and sys CPU are measured apart
from the stages') of a `head -c SIZE /dev/zero | cat` object with the default
checksum, for each write slice given (KiB; palhm.backends.localfs.WRITE_SLICE),
alternating, --rounds times. The pump reads and hashes 1 MiB blocks whatever the
slice; only the size of each write() into the page cache changes.

    .venv/bin/python bench/exp_write_size.py --dir /var/tmp \\
        [--slices 1024 256 128 64] [--mib 1024] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import head_cat_config

CHILD = r"""
import json, resource, sys, time
import palhm.backends.localfs as localfs
localfs.WRITE_SLICE = int(sys.argv[1]) << 10
from palhm.cli.main import main
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
status = main(["-q", "-f", sys.argv[2], "run", "b"])
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"status": status, "wall": time.perf_counter() - start,
    "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a real disk, not a tmpfs")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--slices", nargs="+", type=int, default=[1024, 256, 128, 64])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="palhm-exp-write-", dir=args.dir))
    found: dict[int, list[dict[str, float]]] = {kib: [] for kib in args.slices}
    try:
        path = head_cat_config(work, args.mib)
        for _ in range(args.rounds):
            for kib in args.slices:
                shutil.rmtree(work / "root", ignore_errors=True)
                argv = [sys.executable, "-c", CHILD, str(kib), str(path)]
                done = subprocess.run(argv, check=True, capture_output=True, text=True)
                got = json.loads(done.stdout)
                assert got["status"] == 0, done.stderr
                found[kib].append(got)
                time.sleep(1.0)  # copies are named by the second
        for kib, runs in found.items():
            walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
            print(
                f"write {kib:5} KiB  wall median {statistics.median(r['wall'] for r in runs):.2f} s"
                f" ({walls})  own sys median {statistics.median(r['sys'] for r in runs):.2f} s"
                f"  own user median {statistics.median(r['user'] for r in runs):.2f} s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
