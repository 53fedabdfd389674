"""palhm.engine.holders alone: the grace timer (plain numbers) and finding and killing
the holder of a pipe (a real, cheap process)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from palhm.engine.holders import GraceTimer, kill_holders, pipe_holders

# Holds the write end it inherited as fd 3 and says so, then waits for its stdin to end.
HOLDER = "import sys; print('holding', flush=True); sys.stdin.read()"


def test_the_grace_starts_at_the_first_look_and_ends_once() -> None:
    timer = GraceTimer(2.0)
    assert not timer.due(3, 10.0)  # first look at pipe 3: its grace starts
    assert not timer.due(3, 11.9)
    assert timer.due(3, 12.0)
    assert not timer.due(3, 99.0)  # one look per pipe


def test_another_pipe_starts_a_new_grace() -> None:
    timer = GraceTimer(2.0)
    assert not timer.due(1, 0.0)
    assert not timer.due(2, 1.5)
    assert not timer.due(2, 3.0)
    assert timer.due(2, 3.5)


def test_the_holder_of_a_pipe_s_write_end_is_found_and_killed() -> None:
    read_end, write_end = os.pipe()
    inode = os.fstat(read_end).st_ino
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"holding\n"
        assert pipe_holders(inode) == [holder.pid]  # palhm's own read end does not count
        killed = kill_holders([holder.pid], inode)
        assert holder.wait(60) == -9
        assert killed == [f"pid {holder.pid} ({shlex.join([sys.executable, '-c', HOLDER])})"]
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.stdout.close()
        os.close(read_end)


def test_a_process_no_longer_holding_the_pipe_is_not_killed() -> None:
    read_end, write_end = os.pipe()
    inode = os.fstat(read_end).st_ino
    other = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    os.close(write_end)
    try:
        assert other.stdout is not None
        assert other.stdout.readline() == b"holding\n"
        assert pipe_holders(inode) == []
        assert kill_holders([other.pid], inode) == []
        assert other.poll() is None
    finally:
        assert other.stdin is not None and other.stdout is not None
        other.stdin.close()
        assert other.wait(60) == 0
        other.stdout.close()
        os.close(read_end)
