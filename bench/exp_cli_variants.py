"""Data-path variants of the whole CLI, alternating with the shell, on warm memory.

Each variant is palhm's CLI run through bench/_cli_variant.py, which patches one
mechanism in (its docstring lists them), plus `block:K`: the current code with
localfs `block-size` K KiB in the config. The reference is the same pipelines in
the shell, run in parallel and synced. Every round runs every contender once, in
rotating order. Before each run, memory is warmed as bench_default_path.py does
(bench/README.md, "Cold memory"). Printed: wall and CPU medians, each run's wall,
the host's steal, and the ratios against the shell and against `current`, as the
median of the per-round ratios.

    .venv/bin/python bench/exp_cli_variants.py --dir /var/tmp [--mib 2048] \\
        [--objects 4] [--rounds 5] [--variants current mmap:8 block:256 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_default_path import MIB, stolen, warm_memory

VARIANT = Path(__file__).with_name("_cli_variant.py")


@dataclass
class Contender:
    label: str
    argv: list[str]
    env: dict[str, str]
    out: Path
    runs: list[tuple[float, float, float]] = field(default_factory=list)  # wall, cpu, steal


def write_config(path: Path, root: Path, objects: int, part: int, block_kib: int) -> Path:
    stages = [
        {"type": "exec-inline", "argv": ["head", "-c", str(part), "/dev/zero"]},
        {"type": "exec-inline", "argv": ["cat"]},
    ]
    param: dict[str, object] = {"root": str(root)}
    if block_kib:
        param["block-size"] = block_kib << 10
    task = {
        "id": "b",
        "type": "backup",
        "backend": "localfs",
        "backend-param": param,
        "objects": [{"path": f"o{i}", "pipeline": stages} for i in range(objects)],
    }
    path.write_text(json.dumps({"nb-workers": objects, "tasks": [task]}))
    return path


def contenders(args: argparse.Namespace, work: Path) -> list[Contender]:
    part = (args.mib << 20) // args.objects
    out = work / "shell"
    files = " ".join(str(out / f"o{i}") for i in range(args.objects))
    jobs = " ".join(
        f"head -c {part} /dev/zero | cat > {out / f'o{i}'} &" for i in range(args.objects)
    )
    found = [Contender("shell", ["sh", "-c", f"{jobs} wait; sync {files}"], {}, out)]
    for number, variant in enumerate(args.variants):
        root = work / f"v{number}"
        name, _, value = variant.partition(":")
        block = int(value) if name == "block" else 0
        cfg = write_config(work / f"v{number}.json", root, args.objects, part, block)
        argv = [sys.executable, str(VARIANT), "-q", "-f", str(cfg), "run", "b"]
        patch = "current" if name == "block" else variant
        found.append(Contender(variant, argv, {"PALHM_VARIANT": patch}, root))
    return found


def run(contender: Contender, every: list[Contender], work: Path, size: int) -> None:
    for each in every:  # nobody's files stay in the page cache
        shutil.rmtree(each.out, ignore_errors=True)
        each.out.mkdir()
    os.sync()
    warm_memory(work, size)
    steal = stolen()
    start = time.perf_counter()
    process = subprocess.Popen(contender.argv, env={**os.environ, **contender.env})
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{contender.label} failed: {' '.join(contender.argv)}")
    contender.runs.append((wall, usage.ru_utime + usage.ru_stime, stolen() - steal))


def ratio(a: Contender, b: Contender) -> float:
    return statistics.median(x[0] / y[0] for x, y in zip(a.runs, b.runs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a directory on a real disk")
    parser.add_argument("--mib", type=int, default=2048, help="MiB in all (split over objects)")
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--variants", nargs="+", default=["current", "mmap:8", "block:256", "midpipe:64"]
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="palhm-cli-variants-", dir=args.dir))
    found = contenders(args, work)
    try:
        for number in range(args.rounds):
            shift = number % len(found)
            for contender in found[shift:] + found[:shift]:
                run(contender, found, work, args.mib * MIB)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.objects} x {args.mib // args.objects} MiB, {args.rounds} rounds, warm memory")
    shell = found[0]
    current = next((c for c in found if c.label == "current"), None)
    for c in found:
        walls = [r[0] for r in c.runs]
        line = (
            f"  {c.label:<14} wall median {statistics.median(walls):6.3f} s"
            f" ({', '.join(f'{w:.2f}' for w in walls)})"
            f"  cpu median {statistics.median(r[1] for r in c.runs):5.2f} s"
            f"  steal {statistics.median(r[2] for r in c.runs):.2f} s"
        )
        if c is not shell:
            line += f"  / shell x{ratio(c, shell):.3f}"
        if current is not None and c not in (shell, current):
            line += f"  / current x{ratio(c, current):.3f}"
        print(line)


if __name__ == "__main__":
    main()
