"""Experiment: the data pipe's size and the pump's read size, against the CPU the
copy out of the pipe costs.

One `palhm run` (in a child process, so palhm's own CPU is apart from the stages')
of a `head -c SIZE /dev/zero | cat` object with the default checksum, for each
setting `PIPE_KIB,BLOCK_KIB,SMALL_KIB,NAP_MS[,WB_MIB]` (pipe size asked for, read
buffer = hash and write unit, a wake-up that moved less than SMALL_KIB is followed by
a nap of NAP_MS; the localfs sink starts the write-out of every WB_MIB, 0 for never),
alternating, --rounds times; --objects N runs N such objects with
nb-workers N. Prints wall, palhm's own user and sys CPU, the
stages' CPU, and how many reads and wake-ups the pump made.

    .venv/bin/python bench/exp_pipe_cache.py --dir /var/tmp \\
        --settings 1024,1024,256,0.5 64,64,0,0 [--mib 1024] [--rounds 3] [--objects 4] \\
        [--checksum none]
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

from _common import PUMP_CHILD_RUN, head_cat_config

CHILD = (
    r"""
import json, sys
import palhm.engine.pump as pump
import palhm.engine.spawn as spawn
*setting, config = sys.argv[1:]
pipe_kib, block_kib, small_kib, nap_ms = setting[:4]
if len(setting) > 4:  # early write-out step in MiB, 0: none (fsync writes all at the end)
    import palhm.backends.localfs as localfs
    localfs.WRITEBACK_STEP = (int(setting[4]) << 20) or (1 << 62)
spawn.PIPE_SIZE = pump.PIPE_SIZE = int(pipe_kib) << 10
doc = json.load(open(config))
doc["tasks"][0]["backend-param"]["block-size"] = int(block_kib) << 10
config = config + "." + block_kib
json.dump(doc, open(config, "w"))
pump._SMALL_WAKEUP, pump._COALESCE_WAIT = int(small_kib) << 10, float(nap_ms) / 1000
"""
    + PUMP_CHILD_RUN
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a real disk, not a tmpfs")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--objects", type=int, default=1, help="MIB each, nb-workers OBJECTS")
    parser.add_argument("--checksum", default="blake3", help="the task's checksum (none: splice)")
    parser.add_argument("--settings", nargs="+", default=["1024,1024,256,0.5", "64,64,0,0"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="palhm-exp-pipe-", dir=args.dir))
    seen: dict[str, list[dict[str, float]]] = {setting: [] for setting in args.settings}
    try:
        path = head_cat_config(work, args.mib)
        doc = json.loads(path.read_text(encoding="utf-8"))
        task = doc["tasks"][0]
        task["checksum"] = args.checksum
        if args.objects > 1:
            task["objects"] = [{**task["objects"][0], "path": f"o{n}"} for n in range(args.objects)]
            doc["nb-workers"] = args.objects
        path.write_text(json.dumps(doc), encoding="utf-8")
        for _ in range(args.rounds):
            for setting in args.settings:
                shutil.rmtree(work / "root", ignore_errors=True)
                subprocess.run(["sync"], check=True)
                argv = [sys.executable, "-c", CHILD, *setting.split(","), str(path)]
                done = subprocess.run(argv, check=True, capture_output=True, text=True)
                got = json.loads(done.stdout)
                seen[setting].append(got)
                print(
                    f"{setting:20} status {got['status']} wall {got['wall']:.2f} s  own user "
                    f"{got['user']:.2f} s sys {got['sys']:.2f} s  stages {got['stages']:.2f} s"
                    f"  reads {got['reads']} wake-ups {got['wakes']}",
                    flush=True,
                )
                time.sleep(1.0)  # copies are named by the second
        print("medians: setting, wall, own CPU, own + stages CPU")
        for setting, runs in seen.items():
            wall = statistics.median(run["wall"] for run in runs)
            own = statistics.median(run["user"] + run["sys"] for run in runs)
            total = statistics.median(run["user"] + run["sys"] + run["stages"] for run in runs)
            print(f"  {setting:20} {wall:6.2f} s {own:6.2f} s {total:6.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
