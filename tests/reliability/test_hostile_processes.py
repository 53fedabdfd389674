"""Processes and signals: what a SIGKILLed run leaves behind, and every signal that
asks palhm to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from palhm.engine import strays
from tests.helpers import wait_for
from tests.ping_receiver import PingReceiver
from tests.reliability.hostile import copies, hidden, palhm, sh, small, start_palhm, task, write


def _alive(pid: int) -> bool:
    fields = strays._stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _waiting_task(root: Path, base: Path, *, pidfile: Path | None = None) -> dict[str, object]:
    """A stage that starts a grandchild (`sleep` inside `sh -c`), then waits."""
    script = f"touch {base}/waiting; while :; do sleep 0.05; done"
    if pidfile is not None:
        script = f"sleep 300 & echo $! > {pidfile}; " + script
    return task(root, [{"path": "w", "pipeline": [sh(script)]}])


# --------------------------------------------------------------------------- strays


def test_grandchildren_of_a_sigkilled_run_are_stopped_by_the_next_run(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the run records live in /run/palhm (root)")
    root, pidfile = tmp_path / "root", tmp_path / "sleep.pid"
    config = write(tmp_path / "c.json", _waiting_task(root, tmp_path, pidfile=pidfile))
    run = start_palhm(config, "run", "backup")
    try:
        wait_for(lambda: (tmp_path / "waiting").exists() and pidfile.exists(), what="the stage")
        grandchild = int(wait_for(lambda: pidfile.read_text().strip(), what="the pid"))
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    time.sleep(0.3)
    if not _alive(grandchild):
        # Any palhm run stops a dead run's leftovers: one running elsewhere on this
        # machine at the same time got there first. Its record must be gone too.
        dead = f"{run.pid}-"
        assert not any(p.name.startswith(dead) for p in Path("/run/palhm/runs").iterdir())
        pytest.skip("another palhm run on this machine stopped the grandchild first")
    plain = write(tmp_path / "p.json", task(tmp_path / "other-root", [small()]))
    result = palhm(plain, "run", "backup")  # any run, on any root
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: not _alive(grandchild), what="the grandchild to be stopped")
    assert f"left running: {grandchild}" in result.stderr or str(grandchild) in result.stderr


def _record(directory: Path, groups: list[list[int]]) -> Path:
    """A run record of a dead run (pid 1 never has start time 1)."""
    path = directory / "1-1.json"
    doc = {"pid": 1, "start": 1, "boot": strays.boot_id(), "groups": groups}
    path.write_text(json.dumps(doc))
    return path


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """The recorded group id now belongs to another process (other start time): it
    and its group live on; the same group with the right start time is stopped."""
    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        start = strays.start_time(victim.pid)
        assert start is not None
        _record(tmp_path, [[victim.pid, start - 1]])
        assert strays.stop_dead_runs(tmp_path) == []
        assert _alive(victim.pid)
        _record(tmp_path, [[victim.pid, start + 1]])  # leader started before the record?
        assert strays.stop_dead_runs(tmp_path) == []
        assert _alive(victim.pid)
        _record(tmp_path, [[victim.pid, start]])
        assert strays.stop_dead_runs(tmp_path) == [victim.pid]
        victim.wait(timeout=10)
        assert list(tmp_path.glob("*.json")) == []
    finally:
        victim.kill()
        victim.wait()


def test_the_record_of_a_live_run_is_left_alone(tmp_path: Path) -> None:
    me, start = os.getpid(), strays.start_time(os.getpid())
    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        path = tmp_path / f"{me}-{start}.json"
        doc = {
            "pid": me,
            "start": start,
            "boot": strays.boot_id(),
            "groups": [[victim.pid, strays.start_time(victim.pid)]],
        }
        path.write_text(json.dumps(doc))
        assert strays.stop_dead_runs(tmp_path) == []
        assert _alive(victim.pid) and path.exists()
        doc["boot"] = "another boot"
        path.write_text(json.dumps(doc))
        assert strays.stop_dead_runs(tmp_path) == []  # a record from before a reboot
        assert _alive(victim.pid) and not path.exists()
    finally:
        victim.kill()
        victim.wait()


def test_a_command_leaves_no_process_behind_on_any_exit(tmp_path: Path) -> None:
    """Routine commands too: what a command started in its group dies with it."""
    pidfile = tmp_path / "bg.pid"
    doc = {
        "tasks": [
            {
                "id": "r",
                "type": "routine",
                "routine": [sh(f"sleep 300 & echo $! > {pidfile}")],
            }
        ]
    }
    config = tmp_path / "r.json"
    config.write_text(json.dumps(doc))
    assert palhm(config, "run", "r").returncode == 0
    background = int(pidfile.read_text())
    assert wait_for(lambda: not _alive(background), what="the background process to die")


# --------------------------------------------------------------------------- signals


STOP_SIGNALS = [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM]


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_every_stop_signal_rolls_back_and_exits_128_plus_n(
    tmp_path: Path, signum: signal.Signals
) -> None:
    root, metrics = tmp_path / "root", tmp_path / "palhm.prom"
    doc = _waiting_task(root, tmp_path)
    with PingReceiver() as receiver:
        doc["on-failure"] = [{"type": "ping", "url": receiver.url("/failed")}]
        config = write(tmp_path / "c.json", doc, metrics={"textfile": str(metrics)})
        run = start_palhm(config, "run", "backup")
        try:
            wait_for(lambda: (tmp_path / "waiting").exists(), what="the stage to run")
            run.send_signal(signum)
            _, stderr = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        pinged = [p.path for p in receiver.requests]
    assert run.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert hidden(root) == [] and copies(root) == [], "no rollback"
    assert any(path.startswith("/failed") for path in pinged), "no on-failure hook"
    assert 'palhm_last_run_success{task="backup"} 0' in metrics.read_text()
