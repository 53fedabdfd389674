"""Clean-up that always runs: `on-failure` and `finally` command hooks around routine
and backup tasks, through the CLI, with a real "maintenance mode" flag file, real
processes and real signals (doc/operations.md, "Clean-up that always runs")."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, run_palhm, wait_for, write_config
from tests.integration.execute_support import wait_for_file


def inline(*argv: str, **keys: Any) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv), **keys}


def sh(script: str, **keys: Any) -> dict[str, Any]:
    return inline("sh", "-c", script, **keys)


def record_env(log: Path, tag: str) -> dict[str, Any]:
    """A hook that appends `tag` and its PALHM_* variables to `log` as one JSON line."""
    code = (
        "import json, os, sys; "
        "env = {k: v for k, v in os.environ.items() if k.startswith('PALHM_')}; "
        f"open({str(log)!r}, 'a').write(json.dumps([{tag!r}, env]) + chr(10))"
    )
    return inline(sys.executable, "-c", code)


def events(log: Path) -> list[tuple[str, dict[str, str]]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def maintenance_config(tmp_path: Path, middle: dict[str, Any], **hooks: Any) -> Path:
    """maintenance on (a flag file) -> `middle` -> maintenance off, like a live host."""
    flag = tmp_path / "maintenance.flag"
    task = {
        "id": "default",
        "type": "routine",
        "routine": [sh(f"touch {flag}"), middle, sh(f"rm {flag}")],
        **hooks,
    }
    return write_config(tmp_path / "palhm.conf", {"tasks": [task]})


def test_failing_middle_step_leaves_maintenance_mode_through_on_failure(tmp_path: Path) -> None:
    flag, log = tmp_path / "maintenance.flag", tmp_path / "hooks.log"
    failing = sh("echo 'dump: table locked' >&2; exit 3")
    path = maintenance_config(
        tmp_path,
        failing,
        **{
            "on-failure": [sh(f"rm -f {flag}"), record_env(log, "on-failure")],
            "on-success": [record_env(log, "on-success")],
            "finally": [record_env(log, "finally")],
        },
    )
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 1
    assert not flag.exists(), "the host was left in maintenance mode"
    assert "task 'default', item 2: " in result.stderr
    assert "exited with status 3" in result.stderr
    got = events(log)
    assert [tag for tag, _ in got] == ["on-failure", "finally"]
    env = got[0][1]
    assert env["PALHM_TASK"] == "default"
    assert env["PALHM_STATUS"] == "failure"
    assert env["PALHM_EXIT_CODE"] == "1"
    assert env["PALHM_EVENT"] == "on-failure"
    assert "item 2" in env["PALHM_ERROR"] and "table locked" in env["PALHM_ERROR"]
    assert got[1][1]["PALHM_EVENT"] == "finally"


def test_successful_run_runs_on_success_then_finally_once_each(tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    path = maintenance_config(
        tmp_path,
        inline("true"),
        **{
            "on-start": [record_env(log, "on-start")],
            "on-failure": [record_env(log, "on-failure")],
            "on-success": [record_env(log, "on-success")],
            "finally": [record_env(log, "finally")],
        },
    )
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    got = events(log)
    assert [tag for tag, _ in got] == ["on-start", "on-success", "finally"]
    assert got[0][1]["PALHM_STATUS"] == "started"
    assert got[1][1]["PALHM_STATUS"] == "success"
    assert got[1][1]["PALHM_EXIT_CODE"] == "0"
    assert got[1][1]["PALHM_ERROR"] == ""


def test_failing_cleanup_is_reported_without_hiding_the_first_error(tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    path = maintenance_config(
        tmp_path,
        sh("exit 4"),
        **{
            "on-failure": [
                sh("echo 'service restart refused' >&2; exit 7"),
                record_env(log, "2nd"),
            ],
            "finally": [sh("exit 9"), record_env(log, "finally")],
        },
    )
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 1
    # the run's error is still the first one, printed last as palhm's error line
    last_error = [line for line in result.stderr.splitlines() if "palhm: error:" in line][-1]
    assert "item 2" in last_error and "status 4" in last_error
    assert "on-failure also failed: task 'default', on-failure item 1" in result.stderr
    assert "service restart refused" in result.stderr
    assert "finally also failed: task 'default', finally item 1" in result.stderr
    # a failing clean-up item does not stop the next clean-up items
    assert [tag for tag, _ in events(log)] == ["2nd", "finally"]


def test_failing_finally_fails_an_otherwise_good_run(tmp_path: Path) -> None:
    path = maintenance_config(tmp_path, inline("true"), **{"finally": [sh("exit 5")]})
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 1
    assert "task 'default', finally item 1: " in result.stderr
    assert "exited with status 5" in result.stderr


def test_failing_on_start_command_skips_the_main_part(tmp_path: Path) -> None:
    log, main = tmp_path / "hooks.log", tmp_path / "main-ran"
    path = maintenance_config(
        tmp_path,
        sh(f"touch {main}"),
        **{"on-start": [sh("exit 2")], "on-failure": [record_env(log, "on-failure")]},
    )
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 1
    assert not main.exists()
    assert (tmp_path / "maintenance.flag").exists() is False
    assert "on-start item 1" in events(log)[0][1]["PALHM_ERROR"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_a_step_still_runs_cleanup_once(
    tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    flag, log, started = tmp_path / "maintenance.flag", tmp_path / "hooks.log", tmp_path / "started"
    path = maintenance_config(
        tmp_path,
        sh(f"echo $$ > {started}; exec sleep 100"),
        **{
            "on-failure": [sh(f"rm -f {flag}"), record_env(log, "on-failure")],
            "finally": [record_env(log, "finally")],
        },
    )
    palhm = subprocess.Popen(
        [sys.executable, "-m", "palhm", "-f", str(path), "run"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_file(started)
        palhm.send_signal(signum)
        _, stderr = palhm.communicate(timeout=60)
    finally:
        if palhm.poll() is None:
            palhm.kill()
            palhm.wait()
    assert palhm.returncode == status, stderr
    assert not flag.exists()
    got = events(log)
    assert [tag for tag, _ in got] == ["on-failure", "finally"]
    assert got[0][1]["PALHM_EXIT_CODE"] == str(status)
    assert f"interrupted by {signum.name}" in got[0][1]["PALHM_ERROR"]


def test_backup_task_failure_runs_cleanup_and_keeps_no_copy(tmp_path: Path) -> None:
    flag, log, root = tmp_path / "maintenance.flag", tmp_path / "hooks.log", tmp_path / "root"
    root.mkdir()
    task = {
        "id": "default",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root)},
        "objects": [{"path": "db.sql", "pipeline": [sh("echo partial; exit 2")]}],
        "on-start": [sh(f"touch {flag}")],
        "on-failure": [record_env(log, "on-failure")],
        "finally": [sh(f"rm -f {flag}"), record_env(log, "finally")],
    }
    path = write_config(tmp_path / "palhm.conf", {"tasks": [task]})
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 1
    assert not flag.exists()
    assert list(root.iterdir()) == [] or all(p.name.startswith(".") for p in root.iterdir())
    got = events(log)
    assert [tag for tag, _ in got] == ["on-failure", "finally"]
    assert "object 'db.sql'" in got[0][1]["PALHM_ERROR"]
    assert got[0][1]["PALHM_PREFIX"] == ""


def test_backup_task_success_gives_hooks_the_copy_prefix_and_size(tmp_path: Path) -> None:
    log, root = tmp_path / "hooks.log", tmp_path / "root"
    root.mkdir()
    task = {
        "id": "default",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root)},
        "objects": [{"path": "a", "pipeline": [sh("printf 12345")]}],
        "finally": [record_env(log, "finally")],
    }
    path = write_config(tmp_path / "palhm.conf", {"tasks": [task]})
    result = run_palhm(["-q", "-f", str(path), "run"])
    assert result.returncode == 0, result.stderr
    env = events(log)[0][1]
    assert env["PALHM_STATUS"] == "success"
    assert env["PALHM_SIZE"] == "5"
    assert (root / env["PALHM_PREFIX"] / "a").read_bytes() == b"12345"


def test_hook_task_pointer_cycle_is_a_config_error(tmp_path: Path) -> None:
    tasks = [
        {
            "id": "default",
            "type": "routine",
            "routine": [],
            "finally": [{"type": "task", "task-id": "b"}],
        },
        {"id": "b", "type": "routine", "routine": [{"type": "task", "task-id": "default"}]},
    ]
    path = write_config(tmp_path / "palhm.conf", {"tasks": tasks})
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 2
    assert "tasks[0].finally[0].task-id" in result.stderr or "task cycle" in result.stderr


def test_hook_with_unknown_exec_id_names_its_json_path(tmp_path: Path) -> None:
    task = {
        "id": "default",
        "type": "routine",
        "routine": [],
        "on-failure": [{"type": "exec", "exec-id": "maintenance-of"}],
    }
    path = write_config(tmp_path / "palhm.conf", {"tasks": [task]})
    result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 2
    assert "tasks[0].on-failure[0].exec-id" in result.stderr
    assert "unknown exec 'maintenance-of'" in result.stderr


# ------------------------------------------------------------------ signals cut hooks short


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/ping"


def test_sigterm_while_an_on_start_ping_hangs_is_acted_on_at_once(
    tmp_path: Path, silent_server: str
) -> None:
    """The hook's timeout (600 s) and retries would keep palhm for half an hour; the
    signal must stop the ping, skip the main part, and the failure ping gets one short
    attempt, so palhm ends long before the communicate() limit below."""
    main, log = tmp_path / "main-ran", tmp_path / "hooks.log"
    ping = {"type": "ping", "url": silent_server, "timeout": 600, "retries": 3}
    task = {
        "id": "default",
        "type": "routine",
        "routine": [sh(f"touch {main}")],
        "on-start": [ping],
        "on-failure": [ping, record_env(log, "on-failure")],
    }
    path = write_config(tmp_path / "palhm.conf", {"tasks": [task]})
    palhm = subprocess.Popen(
        [sys.executable, "-m", "palhm", "-v", "-f", str(path), "run"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # palhm has connected: the server's backlog holds its connection
        wait_for(lambda: _connections_to(silent_server) > 0, what="the on-start ping")
        palhm.send_signal(signal.SIGTERM)
        _, stderr = palhm.communicate(timeout=45)
    finally:
        if palhm.poll() is None:
            palhm.kill()
            palhm.wait()
    assert palhm.returncode == 143, stderr
    assert not main.exists()
    assert [tag for tag, _ in events(log)] == ["on-failure"]


def _connections_to(url: str) -> int:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "01":  # ESTABLISHED, from the client side
            count += 1
    return count
