"""Signals during a backup: SIGTERM/SIGINT clean up and exit 143/130; after a SIGKILL
the partial copy never counts and the next run removes it (doc/design.md#command-line,
#copy-protocol, #signals)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import descendants, run_palhm
from tests.integration.backup_support import (
    TASK,
    alive,
    backup_config,
    copies_in,
    hold_stage,
    inline,
    obj,
    python_stage,
    staging_dirs,
    start_palhm,
    stop,
    wait_for,
    zeros,
)

# A stage whose own child keeps writing into the object after the stage is gone: the
# parent-death signal does not reach it (it is not palhm's child).
DETACHED_WRITER = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "    while True:\n"
    "        os.write(1, b'x'); time.sleep(0.05)\n"
    "time.sleep(300)\n"
)


def in_progress_run(
    tmp_path: Path, root: Path, **config: Any
) -> tuple[subprocess.Popen[str], list[int]]:
    """Start a run held in progress; its palhm process and stage pids once running."""
    objects = [
        obj("held", hold_stage(tmp_path / "never")),
        obj("piped", zeros(1000), inline("sleep", "300")),
    ]
    process = start_palhm(backup_config(tmp_path / "c.json", root, objects, nb_workers=2, **config))
    wait_for(lambda: staging_dirs(root), what="the run to start its copy")
    stages: list[int] = wait_for(
        lambda: len(descendants(process.pid)) >= 3 and descendants(process.pid)
    )
    return process, stages


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_run_cleans_up_and_exits_with_its_status(
    tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    root = tmp_path / "root"
    process, stages = in_progress_run(tmp_path, root)
    try:
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)  # must not wait for `sleep 300`
    finally:
        stop(process)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert [pid for pid in stages if alive(pid)] == []
    assert copies_in(root) == [] and staging_dirs(root) == []


def test_after_sigkill_the_partial_copy_is_not_counted_and_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    good = backup_config(
        tmp_path / "good.json", root, [obj("a", inline("echo", "x"))], param={"nb-copy-limit": 2}
    )
    assert run_palhm(["-f", str(good), "run", TASK]).returncode == 0
    (first,) = copies_in(root)
    process, stages = in_progress_run(tmp_path, root)
    process.send_signal(signal.SIGKILL)
    stop(process)
    # the stages die with palhm (parent-death signal), not hours later
    wait_for(lambda: not any(alive(pid) for pid in stages), timeout=20, what="orphan stages")
    (partial,) = staging_dirs(root)

    result = run_palhm(["-f", str(good), "run", TASK])

    assert result.returncode == 0, result.stderr
    assert not partial.exists() and staging_dirs(root) == []
    copies = copies_in(root)
    assert len(copies) == 2 and copies[0] == first  # the partial copy took no place


def test_next_run_stops_a_writer_that_outlived_a_killed_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pid_file = tmp_path / "writer.pid"
    objects = [obj("detached", python_stage(DETACHED_WRITER, str(pid_file)))]
    config = backup_config(tmp_path / "c.json", root, objects, checksum="none")
    process = start_palhm(config)
    try:
        writer = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="writer"))
        wait_for(lambda: staging_dirs(root) and any(staging_dirs(root)[0].iterdir()))
        process.send_signal(signal.SIGKILL)
    finally:
        stop(process)
    assert alive(writer)  # not palhm's child: it survived
    good = backup_config(tmp_path / "good.json", root, [obj("a", inline("echo", "x"))])

    result = run_palhm(["-f", str(good), "run", TASK])

    assert result.returncode == 0, result.stderr
    wait_for(lambda: not alive(writer), timeout=10, what="the writer to be stopped")
    assert staging_dirs(root) == [] and len(copies_in(root)) == 1
