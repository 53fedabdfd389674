#!/usr/bin/env python3
"""The long config fuzzing run: N mutated configs (default 10,000) through the config
layer, in-process, plus a sample through the CLI (`palhm -f FILE config check`).

    .venv/bin/python scripts/fuzz_configs.py [--cases 10000] [--cli-every 200] [--seed 1]

Unlike the test (which stops at the first failure and shrinks it), this run goes on
and groups failures by kind, so one bug does not hide the others. Prints the counts
(cases, loaded, config errors, failures by kind with one example each, CLI samples,
duration) and exits 1 when anything failed. The mutations and the verdict are those
of tests/reliability/config_fuzz.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tests.reliability.config_fuzz import (  # noqa: E402
    Case,
    check_config,
    cleanup,
    draw_case,
    load_seeds,
)


class Tally:
    """Outcome counts and the first example of each kind of failure."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.failures: dict[str, str] = {}
        self.failure_counts: Counter[str] = Counter()
        self.cli_runs = 0
        self.cli_bad: list[str] = []

    def fail(self, error: AssertionError) -> None:
        message = str(error)
        kind = message.splitlines()[0][:120]
        self.outcomes["failure"] += 1
        self.failure_counts[kind] += 1
        self.failures.setdefault(kind, message)


def run_cli(case: Case, expected: str, tally: Tally) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "palhm", "-f", str(case.path), "config", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    tally.cli_runs += 1
    wanted = 0 if expected == "ok" else 2
    if result.returncode != wanted or "Traceback" in result.stderr:
        tally.cli_bad.append(f"exit {result.returncode} (wanted {wanted}): {case.describe()}")


def fuzz(cases: int, cli_every: int, random_seed: int) -> Tally:
    seeds = load_seeds()
    tally = Tally()

    @seed(random_seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one(data: st.DataObject) -> None:
        def draw(strategy: st.SearchStrategy[Any]) -> Any:
            return data.draw(strategy)

        case = draw_case(draw, seeds)
        try:
            expected = check_config(case)
            tally.outcomes[expected] += 1
            total = sum(tally.outcomes.values())
            if cli_every and total % cli_every == 0:
                run_cli(case, expected, tally)
        except AssertionError as error:
            tally.fail(error)
        finally:
            cleanup(case)

    one()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--cli-every", type=int, default=200, help="0: no CLI samples")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.monotonic()
    tally = fuzz(args.cases, args.cli_every, args.seed)
    elapsed = time.monotonic() - start
    total = sum(tally.outcomes.values())
    print(f"cases: {total} in {elapsed:.0f} s (seed {args.seed})")
    for outcome in ("ok", "config-error", "failure"):
        print(f"  {outcome}: {tally.outcomes[outcome]}")
    print(f"CLI samples: {tally.cli_runs}, wrong exit or traceback: {len(tally.cli_bad)}")
    for line in tally.cli_bad[:5]:
        print(f"  {line}")
    for kind, count in tally.failure_counts.most_common():
        print(f"FAILURE x{count}: {tally.failures[kind]}")
    return 1 if tally.outcomes["failure"] or tally.cli_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
