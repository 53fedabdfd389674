"""Where a small run's start-up goes, and the tiny run against the original PALHM.

Prints, each as the median of --runs fresh interpreters:

  imports      importing everything a localfs backup run needs (palhm.cli.main,
               runner, engine.backup, notify.hooks, backends.localfs)
  records      the part of those imports spent creating the value classes
               (palhm.records; until 2026-12-04 they were dataclasses, each of which
               compiled its generated methods with exec: ~30 ms in all)
  parser       building the command line for `run` alone, and for every command
  tiny         a whole `palhm -q -f CFG run b` of two `echo` objects on localfs, and
               the same config run by the original PALHM 0.0.3 (--orig-python),
               alternating; the ratio is the median of per-round ratios

    .venv/bin/python bench/bench_startup.py --dir /var/tmp \\
        --orig-python /work/orig-palhm/bin/python [--runs 15]
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

PROBE = r"""
import json, time
import palhm.records as records
original = records._build
spent = [0.0, 0]
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return original(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - start
        spent[1] += 1
records._build = timed
start = time.perf_counter()
import palhm.cli.main, palhm.cli.runner, palhm.engine.backup, palhm.notify.hooks
import palhm.backends.localfs
imports = time.perf_counter() - start
import sys
start = time.perf_counter()
palhm.cli.main.build_parser(sys.argv[1] or None)  # the first parser built pays warm-up
built = time.perf_counter() - start
print(json.dumps([imports, spent[0], spent[1], built]))
"""


def tiny_config(path: Path, root: Path) -> Path:
    def obj(name: str) -> dict[str, object]:
        argv = ["/bin/echo", name]
        return {"path": name, "pipeline": [{"type": "exec-inline", "argv": argv}]}

    task = {
        "id": "b",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root)},
        "objects": [obj("a"), obj("b")],
    }
    path.write_text(json.dumps({"tasks": [task]}), encoding="utf-8")
    root.mkdir(parents=True, exist_ok=True)
    return path


def timed_run(argv: list[str], root: Path) -> float:
    for child in root.iterdir():
        if child.is_dir():  # the copies (palhm's lock file stays)
            shutil.rmtree(child)
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="where the copies go (a real disk)")
    parser.add_argument("--orig-python", help="python of a venv with palhm==0.0.3")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    probes: dict[str, list[list[float]]] = {"run": [], "": []}
    for _ in range(args.runs):
        for command, found in probes.items():
            argv = [sys.executable, "-c", PROBE, command]
            done = subprocess.run(argv, check=True, capture_output=True, text=True)
            found.append(json.loads(done.stdout))
    every = probes["run"] + probes[""]
    imports, spent, count = (statistics.median(p[i] for p in every) for i in range(3))
    one, whole = (statistics.median(p[3] for p in probes[c]) for c in ("run", ""))
    print(f"imports      {imports * 1e3:6.1f} ms (median of {len(every)})")
    print(f"records      {spent * 1e3:6.1f} ms of it, {count:.0f} classes")
    print(f"parser       {one * 1e3:6.1f} ms for `run` alone, {whole * 1e3:.1f} ms for all")

    work = Path(tempfile.mkdtemp(prefix="palhm-bench-startup-", dir=args.dir))
    try:
        mine = tiny_config(work / "tiny.json", work / "root")
        argv = [sys.executable, "-m", "palhm", "-q", "-f", str(mine), "run", "b"]
        contenders = {"palhm": (argv, work / "root")}
        if args.orig_python:
            theirs = tiny_config(work / "orig.json", work / "orig-root")
            orig = [args.orig_python, "-m", "palhm", "-q", "-f", str(theirs), "run", "b"]
            contenders["original 0.0.3"] = (orig, work / "orig-root")
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, (command, root) in contenders.items():
                times[name].append(timed_run(command, root))
            time.sleep(1.0)  # copies are named by the second: never two in one
        for name, walls in times.items():
            print(f"tiny {name:15} median {statistics.median(walls):.3f} s (min {min(walls):.3f})")
        if args.orig_python:
            ratios = [a / b for a, b in zip(times["palhm"], times["original 0.0.3"], strict=True)]
            print(f"tiny palhm / original: x{statistics.median(ratios):.3f} (goal <= x1.30)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
