"""palhm SIGKILLed during a run to two localfs destinations, through the real CLI.

Whatever the moment, neither root holds a counted partial copy: each destination's
copy is complete there or not counted (doc/backup.md#several-destinations). Killed
between the two commits, the first destination holds the new copy and the second does
not; the next run cleans up both and commits its own copy on both.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    CRASH_GROUPS,
    TASK,
    assert_counted_copies_whole,
    crash_objects,
    inspect_root,
    localfs_param,
    run,
    survivors,
    write_backup_config,
)

# (crash point, occurrence, new copy committed on (first, second) when killed there)
CRASHES = [
    ("chunk-written", 6, (False, False)),  # streaming to both
    ("before-commit", 1, (False, False)),
    ("after-rename", 1, (True, False)),  # the first destination committed, not the second
    ("committed", 1, (True, True)),
]


def two_destination_config(path: Path, roots: tuple[Path, Path], marker: str) -> Path:
    task: dict[str, Any] = {
        "id": TASK,
        "type": "backup",
        "require": "all",
        "destinations": [
            {"backend": "localfs", "backend-param": localfs_param(root)} for root in roots
        ],
        "object-groups": CRASH_GROUPS,
        "objects": crash_objects(marker),
    }
    return write_backup_config(path, task)


@pytest.mark.parametrize("point,nth,committed", CRASHES)
def test_sigkill_leaves_no_counted_partial_copy_on_either_destination(
    tmp_path: Path, point: str, nth: int, committed: tuple[bool, bool]
) -> None:
    roots = (tmp_path / "first", tmp_path / "second")
    marker = uuid.uuid4().hex
    config = two_destination_config(tmp_path / "c.json", roots, marker)
    crashed_run = run(config, fault=f"{point}:{nth}:kill")
    assert crashed_run.returncode == -signal.SIGKILL, f"no crash: {crashed_run.stderr}"
    assert survivors(marker) == [], "stage processes outlived the killed palhm"
    for root, holds in zip(roots, committed, strict=True):
        state = inspect_root(root)
        assert_counted_copies_whole(root, state)
        assert len(state.counted) == int(holds), (root, state.counted)
    recovery = run(config)
    assert recovery.returncode == 0, recovery.stderr
    after = [inspect_root(root) for root in roots]
    for root, state, holds in zip(roots, after, committed, strict=True):
        assert state.incomplete == [], (root, state.incomplete)
        assert_counted_copies_whole(root, state)
        assert len(state.counted) == 1 + int(holds)
    assert after[0].counted[-1] == after[1].counted[-1]  # the recovery run's copy, on both


@pytest.mark.parametrize("require", ["all", "any"])
def test_sigterm_while_streaming_rolls_back_both_destinations(tmp_path: Path, require: str) -> None:
    roots = (tmp_path / "first", tmp_path / "second")
    marker = uuid.uuid4().hex
    config = two_destination_config(tmp_path / "c.json", roots, marker)
    document = json.loads(config.read_text())
    document["tasks"][0]["require"] = require
    config.write_text(json.dumps(document))
    stopped = run(config, fault="chunk-written:6:term")
    assert stopped.returncode == 143, stopped.stderr
    assert survivors(marker) == []
    for root in roots:
        state = inspect_root(root)
        assert state.counted == [] and state.incomplete == [], (root, state)
