"""8 objects built with nb-workers 1 and 4: the speed-up of the worker pool.

Two workloads: CPU-bound objects (`head -c N /dev/zero | gzip -1`, bounded by the
machine's cores) and waiting objects (`sleep S`, bounded only by the pool), so the
pool's own scheduling shows apart from the CPU count.

    .venv/bin/python bench/bench_workers.py [--mib N] [--sleep S] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os

from _common import clear, fresh_dir, row, run_palhm

OBJECTS = 8


def workload(kind: str, mib: int, seconds: float) -> list[dict[str, object]]:
    if kind == "cpu":
        stages = [["head", "-c", str(mib << 20), "/dev/zero"], ["gzip", "-1"]]
    else:
        stages = [["sleep", str(seconds)]]
    return [{"path": f"{kind}{i}", "stages": stages} for i in range(OBJECTS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB per CPU-bound object")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds per waiting object")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    work = fresh_dir(args.dir, "workers")
    print(f"{OBJECTS} objects, {len(os.sched_getaffinity(0))} CPUs usable")
    try:
        for kind in ("cpu", "sleep"):
            measures = {}
            for workers in (1, 4):
                spec = {
                    "root": str(work / "root"),
                    "checksum": "blake3",
                    "nb_workers": workers,
                    "objects": workload(kind, args.mib, args.sleep),
                }
                measures[workers] = run_palhm(spec)
                clear(work / "root")
            print(row(f"{kind}: nb-workers 1", measures[1]))
            print(row(f"{kind}: nb-workers 4", measures[4], measures[1]))
            print(f"{kind}: speed-up x{measures[1].wall / measures[4].wall:.2f}")
    finally:
        clear(work)


if __name__ == "__main__":
    main()
