"""How long `palhm config check` takes on a big config (5,000 backup objects).

Generates a config with several backup tasks and object groups that includes the
shipped core.json, then prints:
- the wall time of `python -m palhm -f FILE config check` (a subprocess, as a user
  runs it; best of N, so interpreter start-up is included),
- the time of an in-process `load_config` (best of N, after one warm-up run that
  compiles the schema validator),
- the same in-process load with one logic error (an unknown exec-id) and with one
  schema error (an unknown key) in the last object: the latter takes the slow path
  that collects every error with its JSON path.

Usage: .venv/bin/python bench/bench_config_check.py [--objects 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORE_JSON = REPO / "src" / "palhm" / "data" / "conf.d" / "core.json"
FILTERS = ("filter-zstd-parallel", "filter-xz-parallel", "filter-gzip-plain")


def make_config(nb_objects: int, *, nb_tasks: int = 5, nb_groups: int = 10) -> dict[str, Any]:
    """A config of `nb_tasks` backup tasks sharing `nb_objects` objects between them."""
    tasks: list[dict[str, Any]] = []
    per_task = nb_objects // nb_tasks
    for t in range(nb_tasks):
        groups = [{"id": "g0"}] + [
            {"id": f"g{g}", "depends": [f"g{g - 1}"]} for g in range(1, nb_groups)
        ]
        objects = [_object(t, i, nb_groups) for i in range(per_task)]
        tasks.append(
            {
                "id": f"backup-{t}",
                "type": "backup",
                "backend": "localfs",
                "backend-param": {"root": f"/var/backups/{t}", "nb-copy-limit": 3},
                "object-groups": groups,
                "objects": objects,
            }
        )
    routine = [{"type": "task", "task-id": task["id"]} for task in tasks]
    tasks.append({"id": "default", "type": "routine", "routine": routine})
    return {"include": [str(CORE_JSON)], "tasks": tasks}


def _object(task: int, index: int, nb_groups: int) -> dict[str, Any]:
    return {
        "path": f"t{task}/dir{index % 50}/object-{index}.tar.zst",
        "group": f"g{index % nb_groups}",
        "alloc-size": 1 << 20,
        "pipeline": [
            {"type": "exec-append", "exec-id": "tar", "argv": ["-C", "/srv", f"data-{index}"]},
            {"type": "exec", "exec-id": FILTERS[index % len(FILTERS)]},
        ],
    }


def best_of(runs: int, action: Any) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def cli_check(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "palhm", "-f", str(path), "config", "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"config check failed:\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from palhm.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp, "big.json")
        document = make_config(args.objects)
        good.write_text(json.dumps(document, indent=1))
        last_stage = document["tasks"][0]["objects"][-1]["pipeline"][1]
        last_stage["exec-id"] = "zstd-fast"
        bad_logic = Path(tmp, "bad-logic.json")
        bad_logic.write_text(json.dumps(document, indent=1))
        last_stage["exec-id"] = FILTERS[0]
        last_stage["vl-stder"] = 1
        bad_schema = Path(tmp, "bad-schema.json")
        bad_schema.write_text(json.dumps(document, indent=1))

        print(f"config: {args.objects} objects, {good.stat().st_size / 1e6:.1f} MB")
        cli = best_of(args.runs, lambda: cli_check(good))
        print(f"palhm config check (subprocess, best of {args.runs}): {cli * 1000:.0f} ms")
        load_config(good)  # warm-up: compiles the schema validator once per process
        warm = best_of(args.runs, lambda: load_config(good))
        print(f"load_config in process (best of {args.runs}): {warm * 1000:.0f} ms")

        for label, bad in (("logic", bad_logic), ("schema", bad_schema)):
            took = best_of(args.runs, lambda bad=bad: expect_one_problem(load_config, bad))
            print(f"load_config with one {label} error (best of {args.runs}): {took * 1000:.0f} ms")


def expect_one_problem(load: Any, path: Path) -> None:
    from palhm.errors import ConfigError

    try:
        load(path)
    except ConfigError as error:
        if len(error.problems) != 1:
            raise AssertionError(f"expected one problem, got:\n{error}") from None
    else:
        raise AssertionError(f"{path} was accepted")


if __name__ == "__main__":
    main()
