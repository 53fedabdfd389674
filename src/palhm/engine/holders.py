"""Processes a stage left behind, holding a pipe of the pipeline open.

A pipe palhm makes is close-on-exec and given to one stage alone, so once every
stage writing it has exited, whatever still holds its write end is one of their
descendants: palhm's own. Such a process keeps the reader waiting for an end of
input (a daemon started with setsid, outside the pipeline's process group).

    timer = GraceTimer(STRAY_GRACE)
    if timer.due(at, time.monotonic()):          # polled; True once per pipe
        killed = kill_holders(pipe_holders(inode), inode)

Holders are found in /proc (no /proc: none are found, nothing is killed) and
signalled through a pidfd, which pins the process: a recycled pid is never hit.
"""

from __future__ import annotations

import math
import os
import signal
from typing import Final

from palhm.engine.relay import TAIL_LINE_CHARS
from palhm.errors import format_argv

STRAY_GRACE: Final = 2.0  # s a pipe may stay open after every stage writing it exited


class GraceTimer:
    """Says once per pipe when its grace is over.

    `at` names the pipe being watched (e.g. the index of the stage reading it);
    watching another pipe starts a new grace. After due() returned True for a pipe,
    it never does again for that pipe (one look per pipe).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._watch: tuple[int, float] | None = None  # (pipe, end of its grace)

    def due(self, at: int, now: float) -> bool:
        """Pipe `at` is still open at time `now`: whether its grace just ended."""
        if self._watch is None or self._watch[0] != at:
            self._watch = (at, now + self.grace)
            return False
        if now >= self._watch[1]:
            self._watch = (at, math.inf)
            return True
        return False


def pipe_holders(inode: int) -> list[int]:
    """Pids of the processes (that palhm may look at) holding the write end of pipe
    `inode` open. palhm itself closed its copy when it started the last stage."""
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: nothing can be found, nothing is killed
        return []
    return [
        int(entry)
        for entry in entries
        if entry.isdigit() and int(entry) != me and _holds(int(entry), inode)
    ]


def _holds(pid: int, inode: int) -> bool:
    """Whether `pid` has the write end of pipe `inode` open."""
    link = f"pipe:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to look at
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != link:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                flags = next(line for line in info if line.startswith("flags:"))
        except (OSError, StopIteration):
            continue
        if int(flags.split()[1], 8) & os.O_ACCMODE == os.O_WRONLY:
            return True
    return False


def kill_holders(pids: list[int], inode: int) -> list[str]:
    """Kill each of `pids` still holding pipe `inode`; how messages name the killed."""
    return [text for text in (_kill_holder(pid, inode) for pid in pids) if text]


def _kill_holder(pid: int, inode: int) -> str:
    """SIGKILL `pid` if it still holds pipe `inode` (a pidfd pins the process, so a
    recycled pid is never hit). Returns how the message names it, "" if it was gone."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return ""
    try:
        if not _holds(pid, inode):
            return ""
        name = _process_name(pid)
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        return ""
    finally:
        os.close(pidfd)
    return f"pid {pid} ({name})"


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            argv = stream.read(TAIL_LINE_CHARS).split(b"\0")
    except OSError:
        return "?"
    return format_argv([arg.decode(errors="replace") for arg in argv if arg]) or "?"
