"""Experiment: the pump's coalescing constants, and where palhm's own CPU goes.

One `palhm run` (in this process, so its own user and sys CPU are measured apart
from the stages') of a `head -c SIZE /dev/zero | cat` object with the default
checksum, for each setting of (small wake-up KiB, nap ms, burst) given, alternating,
--rounds times. Prints wall, own user and sys CPU, and how many reads and wake-ups
the pump made.

    .venv/bin/python bench/exp_pump_tuning.py --dir /var/tmp \\
        --settings 256,0.5,16 512,1,16 256,0,16 [--mib 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PUMP_CHILD_RUN, head_cat_config

CHILD = (
    r"""
import sys
import palhm.engine.pump as pump
small, nap, burst, config = sys.argv[1:5]
pump._SMALL_WAKEUP, pump._COALESCE_WAIT = int(small) << 10, float(nap) / 1000
pump._BURST = int(burst)
"""
    + PUMP_CHILD_RUN
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a real disk, not a tmpfs")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=["256,0.5,16", "512,1,16", "256,0,16"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="palhm-exp-pump-", dir=args.dir))
    try:
        path = head_cat_config(work, args.mib)
        for _ in range(args.rounds):
            for setting in args.settings:
                shutil.rmtree(work / "root", ignore_errors=True)
                argv = [sys.executable, "-c", CHILD, *setting.split(","), str(path)]
                done = subprocess.run(argv, check=True, capture_output=True, text=True)
                got = json.loads(done.stdout)
                print(
                    f"{setting:12} status {got['status']} wall {got['wall']:.2f} s  own user "
                    f"{got['user']:.2f} s sys {got['sys']:.2f} s  reads {got['reads']} "
                    f"wake-ups {got['wakes']}"
                )
                time.sleep(1.0)  # copies are named by the second
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"all children: user {usage.ru_utime:.2f} s, sys {usage.ru_stime:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
