"""Several destinations: one object to localfs and S3 together vs each alone.

Starts its own moto server on 127.0.0.1, then runs `palhm -f CFG run bench` (the
whole CLI, default settings: blake3, 1 MiB blocks, the aws-s3 defaults) for three
configs of the same task, whose one object is `head -c SIZE /dev/zero`:
- localfs: a directory under --dir (a real disk: /tmp may be a tmpfs where fsync is free);
- s3:      a bucket of the moto server;
- both:    `destinations` [localfs, s3]: the pipeline runs once, its bytes go to both.
Each round runs the three in rotating order; each copy replaces the previous one
(nb-copy-limit 1). Prints every run's wall time, CPU time (palhm and its stage) and
palhm's peak RSS, then per round the ratio
both / max(localfs, s3) and its median over the rounds: the cost of writing to two
destinations at once against the slower destination alone (goal: <= 1.10).

moto is the slowest part on a small machine and sets the pace of `s3` and `both`;
compare only figures of the same run.

Usage: .venv/bin/python bench/bench_destinations.py [--size-gib 2] [--rounds 1]
           [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_s3 import client_env, moto_server, timed  # noqa: E402 - after the path set-up

VENV_BIN = Path(sys.executable).parent
BUCKET = "palhm-bench-destinations"
GOAL = 1.10
MODES = ("localfs", "s3", "both")


def destinations(mode: str, root: Path, endpoint: str) -> list[dict[str, Any]]:
    prefix = {"type": "iso8601", "timespec": "microseconds"}
    local = {
        "backend": "localfs",
        "backend-param": {"root": str(root), "nb-copy-limit": 1, "prefix": prefix},
    }
    s3 = {
        "backend": "aws-s3",
        "backend-param": {
            "bucket": BUCKET,
            "root": "palhm",
            "endpoint-url": endpoint,
            "region": "us-east-1",
            "nb-copy-limit": 1,
            "prefix": prefix,
        },
    }
    return {"localfs": [local], "s3": [s3], "both": [local, s3]}[mode]


def write_config(directory: Path, mode: str, size: int, root: Path, endpoint: str) -> Path:
    where = destinations(mode, root, endpoint)
    task: dict[str, Any] = {
        "id": "bench",
        "type": "backup",
        "objects": [
            {
                "path": "zero.bin",
                "pipeline": [
                    {"type": "exec-inline", "argv": ["head", "-c", str(size), "/dev/zero"]}
                ],
            }
        ],
    }
    if len(where) == 1:  # the single form: exactly what a one-destination user writes
        task.update(where[0])
    else:
        task["destinations"] = where
    path = directory / f"{mode}.json"
    path.write_text(json.dumps({"modules": ["aws"], "vl": 2, "tasks": [task]}))
    return path


def timed_run(config: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s of palhm and its stage, palhm's peak RSS MiB) of one CLI run."""
    run = timed([str(VENV_BIN / "palhm"), "-f", str(config), "run", "bench"], env=env)
    return run.seconds, run.cpu_seconds, run.peak_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", default="/var/tmp", help="a directory on a real disk")
    args = parser.parse_args()
    size = int(args.size_gib * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="palhm-bench-dest-", dir=args.dir) as tmp:
        directory = Path(tmp)
        root = directory / "root"
        with moto_server(directory) as endpoint:
            env = client_env(endpoint, directory)
            subprocess.run(
                [str(VENV_BIN / "aws"), "s3", "mb", f"s3://{BUCKET}"], env=env, check=True
            )
            configs = {m: write_config(directory, m, size, root, endpoint) for m in MODES}
            ratios = rounds(args.rounds, configs, env, size)
        shutil.rmtree(root, ignore_errors=True)
    median = statistics.median(ratios)
    verdict = "met" if median <= GOAL else "MISSED"
    print(
        f"{args.size_gib:g} GiB: median both / max(alone) {median:.3f} (goal <= {GOAL}: {verdict})"
    )


def rounds(count: int, configs: dict[str, Path], env: dict[str, str], size: int) -> list[float]:
    ratios = []
    for number in range(count):
        order = MODES[number % 3 :] + MODES[: number % 3]
        seconds = {}
        for mode in order:
            seconds[mode], cpu, rss = timed_run(configs[mode], env)
            rate = size / (1 << 20) / seconds[mode]
            print(
                f"round {number + 1} {mode:7}: {seconds[mode]:7.2f} s {rate:7.1f} MiB/s"
                f"  palhm CPU {cpu:6.2f} s  peak RSS {rss:6.1f} MiB"
            )
        ratio = seconds["both"] / max(seconds["localfs"], seconds["s3"])
        ratios.append(ratio)
        print(f"round {number + 1}: both / max(localfs, s3) = {ratio:.3f}")
    return ratios


if __name__ == "__main__":
    main()
