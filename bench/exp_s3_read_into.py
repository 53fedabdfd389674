"""aws-s3: this tree's palhm (`current`) against the palhm of another source tree
(`base`, e.g. a git worktree of the commit before the change), whole CLI runs
(`python -m palhm` with PYTHONPATH set to each tree's src) against a private moto
server on 127.0.0.1, alternating in one sitting.

The object is `cat FILE` of SIZE MiB of random bytes (generated once), checksum
blake3, request-checksums crc32 (what AWS gets). Printed per variant: each run's
wall and CPU time, medians, peak RSS. CPU is palhm's process with its `cat` (moto
is not counted): the same `cat` in both, so the difference is palhm's. moto needs
most of a core on this machine, so compare CPU rather than wall time.

    git worktree add /var/tmp/palhm-base COMMIT
    .venv/bin/python bench/exp_s3_read_into.py --base-src /var/tmp/palhm-base/src \\
        [--size-mib 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import sys
from pathlib import Path

from bench_s3 import Run, palhm_config, s3_lab, timed

CURRENT_SRC = Path(__file__).resolve().parents[1] / "src"
VARIANTS = ("current", "base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base-src", required=True, help="the src directory of the other tree")
    args = parser.parse_args()
    sources = {"current": CURRENT_SRC, "base": Path(args.base_src).resolve()}
    for source in sources.values():
        compileall.compile_dir(str(source / "palhm"), quiet=1)  # as pip install does
    with s3_lab(args.size_mib, "/var/tmp") as (directory, data, env):
        config = palhm_config(data, directory, "blake3", "crc32")
        argv = [sys.executable, "-m", "palhm", "-q", "-f", str(config), "run", "bench"]
        runs: dict[str, list[Run]] = {name: [] for name in VARIANTS}
        for number in range(args.rounds):
            order = VARIANTS[number % 2 :] + VARIANTS[: number % 2]
            for name in order:
                runs[name].append(timed(argv, env={**env, "PYTHONPATH": str(sources[name])}))
    print(f"{args.size_mib} MiB to moto, {args.rounds} rounds")
    for name, found in runs.items():
        walls = ", ".join(f"{r.seconds:.2f}" for r in found)
        cpus = ", ".join(f"{r.cpu_seconds:.2f}" for r in found)
        print(
            f"  {name:8} wall median {statistics.median(r.seconds for r in found):6.2f} s"
            f" ({walls})  cpu median {statistics.median(r.cpu_seconds for r in found):6.2f} s"
            f" ({cpus})  peak RSS {max(r.peak_rss_mib for r in found):6.1f} MiB"
        )
    ratios = [
        a.cpu_seconds / b.cpu_seconds for a, b in zip(runs["current"], runs["base"], strict=True)
    ]
    print(f"  cpu current / base: x{statistics.median(ratios):.3f} (median of the rounds)")


if __name__ == "__main__":
    main()
