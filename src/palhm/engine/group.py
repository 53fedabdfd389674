"""The processes of one call in one process group: started, waited for, killed, reaped.

    group = ProcessGroup()
    ending = group.start(cmd, stdin=..., stdout=..., stderr=..., tail=...)  # each child
    ready = group.wait(timeout)        # children that ended are recorded in their Ending
    group.terminate(GRACE_PERIOD)      # on failure: SIGTERM, grace, SIGKILL
    group.reap()                       # always, then group.close()

The first child founds a new process group, the others join it, so signalling the
group reaches the children and whatever they started. Ends are observed with
waitid(WNOWAIT), woken by pidfds (Linux >= 5.3; else every child is polled each
POLL_INTERVAL): the zombies stay until reap(), which keeps the group id reserved,
so a signal to the group can never hit a stranger that reused the id. The group is
recorded in palhm's run record (strays.py) from its creation to its reaping.

Other descriptors (the data pipe) can be waited on beside the children: watch_fd().
Not thread-safe: one thread uses a group.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from typing import Final

from palhm.engine import strays
from palhm.engine.judge import Ending
from palhm.engine.relay import StderrTail
from palhm.engine.spawn import spawn
from palhm.model import Exec

POLL_INTERVAL: Final = 0.1  # s: longest wait before `cancel` and timeouts are looked at
GRACE_PERIOD: Final = 2.0  # s between SIGTERM and SIGKILL when terminating


class _Child:
    """A started child: its process, its pidfd while watched, and how it ended."""

    __slots__ = ("ending", "proc", "pidfd", "reaped")  # a plain class: cheap to import

    def __init__(self, ending: Ending, proc: subprocess.Popen[bytes], pidfd: int | None) -> None:
        self.ending = ending
        self.proc = proc
        self.pidfd = pidfd
        self.reaped = False


class ProcessGroup:
    """The children of one call (module docstring)."""

    def __init__(self) -> None:
        self.pgid: int | None = None
        self.killing = False  # palhm began killing: later ends are consequences
        self.endings: list[Ending] = []  # one per child started, filled in as they end
        self._children: list[_Child] = []
        self._selector = selectors.DefaultSelector()
        self._pidfds = True  # every child has a pidfd in the selector

    def start(
        self, cmd: Exec, *, stdin: int | None, stdout: int | None, stderr: int, tail: StderrTail
    ) -> Ending:
        """Start `cmd` in the group (spawn.spawn); the caller keeps and closes its
        descriptors. Raises OSError / SubprocessError when it cannot be started."""
        proc = spawn(cmd, stdin=stdin, stdout=stdout, stderr=stderr, pgid=self.pgid)
        if self.pgid is None:
            self.pgid = proc.pid
            strays.register_group(proc.pid)  # found again if palhm is SIGKILLed
        pidfd = None
        if self._pidfds:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except (OSError, AttributeError):  # pidfd: Linux >= 5.3
                self._pidfds = False
        deadline = time.monotonic() + cmd.timeout if cmd.timeout is not None else None
        ending = Ending(cmd, len(self._children), deadline=deadline, tail=tail)
        child = _Child(ending, proc, pidfd)
        self._children.append(child)
        self.endings.append(ending)
        if pidfd is not None:
            self._selector.register(pidfd, selectors.EVENT_READ, child)
        return ending

    def watch_fd(self, fd: int, data: object) -> None:
        """Let wait() also return `data` when `fd` is readable."""
        self._selector.register(fd, selectors.EVENT_READ, data)

    def unwatch_fd(self, fd: int) -> None:
        """Stop watching `fd` (before closing it); nothing if it was not watched."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def wait(self, timeout: float) -> list[object]:
        """Wait up to `timeout` for a child to end or a watched fd to be readable.
        Records the ends; returns the `data` of the readable watched fds."""
        ready: list[object] = []
        for key, _ in self._selector.select(timeout):
            if isinstance(key.data, _Child):
                self._observe(key.data)  # its pidfd: it ended
            else:
                ready.append(key.data)
        if not self._pidfds:  # no pidfd to wake us: look at every child each time
            self.observe_all()
        return ready

    def all_exited(self) -> bool:
        return all(child.ending.exited for child in self._children)

    def all_reaped(self) -> bool:
        return all(child.reaped for child in self._children)

    def first_running(self) -> int | None:
        """The index of the first child that has not exited, None if all have."""
        return next((c.ending.index for c in self._children if not c.ending.exited), None)

    def observe_all(self) -> None:
        """Record the end of every child that ended, without reaping it."""
        for child in self._children:
            if not child.ending.exited:
                self._observe(child)

    def _observe(self, child: _Child) -> None:
        ending = child.ending
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            info = os.waitid(os.P_PID, child.proc.pid, flags)
        except ChildProcessError:  # reaped behind our back: Popen knows the status
            if child.proc.poll() is None:
                return
            child.reaped = True
            self._ended(child, child.proc.returncode)
            return
        if info is None:
            return
        if info.si_code == os.CLD_EXITED:
            ending.status = info.si_status
        else:
            ending.signum = info.si_status
        ending.exited = True
        ending.after_kill = self.killing
        self._forget_pidfd(child)

    def _ended(self, child: _Child, returncode: int) -> None:
        """Record an end known from a Popen return code (negative: the signal)."""
        ending = child.ending
        if returncode >= 0:
            ending.status = returncode
        else:
            ending.signum = -returncode
        ending.exited = True
        ending.after_kill = self.killing
        self._forget_pidfd(child)

    def _forget_pidfd(self, child: _Child) -> None:
        if child.pidfd is not None:
            self._selector.unregister(child.pidfd)
            os.close(child.pidfd)
            child.pidfd = None

    def begin_killing(self) -> None:
        """From now on palhm kills: ends already final are the children's own doing,
        later ones are consequences (Ending.after_kill)."""
        self.observe_all()
        self.killing = True

    def terminate(self, grace: float) -> None:
        """SIGTERM to the group, up to `grace` s for every child to go, then SIGKILL."""
        self.signal(signal.SIGTERM)
        end = time.monotonic() + grace
        while not self.all_exited():
            left = end - time.monotonic()
            if left <= 0:
                break
            self._selector.select(min(left, POLL_INTERVAL))
            self.observe_all()
        self.signal(signal.SIGKILL)
        self.observe_all()

    def signal(self, signum: int) -> None:
        """Send `signum` to the whole group (nothing once every child is reaped)."""
        # safe only while one of our children is unreaped: it keeps the group id taken
        if self.pgid is None or self.all_reaped():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def reap(self) -> None:
        """Wait for every child (blocking) and release the group id. A child whose end
        was not observed yet (SIGKILL is not instant) gets it recorded now."""
        for child in self._children:
            if not child.reaped:
                returncode = child.proc.wait()
                child.reaped = True
                if not child.ending.exited:
                    self._ended(child, returncode)
            self._forget_pidfd(child)
        if self.pgid is not None:
            strays.release_group(self.pgid)

    def close(self) -> None:
        """Free the selector; after reap()."""
        self._selector.close()
