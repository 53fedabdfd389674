"""SIGTERM / SIGINT arriving at chosen points of a localfs run (PALHM_FAULT=...:term|int:
palhm signals itself there and goes on, so its own handler path runs): exit 143 / 130
after clean-up, no process left, no partial copy, nothing complete lost."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.reliability.harness import (
    LIMIT,
    assert_counted_copies_whole,
    cases,
    clone_root,
    crash_config,
    inspect_root,
    planned_removals,
    run,
    survivors,
)

STATUS = {"term": 143, "int": 130}

# (point, occurrence, action, the new copy ends up committed: the signal came after the
# commit began)
SIGNALS = [
    ("lock-acquired", 1, "term", False),
    ("incomplete-removal", 1, "int", False),
    ("copy-begun", 1, "term", False),
    ("object-opened", 2, "int", False),
    ("chunk-written", 3, "term", False),
    ("chunk-written", 9, "int", False),
    ("object-closed", 2, "term", False),
    ("before-commit", 1, "int", False),
    ("before-rename", 1, "term", True),  # commit under way: it finishes, rotation does not
    ("committed", 1, "int", True),
    ("before-removal", 2, "term", True),
    ("set-aside", 1, "int", True),
]


SLOW = {("incomplete-removal", 1), ("object-opened", 2), ("chunk-written", 9), ("set-aside", 1)}


@pytest.mark.parametrize(("point", "nth", "action", "committed"), cases(SIGNALS, slow=SLOW))
def test_signal_at_a_point_cleans_up_and_exits_with_its_status(
    tmp_path: Path, seeded: Path, point: str, nth: int, action: str, committed: bool
) -> None:
    root = tmp_path / "root"
    clone_root(seeded, root)
    marker = uuid.uuid4().hex
    before = inspect_root(root)
    result = run(crash_config(tmp_path / "c.json", root, marker), fault=f"{point}:{nth}:{action}")
    assert result.returncode == STATUS[action], result.stderr
    assert "Traceback" not in result.stderr
    assert survivors(marker) == [], "stage processes outlived the interrupted run"
    after = inspect_root(root)
    assert after.incomplete == [], "an interrupted run left an incomplete copy"
    assert_counted_copies_whole(root, after)
    new = set(after.counted) - set(before.counted)
    assert len(new) == int(committed)
    assert set(before.counted) - set(after.counted) <= set(planned_removals(before.counted, LIMIT))
    assert after.foreign == before.foreign
