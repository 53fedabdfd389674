"""Routine tasks through the CLI as a user runs them: exit statuses, output routing by
-q/-v and the config's vl, environment, failure messages, signals (doc/design.md#routines)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, run_palhm, write_config
from tests.integration.execute_support import wait_for_file, wait_gone

BOTH_STREAMS = "import sys; print('item-stdout'); print('item-stderr', file=sys.stderr)"


def inline(*argv: str, **keys: Any) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv), **keys}


def python_item(code: str, **keys: Any) -> dict[str, Any]:
    return inline(sys.executable, "-c", code, **keys)


def config(
    tmp_path: Path, *items: dict[str, Any], extra_tasks: tuple[Any, ...] = (), **top: Any
) -> Path:
    """A config whose task `default` is a routine of `items`; `top` adds top-level keys."""
    default = {"id": "default", "type": "routine", "routine": list(items)}
    return write_config(tmp_path / "palhm.conf", {**top, "tasks": [default, *extra_tasks]})


def test_successful_routine_exits_0_and_runs_items_in_order(tmp_path: Path) -> None:
    log = tmp_path / "log"
    path = config(
        tmp_path,
        inline("sh", "-c", f"echo one >> {log}"),
        inline("sh", "-c", f"echo two >> {log}"),
    )
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "one\ntwo\n"


def test_failing_item_exits_1_with_a_readable_message(tmp_path: Path) -> None:
    log = tmp_path / "log"
    failing = python_item("import sys; print('mirror unreachable', file=sys.stderr); sys.exit(4)")
    path = config(tmp_path, inline("true"), failing, inline("sh", "-c", f"echo never >> {log}"))
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 1
    assert not log.exists()
    assert "palhm: error: task 'default', item 2: " in result.stderr
    assert "exited with status 4" in result.stderr
    assert "  | mirror unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_killed_item_is_reported_by_signal_name(tmp_path: Path) -> None:
    path = config(tmp_path, inline("sh", "-c", "kill -KILL $$", ec=">=0"))
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 1
    assert "killed by SIGKILL" in result.stderr


@pytest.mark.parametrize(
    ("args", "vl", "stdout_shown", "stderr_shown"),
    [
        ([], None, True, True),  # default vl 3: stdout (vl-stdout 3) and stderr (1)
        (["-q"], None, False, True),  # quiet = 1: errors, so child stderr still shown
        ([], 0, False, False),  # vl 0 in the config: nothing
        (["-v"], 2, True, True),  # -v raises the config's vl by one
        ([], 2, False, True),
    ],
)
def test_item_streams_follow_q_v_and_config_vl(
    tmp_path: Path, args: list[str], vl: int | None, stdout_shown: bool, stderr_shown: bool
) -> None:
    top: dict[str, Any] = {} if vl is None else {"vl": vl}
    path = config(tmp_path, python_item(BOTH_STREAMS), **top)
    result = run_palhm([*args, "-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    assert ("item-stdout" in result.stdout) is stdout_shown
    assert ("item-stderr" in result.stderr) is stderr_shown


def test_per_item_levels_override_the_defaults(tmp_path: Path) -> None:
    path = config(tmp_path, python_item(BOTH_STREAMS, **{"vl-stdout": 4, "vl-stderr": 4}))
    quiet = run_palhm(["-f", str(path), "run"])
    loud = run_palhm(["-v", "-f", str(path), "run"])
    assert "item-stdout" not in quiet.stdout and "item-stderr" not in quiet.stderr
    assert "item-stdout" in loud.stdout and "item-stderr" in loud.stderr


def test_exec_env_is_added_to_the_environment(tmp_path: Path) -> None:
    code = "import os; print(os.environ['PALHM_E2E'], os.environ['PATH'] == os.environ['KEEP'])"
    path = write_config(
        tmp_path / "palhm.conf",
        {
            "execs": [{"id": "show", "argv": [sys.executable, "-c", code]}],
            "tasks": [
                {
                    "id": "default",
                    "type": "routine",
                    "routine": [
                        {"type": "exec-append", "exec-id": "show", "env": {"PALHM_E2E": "added"}}
                    ],
                }
            ],
        },
    )
    result = run_palhm(["-f", str(path), "run"], env={"KEEP": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "added True"


def test_task_pointer_runs_the_other_task_in_place(tmp_path: Path) -> None:
    log = tmp_path / "log"
    other = {
        "id": "other",
        "type": "routine",
        "routine": [inline("sh", "-c", f"echo other >> {log}")],
    }
    path = config(
        tmp_path,
        inline("sh", "-c", f"echo first >> {log}"),
        {"type": "task", "task-id": "other"},
        inline("sh", "-c", f"echo last >> {log}"),
        extra_tasks=(other,),
    )
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "first\nother\nlast\n"


def test_sigmask_is_inherited_by_later_items(tmp_path: Path) -> None:
    block = {
        "type": "builtin",
        "builtin-id": "sigmask",
        "param": [{"action": "block", "sig": ["TERM", "sigusr1"]}],
    }
    path = config(tmp_path, block, inline("grep", "SigBlk", "/proc/self/status"))
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    mask = int(result.stdout.split()[-1], 16)
    assert mask & (1 << (signal.SIGTERM - 1))
    assert mask & (1 << (signal.SIGUSR1 - 1))


def test_blocked_sigterm_does_not_stop_the_routine(tmp_path: Path) -> None:
    log = tmp_path / "log"
    block = {
        "type": "builtin",
        "builtin-id": "sigmask",
        "param": [{"action": "block", "sig": [15]}],
    }
    term_palhm = inline("sh", "-c", "kill -TERM $PPID")
    path = config(tmp_path, block, term_palhm, inline("sh", "-c", f"echo still-here >> {log}"))
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "still-here\n"


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_item_and_exits_with_its_status(
    tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    started, log = tmp_path / "started", tmp_path / "log"
    path = config(
        tmp_path,
        inline("sh", "-c", f"echo $$ > {started}; exec sleep 100"),
        inline("sh", "-c", f"echo never >> {log}"),
    )
    palhm = subprocess.Popen(
        [sys.executable, "-m", "palhm", "-f", str(path), "run"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        item_pid = int(wait_for_file(started))
        palhm.send_signal(signum)
        _, stderr = palhm.communicate(timeout=60)
    finally:
        if palhm.poll() is None:
            palhm.kill()
            palhm.wait()
    assert palhm.returncode == status
    assert f"interrupted by {signum.name}" in stderr
    assert wait_gone(item_pid)
    assert not log.exists()
