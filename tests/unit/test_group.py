"""palhm.engine.group alone: cheap real processes in one group, waited for, killed, reaped."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from palhm.engine.group import ProcessGroup
from palhm.engine.relay import StderrTail
from palhm.model import Exec

SLEEPER = Exec(argv=(sys.executable, "-c", "import time; time.sleep(60)"))
IGNORES_TERM = Exec(
    argv=(
        sys.executable,
        "-c",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)",
    )
)
LIMIT = 60.0  # s: a wait longer than this is a hang (never a speed check)


@pytest.fixture
def group() -> Iterator[ProcessGroup]:
    made = ProcessGroup()
    yield made
    made.signal(signal.SIGKILL)
    made.reap()
    made.close()


def start(group: ProcessGroup, cmd: Exec, stdout: int | None = None) -> None:
    err = os.open(os.devnull, os.O_WRONLY)
    try:
        group.start(cmd, stdin=None, stdout=stdout, stderr=err, tail=StderrTail(forward=False))
    finally:
        os.close(err)


def wait_all(group: ProcessGroup) -> None:
    end = time.monotonic() + LIMIT
    while not group.all_exited():
        assert time.monotonic() < end, "hung"
        group.wait(0.1)


def test_statuses_are_recorded_without_reaping(group: ProcessGroup) -> None:
    start(group, Exec(argv=("true",)))
    start(group, Exec(argv=("false",)))
    wait_all(group)
    assert [(e.index, e.status, e.signum) for e in group.endings] == [(0, 0, None), (1, 1, None)]
    assert [e.accepted for e in group.endings] == [True, False]
    assert not group.all_reaped()  # zombies keep the group id reserved
    assert group.pgid is not None
    os.killpg(group.pgid, 0)  # the group still exists: signalling it is safe


def test_every_child_joins_the_first_one_s_group(group: ProcessGroup) -> None:
    start(group, SLEEPER)
    start(group, SLEEPER)
    assert group.pgid is not None
    members = [
        int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _pgid(int(pid)) == group.pgid
    ]
    assert len(members) == 2
    assert group.first_running() == 0


def test_a_signal_to_the_group_reaches_every_child(group: ProcessGroup) -> None:
    start(group, SLEEPER)
    start(group, SLEEPER)
    group.signal(signal.SIGKILL)
    wait_all(group)
    assert [e.signum for e in group.endings] == [signal.SIGKILL] * 2
    assert [e.after_kill for e in group.endings] == [False, False]


def test_terminate_kills_what_ignores_sigterm_after_the_grace(group: ProcessGroup) -> None:
    read_end, write_end = os.pipe()
    start(group, IGNORES_TERM, stdout=write_end)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        assert stream.readline() == "ready\n"  # its handler is in place
        group.begin_killing()
        group.terminate(0.2)
    group.reap()  # SIGKILL is not instant: the end may be known only once reaped
    assert group.endings[0].signum == signal.SIGKILL
    assert group.endings[0].after_kill  # a consequence of palhm's kill, not a cause


def test_an_end_before_the_kill_is_the_child_s_own(group: ProcessGroup) -> None:
    start(group, Exec(argv=("false",)))
    start(group, SLEEPER)
    while group.endings[0].exited is False:
        group.wait(0.1)
    group.begin_killing()
    group.terminate(5.0)
    group.reap()
    assert [e.after_kill for e in group.endings] == [False, True]
    assert group.endings[1].signum == signal.SIGTERM


def test_a_watched_fd_is_returned_when_readable(group: ProcessGroup) -> None:
    read_end, write_end = os.pipe()
    group.watch_fd(read_end, "data")
    assert group.wait(0.0) == []
    os.write(write_end, b"x")
    assert group.wait(LIMIT) == ["data"]
    group.unwatch_fd(read_end)
    group.unwatch_fd(read_end)  # twice is nothing
    os.close(read_end)
    os.close(write_end)


def test_reap_waits_and_releases_the_group() -> None:
    group = ProcessGroup()
    start(group, Exec(argv=("true",)))
    group.reap()
    group.close()
    assert group.all_reaped()
    group.signal(signal.SIGKILL)  # reaped: the id may be anyone's now, nothing is sent


def test_a_command_that_cannot_be_started_raises_and_leaves_no_child() -> None:
    group = ProcessGroup()
    with pytest.raises(FileNotFoundError):
        start(group, Exec(argv=("/nonexistent/palhm-test",)))
    assert group.endings == []
    assert group.pgid is None
    group.close()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
