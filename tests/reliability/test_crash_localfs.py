"""palhm SIGKILLed at every interesting point of a localfs run, through the real CLI.

Each case starts from the same seeded root (3 copies from real runs, a legacy copy of
the original PALHM, a stale staging and a stale deleting directory, foreign files),
kills the run at one (crash point, occurrence) with PALHM_FAULT=<point>:<n>:kill,
checks what the crash left, then runs again and checks the recovery. The task keeps
3 copies, so its rotation removes two (the legacy copy, then the oldest real one).
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest

from tests.reliability.harness import (
    FOREIGN,
    LEGACY,
    LIMIT,
    PYTHON,
    RootState,
    assert_counted_copies_whole,
    cases,
    clone_root,
    crash_config,
    inspect_root,
    newest,
    planned_removals,
    run,
    stage,
    start,
    stop,
    survivors,
    wait_for,
)

# (point, occurrence, new copy committed when killed there, copies rotation removed)
CRASHES = [
    ("lock-acquired", 1, False, 0),
    ("incomplete-removal", 1, False, 0),
    ("incomplete-removed", 1, False, 0),
    ("incomplete-removal", 2, False, 0),
    ("incomplete-removed", 2, False, 0),
    ("staging-created", 1, False, 0),
    ("manifest-written", 1, False, 0),  # the building manifest in staging
    ("copy-begun", 1, False, 0),
    ("object-opened", 1, False, 0),
    ("object-opened", 2, False, 0),
    ("object-opened", 3, False, 0),  # the first object of the dependent group
    ("chunk-written", 1, False, 0),
    ("chunk-written", 6, False, 0),
    ("chunk-written", 12, False, 0),
    ("object-closed", 1, False, 0),
    ("object-closed", 2, False, 0),
    ("object-closed", 3, False, 0),
    ("before-commit", 1, False, 0),
    ("manifest-written", 2, False, 0),  # the final manifest, still in staging
    ("before-rename", 1, False, 0),
    ("after-rename", 1, True, 0),
    ("committed", 1, True, 0),
    ("before-removal", 1, True, 0),
    ("set-aside", 1, True, 1),
    ("after-removal", 1, True, 1),
    ("before-removal", 2, True, 1),
    ("set-aside", 2, True, 2),
    ("after-removal", 2, True, 2),
]
# Run with -m slow; the normal suite keeps the others, a spread over every phase.
SLOW = {
    ("incomplete-removed", 1),
    ("incomplete-removal", 2),
    ("staging-created", 1),
    ("manifest-written", 1),
    ("object-opened", 1),
    ("object-opened", 3),
    ("chunk-written", 1),
    ("chunk-written", 12),
    ("object-closed", 1),
    ("object-closed", 2),
    ("before-removal", 1),
    ("after-removal", 1),
    ("before-removal", 2),
}
FD_PATH_CRASHES = [  # checksum none: the last stage writes into the target file itself
    ("object-opened", 2, False, 0),
    ("object-closed", 1, False, 0),
    ("before-rename", 1, False, 0),
    ("after-rename", 1, True, 0),
]


def check_after_crash(
    root: Path, before: RootState, crashed: RootState, *, committed: bool, removed: int
) -> None:
    """No partial copy counted; complete copies lost only to a committed run's rotation."""
    assert_counted_copies_whole(root, crashed)
    new = set(crashed.counted) - set(before.counted)
    assert len(new) == int(committed), f"new counted copies: {sorted(new)}"
    assert all(prefix in crashed.complete for prefix in new)  # never a legacy-looking one
    lost = set(before.counted) - set(crashed.counted)
    assert len(lost) == removed, f"lost: {sorted(lost)}"
    assert lost <= set(planned_removals(before.counted, LIMIT))
    assert crashed.foreign == before.foreign


def check_after_recovery(root: Path, crashed: RootState, final: RootState) -> None:
    """Everything incomplete is gone; the newest LIMIT copies remain, the new one too."""
    assert final.incomplete == []
    assert_counted_copies_whole(root, final)
    new = set(final.counted) - set(crashed.counted)
    assert len(new) == 1 and new <= set(final.complete)
    assert final.counted == newest([*crashed.counted, *new], LIMIT)
    assert final.foreign == crashed.foreign
    assert {k: v for k, v in final.foreign.items() if k in FOREIGN} == FOREIGN
    if LEGACY in final.legacy:
        assert (root / LEGACY / "etc.tar").read_bytes().startswith(b"legacy copy")


def crash_and_recover(
    tmp_path: Path,
    seeded: Path,
    point: str,
    nth: int,
    *,
    committed: bool,
    removed: int,
    checksum: str = "blake3",
) -> None:
    root = tmp_path / "root"
    clone_root(seeded, root)
    marker = uuid.uuid4().hex
    config = crash_config(tmp_path / "c.json", root, marker, checksum=checksum)
    before = inspect_root(root)
    crashed_run = run(config, fault=f"{point}:{nth}:kill")
    assert crashed_run.returncode == -signal.SIGKILL, f"no crash: {crashed_run.stderr}"
    assert survivors(marker) == [], "stage processes outlived the killed palhm"
    crashed = inspect_root(root)
    check_after_crash(root, before, crashed, committed=committed, removed=removed)
    recovery = run(config)
    assert recovery.returncode == 0, recovery.stderr
    check_after_recovery(root, crashed, inspect_root(root))


@pytest.mark.parametrize(("point", "nth", "committed", "removed"), cases(CRASHES, slow=SLOW))
def test_kill_at_crash_point_counts_no_partial_copy_and_loses_none(
    tmp_path: Path, seeded: Path, point: str, nth: int, committed: bool, removed: int
) -> None:
    crash_and_recover(tmp_path, seeded, point, nth, committed=committed, removed=removed)


@pytest.mark.parametrize(
    ("point", "nth", "committed", "removed"),
    cases(FD_PATH_CRASHES, slow={("object-opened", 2), ("after-rename", 1)}),
)
def test_kill_on_the_direct_fd_path_counts_no_partial_copy(
    tmp_path: Path, seeded: Path, point: str, nth: int, committed: bool, removed: int
) -> None:
    crash_and_recover(
        tmp_path, seeded, point, nth, committed=committed, removed=removed, checksum="none"
    )


@pytest.mark.parametrize("checksum", ["none", "blake3"])
def test_kill_from_outside_while_a_stage_is_writing(
    tmp_path: Path, seeded: Path, checksum: str
) -> None:
    """SIGKILL from outside while a stage that never ends on its own is writing: into
    the object file itself (checksum none: no relay), or into palhm's pipe. Only the
    parent-death signal can stop it."""
    root = tmp_path / "root"
    clone_root(seeded, root)
    marker = uuid.uuid4().hex
    config = crash_config(tmp_path / "c.json", root, marker, checksum=checksum)
    flag = tmp_path / "writing"
    held = config.with_name("held.json")
    held.write_text(_with_waiting_writer(config.read_text(), flag, marker))
    before = inspect_root(root)
    process = start(held)
    try:
        wait_for(flag.exists, what="the writer stage to start writing")
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        stop(process)
    assert survivors(marker) == [], "the writer stage outlived the killed palhm"
    crashed = inspect_root(root)
    assert len(crashed.incomplete) == 1  # the partial copy is there, hidden ...
    check_after_crash(root, before, crashed, committed=False, removed=0)  # ... never counted
    recovery = run(config)
    assert recovery.returncode == 0, recovery.stderr
    check_after_recovery(root, crashed, inspect_root(root))


def _with_waiting_writer(text: str, flag: Path, marker: str) -> str:
    """The first object written by one stage that writes, raises `flag`, then waits."""
    code = (
        "import os, sys, time\n"
        "os.write(1, b'x' * 4096)\n"
        "open(sys.argv[1], 'w').close()\n"
        "time.sleep(300)\n"
    )
    doc = json.loads(text)
    doc["tasks"][0]["objects"][0]["pipeline"] = [
        stage(PYTHON, "-c", code, str(flag), marker=marker)
    ]
    return json.dumps(doc)


def test_crash_matrix_covers_start_stream_manifest_rename_and_rotation() -> None:
    points = {(p, n) for p, n, _, _ in CRASHES + FD_PATH_CRASHES}
    assert len(CRASHES) + len(FD_PATH_CRASHES) >= 30
    assert len(points) == len(CRASHES) + len(FD_PATH_CRASHES) - 4  # fd path repeats 4 points
    covered = {p for p, _ in points}
    assert {"lock-acquired", "chunk-written", "manifest-written", "before-rename"} <= covered
    assert {"before-removal", "set-aside", "after-removal", "incomplete-removal"} <= covered
