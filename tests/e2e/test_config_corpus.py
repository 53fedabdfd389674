"""Every config of tests/configs through the real CLI: `palhm -f FILE config check`.

- tests/configs/good/*: valid configs (adapted samples of the original PALHM, every
  example of its README, palhm's additions) -> exit 0.
- tests/configs/bad/*: broken configs -> exit 2, no traceback, and every line of the
  sidecar NAME.expect (file name, JSON path, message) appears in stderr.
Files in sub-directories (inc/) are only included by the others.
"""

from __future__ import annotations

import functools
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import REPO, run_palhm

CONFIGS = REPO / "tests" / "configs"
GOOD = sorted(p.name for p in (CONFIGS / "good").iterdir() if p.is_file())
BAD = sorted(p.name for p in (CONFIGS / "bad").iterdir() if p.is_file() and p.suffix != ".expect")


@functools.cache
def checked(kind: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """`config check` of every config of good/ or bad/, run a few at a time (each run is
    a separate interpreter, so this keeps the corpus quick on few cores)."""
    names = GOOD if kind == "good" else BAD

    def check(name: str) -> subprocess.CompletedProcess[str]:
        return run_palhm(["-f", name, "config", "check"], cwd=CONFIGS / kind)

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(zip(names, pool.map(check, names), strict=True))


def expected_fragments(name: str) -> list[str]:
    expect = (CONFIGS / "bad" / name).with_suffix(".expect")
    lines = expect.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_the_corpus_is_big_enough() -> None:
    assert len(BAD) >= 45
    assert len(GOOD) >= 10
    for name in BAD:
        assert expected_fragments(name), f"{name} has no .expect fragments"


@pytest.mark.parametrize("name", GOOD)
def test_good_config_passes(name: str) -> None:
    done = checked("good")[name]
    assert done.returncode == 0, done.stderr
    # only warnings about this host (a command or library it lacks), never an error
    assert all(line.startswith("palhm: warning: ") for line in done.stderr.splitlines())


@pytest.mark.parametrize("name", BAD)
def test_bad_config_is_refused_with_its_messages(name: str) -> None:
    done = checked("bad")[name]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    missing = [f for f in expected_fragments(name) if f not in done.stderr]
    assert missing == [], done.stderr
    assert done.stdout == ""


def test_every_problem_is_one_line_naming_a_file() -> None:
    done = checked("bad")["many-problems.jsonc"]
    lines = done.stderr.splitlines()
    assert len(lines) == 7
    assert all(
        line.split(": ", 1)[0] in ("many-problems.jsonc", "inc/many-included.jsonc")
        for line in lines
    )


def test_missing_config_file(tmp_path: Path) -> None:
    done = run_palhm(["-f", str(tmp_path / "absent.conf"), "config", "check"])
    assert done.returncode == 2
    assert done.stderr == f"{tmp_path / 'absent.conf'}: cannot read: No such file or directory\n"
