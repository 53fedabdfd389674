"""One object streaming SIZE of `head -c` /dev/zero through `cat` into localfs, against
the shell pipeline `head -c SIZE /dev/zero | cat > FILE`.

palhm fsyncs every object before it commits a copy; the shell does not, so the
shell is measured twice: as is, and followed by `sync FILE` (the fair comparison for
a durable copy). Printed: wall and CPU (user + sys of palhm and its stages; of bash
and its children for the shell) and the ratios against both references.
Goals: checksum none within 5% of the shell, blake3 within 15%.

    .venv/bin/python bench/bench_stream.py [--size GIB] [--dir DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from pathlib import Path

from _common import Measure, clear, fresh_dir, median, row, run_palhm, run_shell, startup_cost

CHECKSUMS = ("none", "blake3", "xxh3-128", "sha256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=4.0, help="GiB to stream (default 4)")
    parser.add_argument("--dir", default=None, help="where to write (default: $TMPDIR)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; medians shown")
    parser.add_argument("--checksums", default=",".join(CHECKSUMS))
    args = parser.parse_args()
    size = int(args.size * (1 << 30))
    checksums = args.checksums.split(",")
    work = fresh_dir(args.dir, "stream")
    results: dict[str, list[Measure]] = {}
    for _ in range(args.repeat):
        for label, measure in one_round(work, size, checksums):
            results.setdefault(label, []).append(measure)
    clear(work)
    report(results, size)


def one_round(work: Path, size: int, checksums: list[str]) -> Iterator[tuple[str, Measure]]:
    target = work / "shell.out"
    quoted = shlex.quote(str(target))
    yield "shell", run_shell(f"head -c {size} /dev/zero | cat > {quoted}")
    clear(target)
    yield (
        "shell + sync FILE",
        run_shell(f"head -c {size} /dev/zero | cat > {quoted}; sync {quoted}"),
    )
    clear(target)
    for checksum in checksums:
        root = work / "root"
        spec = {
            "root": str(root),
            "checksum": checksum,
            "objects": [
                {"path": "zeros", "stages": [["head", "-c", str(size), "/dev/zero"], ["cat"]]}
            ],
        }
        yield f"palhm checksum {checksum}", run_palhm(spec)
        clear(root)


def report(results: dict[str, list[Measure]], size: int) -> None:
    print(f"streaming {size / (1 << 30):g} GiB; interpreter + palhm import: {startup_cost():.3f} s")
    shell, synced = median(results["shell"]), median(results["shell + sync FILE"])
    print(row("shell", shell))
    print(row("shell + sync FILE", synced, shell))
    for label, measures in results.items():
        if label.startswith("palhm"):
            m = median(measures)
            print(row(label, m, shell))
            print(row("   ... against shell + sync", m, synced))


if __name__ == "__main__":
    main()
