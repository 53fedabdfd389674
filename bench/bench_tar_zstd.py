"""`tar | zstd -T0` of a generated tree: palhm against the same shell pipeline.

The tree (--size MiB, default 2048) mixes incompressible and text-like files so that
zstd has real work. Printed: wall and CPU of each and the ratios; goal: palhm within
3% of the shell (the pipeline's processes do the work, palhm only wires them).

    .venv/bin/python bench/bench_tar_zstd.py [--size MIB] [--dir DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
from collections.abc import Iterator
from pathlib import Path

from _common import Measure, clear, fresh_dir, median, row, run_palhm, run_shell

WORDS = b"backup palhm stream copy object pipeline zstd tar manifest rotation root".split()


def make_tree(top: Path, size: int) -> None:
    """Files of 256 KiB to 4 MiB in a few directories: a third random, the rest text."""
    rng = random.Random(42)
    written, index = 0, 0
    while written < size:
        directory = top / f"dir{index % 7}" / f"sub{index % 3}"
        directory.mkdir(parents=True, exist_ok=True)
        length = min(rng.randint(256 << 10, 4 << 20), size - written)
        if index % 3 == 0:
            data = os.urandom(length)
        else:
            line = b" ".join(rng.choices(WORDS, k=12)) + b"\n"
            data = (line * (length // len(line) + 1))[:length]
        (directory / f"file{index}.dat").write_bytes(data)
        written += length
        index += 1


def one_round(tree: Path, work: Path) -> Iterator[tuple[str, Measure]]:
    target = work / "shell.tar.zst"
    script = f"tar -C {shlex.quote(str(tree))} -cf - . | zstd -q -T0 > {shlex.quote(str(target))}"
    yield "shell", run_shell(script)
    clear(target)
    yield "shell + sync FILE", run_shell(f"{script}; sync {shlex.quote(str(target))}")
    clear(target)
    for checksum in ("none", "blake3"):
        root = work / "root"
        stages = [["tar", "-C", str(tree), "-cf", "-", "."], ["zstd", "-q", "-T0"]]
        spec = {
            "root": str(root),
            "checksum": checksum,
            "objects": [{"path": "t", "stages": stages}],
        }
        yield f"palhm checksum {checksum}", run_palhm(spec)
        clear(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="MiB of files (default 2048)")
    parser.add_argument("--dir", default=None, help="where to work (default: $TMPDIR)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; medians shown")
    args = parser.parse_args()
    work = fresh_dir(args.dir, "tar")
    tree = work / "tree"
    make_tree(tree, args.size << 20)
    results: dict[str, list[Measure]] = {}
    try:
        for _ in range(args.repeat):
            for label, measure in one_round(tree, work):
                results.setdefault(label, []).append(measure)
    finally:
        clear(work)
    shell, synced = median(results.pop("shell")), median(results.pop("shell + sync FILE"))
    print(f"tar | zstd -T0 of {args.size} MiB, median of {args.repeat}")
    print(row("shell", shell))
    print(row("shell + sync FILE", synced, shell))
    for label, measures in results.items():
        print(row(label, median(measures), shell))
        print(row("   ... against shell + sync", median(measures), synced))


if __name__ == "__main__":
    main()
