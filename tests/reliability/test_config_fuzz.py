"""Mutated configs never make palhm fail in any other way than a ConfigError (exit 2).

The long run (>= 10,000 cases) is scripts/fuzz_configs.py; this is the suite's sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import run_palhm, write_config
from tests.reliability.config_fuzz import (
    Case,
    check_config,
    cleanup,
    draw_case,
    load_seeds,
    write_seed,
)

SEEDS = load_seeds()
FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases on every run: a failure is never a fluke
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _draw(data: st.DataObject) -> Case:
    def draw(strategy: st.SearchStrategy[Any]) -> Any:
        return data.draw(strategy)

    return draw_case(draw, SEEDS)


def test_every_seed_is_a_valid_config() -> None:
    assert len(SEEDS) >= 10
    for seed in SEEDS:
        case = write_seed(seed)
        try:
            assert check_config(case) == "ok", case.describe()
        finally:
            cleanup(case)


@FUZZ_SETTINGS
@given(st.data())
def test_mutated_configs_load_or_raise_config_error_only(data: st.DataObject) -> None:
    case = _draw(data)
    try:
        assert check_config(case) in ("ok", "config-error")
    finally:
        cleanup(case)


@settings(max_examples=12, deadline=None, database=None, derandomize=True)
@given(st.data())
def test_cli_exits_0_or_2_without_traceback_on_mutated_configs(data: st.DataObject) -> None:
    case = _draw(data)
    try:
        expected = check_config(case)
        result = run_palhm(["-f", str(case.path), "config", "check"], timeout=60)
    finally:
        cleanup(case)
    assert result.returncode == (0 if expected == "ok" else 2), (result.stderr, case.describe())
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
    if expected == "config-error":
        assert result.stderr.strip(), case.describe()


# Found by the fuzzer; kept as plain cases so that they are checked on every run.
FOUND: dict[str, dict[str, Any]] = {
    "include-with-nul-byte": {"include": ["a\u0000b.json"]},
    "task-id-of-a-routine-item-is-a-list": {
        "tasks": [{"id": "r", "type": "routine", "routine": [{"type": "task", "task-id": ["x"]}]}]
    },
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_configs_found_by_fuzzing_are_config_errors(name: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / f"{name}.json", FOUND[name])
    assert check_config(Case(path, [name])) == "config-error"
    result = run_palhm(["-f", str(path), "config", "check"], timeout=60)
    assert result.returncode == 2, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
