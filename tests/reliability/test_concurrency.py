"""Runs at the same time (doc/design.md#locking): one root, one run; different roots do not meet.

- Two runs of one task started together: one makes the copy, the other fails at
  once (exit 1) naming the holder of the lock, and damages nothing.
- A run started while another task is frozen in its rotation (PALHM_FAULT=...:stop):
  on the same root it is refused the same way; on a different root it succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.helpers import write_config
from tests.reliability.harness import (
    FINE_PREFIX,
    PYTHON,
    assert_counted_copies_whole,
    inspect_root,
    palhm_argv,
    stage,
    stop,
    survivors,
    wait_for,
)

HOLD = (
    "import os, sys, time\n"
    "os.write(1, b'held\\n')\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
)


def task(task_id: str, root: Path, objects: list[dict[str, Any]], **param: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root), "prefix": dict(FINE_PREFIX), **param},
        "objects": objects,
    }


def small(marker: str) -> list[dict[str, Any]]:
    return [{"path": "x", "pipeline": [stage("head", "-c", "5000", "/dev/urandom", marker=marker)]}]


def launch(config: Path, task_id: str, fault: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PALHM_FAULT"}
    if fault:
        env["PALHM_FAULT"] = fault
    return subprocess.Popen(
        palhm_argv(config, "run", task_id),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def frozen(pid: int) -> bool:
    """The process is stopped (SIGSTOP), state T in /proc/PID/stat."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def test_two_runs_of_one_task_started_together_one_is_refused_at_once(tmp_path: Path) -> None:
    root, flag, marker = tmp_path / "root", tmp_path / "go", uuid.uuid4().hex
    held = [{"path": "held", "pipeline": [stage(PYTHON, "-c", HOLD, str(flag), marker=marker)]}]
    config = write_config(tmp_path / "c.json", {"tasks": [task("backup", root, held)]})
    first, second = launch(config, "backup"), launch(config, "backup")
    processes = {first.pid: first, second.pid: second}
    try:
        loser_pid = wait_for(
            lambda: next((pid for pid, p in processes.items() if p.poll() is not None), None),
            what="one run to be refused",
        )
        loser = processes.pop(loser_pid)
        ((winner_pid, winner),) = processes.items()
        status, stderr = finish(loser)
        assert status == 1, stderr
        assert f"{root} is in use by another palhm run (pid {winner_pid} " in stderr
        assert "task 'backup'" in stderr and "Traceback" not in stderr
        assert winner.poll() is None  # the refused run did not disturb the other
        flag.touch()
        status, stderr = finish(winner)
        assert status == 0, stderr
    finally:
        flag.touch()
        for process in (first, second):
            stop(process)
    state = inspect_root(root)
    assert len(state.complete) == 1 and state.incomplete == []
    assert_counted_copies_whole(root, state)
    assert survivors(marker) == []


def rotation_setup(tmp_path: Path) -> tuple[Path, Path, Path, str]:
    """Config with task `rotating` (root A, keeps 1 copy, already holds 2), task
    `same-root` (root A too) and task `other-root` (root B)."""
    root_a, root_b, marker = tmp_path / "a", tmp_path / "b", uuid.uuid4().hex
    doc = {
        "tasks": [
            task("rotating", root_a, small(marker), **{"nb-copy-limit": 1}),
            task("same-root", root_a, small(marker)),
            task("other-root", root_b, small(marker)),
        ]
    }
    config = write_config(tmp_path / "c.json", doc)
    # Two copies of `rotating` itself (a task rotates only its own copies), made by the
    # same task without its limit: rotation only starts above it, no removal yet.
    seed = write_config(
        tmp_path / "seed.json", {"tasks": [task("rotating", root_a, small(marker))]}
    )
    for _ in range(2):
        seeding = launch(seed, "rotating")
        assert finish(seeding)[0] == 0
    return config, root_a, root_b, marker


def test_a_run_on_the_root_of_a_rotating_run_is_refused(tmp_path: Path) -> None:
    config, root_a, _, marker = rotation_setup(tmp_path)
    before = inspect_root(root_a).counted
    rotating = launch(config, "rotating", fault="before-removal:1:stop")
    try:
        wait_for(lambda: frozen(rotating.pid), what="the run to freeze in its rotation")
        status, stderr = finish(launch(config, "same-root"))
        assert status == 1
        assert f"{root_a} is in use by another palhm run (pid {rotating.pid} " in stderr
        assert "task 'rotating'" in stderr
        os.kill(rotating.pid, signal.SIGCONT)
        status, stderr = finish(rotating)
        assert status == 0, stderr
    finally:
        if rotating.poll() is None:
            os.kill(rotating.pid, signal.SIGCONT)
        stop(rotating)
    after = inspect_root(root_a)
    assert len(after.counted) == 1 and after.counted[0] not in before  # only the new copy
    assert after.incomplete == []
    assert_counted_copies_whole(root_a, after)
    assert survivors(marker) == []


def test_a_run_on_another_root_proceeds_while_one_rotates(tmp_path: Path) -> None:
    config, root_a, root_b, marker = rotation_setup(tmp_path)
    rotating = launch(config, "rotating", fault="before-removal:1:stop")
    try:
        wait_for(lambda: frozen(rotating.pid), what="the run to freeze in its rotation")
        status, stderr = finish(launch(config, "other-root"))
        assert status == 0, stderr
        os.kill(rotating.pid, signal.SIGCONT)
        status, stderr = finish(rotating)
        assert status == 0, stderr
    finally:
        if rotating.poll() is None:
            os.kill(rotating.pid, signal.SIGCONT)
        stop(rotating)
    assert len(inspect_root(root_b).complete) == 1
    assert len(inspect_root(root_a).counted) == 1
    manifests = [
        json.loads((p / ".palhm-manifest.json").read_text())
        for p in root_a.iterdir()
        if p.is_dir() and (p / ".palhm-manifest.json").exists()
    ]
    assert [m["task"] for m in manifests] == ["rotating"]
    assert survivors(marker) == []
