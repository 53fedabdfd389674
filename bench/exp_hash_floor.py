"""Experiment: the least any hashed data path can cost over the shell, on this machine.

The shell reference (`head -c SIZE /dev/zero | cat > FILE`, N of them in parallel,
then `sync`) computes no checksum; palhm must hash every byte. This script measures
the checksum's own speed (one thread, block-size chunks from one buffer: no I/O at
all) and the shell reference, alternating, and prints the floor: the shell's wall
time plus the hash's CPU spread over the cores (when the stages already keep every
core busy, as 4 pipelines on 2 cores do, the hash's CPU is wall time). An estimate:
it assumes the hash cannot overlap the shell's final sync, which palhm's early
write-out makes possible (bench/README.md, "Early write-out").

    .venv/bin/python bench/exp_hash_floor.py --dir /var/tmp [--mib 512] [--objects 4]
        [--rounds 3] [--block-kib 128]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from palhm.engine.checksum import new_hasher


def hash_seconds(algorithm: str, total: int, block: int) -> float:
    """CPU seconds (one thread) to hash `total` bytes in `block` chunks."""
    view = memoryview(os.urandom(block))
    hasher = new_hasher(algorithm)
    assert hasher is not None
    start = time.thread_time()
    for _ in range(total // block):
        hasher.update(view)
    hasher.hexdigest()
    return time.thread_time() - start


def shell_seconds(work: Path, mib: int, objects: int) -> float:
    files = [work / f"o{n}" for n in range(objects)]
    for path in files:
        path.unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)
    script = (
        " ".join(f"head -c {mib << 20} /dev/zero | cat > {path} &" for path in files)
        + f" wait; sync {' '.join(map(str, files))}"
    )
    start = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True)  # the reference itself is a shell line
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a real disk, not a tmpfs")
    parser.add_argument("--mib", type=int, default=512, help="per object")
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-kib", type=int, default=128)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    total = (args.mib << 20) * args.objects
    work = Path(tempfile.mkdtemp(prefix="palhm-exp-floor-", dir=args.dir))
    hashes: dict[str, list[float]] = {"blake3": [], "xxh3-128": [], "sha256": []}
    shells: list[float] = []
    try:
        for _ in range(args.rounds):
            for algorithm, seen in hashes.items():
                seen.append(hash_seconds(algorithm, total, args.block_kib << 10))
            shells.append(shell_seconds(work, args.mib, args.objects))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shell = statistics.median(shells)
    print(
        f"{args.objects} x {args.mib} MiB, {cores} cores; shell + sync wall median "
        f"{shell:.3f} s (rounds: {', '.join(f'{s:.2f}' for s in shells)})"
    )
    for algorithm, seen in hashes.items():
        cpu = statistics.median(seen)
        floor = (shell + cpu / min(cores, args.objects)) / shell
        print(
            f"  {algorithm:9} {total / cpu / (1 << 30):5.2f} GiB/s on one thread, "
            f"{cpu:.3f} s CPU for {total >> 20} MiB: floor x{floor:.3f} of the shell"
        )


if __name__ == "__main__":
    main()
