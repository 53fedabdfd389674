"""Starting one process: argv only, its descriptors, its process group, its death.

    proc = spawn(cmd, stdin=fd_or_None, stdout=fd_or_None, stderr=fd, pgid=None)

`spawn` starts `cmd.argv` with `execve` (never a shell), with palhm's environment
plus `cmd.env` (doc/design.md#execs-and-pipeline-stages). The child gets:

- stdin: `stdin`, or /dev/null when None; stdout: `stdout` (None: palhm's own);
  stderr: `stderr`; no other descriptor (close_fds);
- process group `pgid`, or a new group it leads when None (setpgid: palhm stays
  in the terminal's foreground group);
- PR_SET_PDEATHSIG=SIGKILL, so it dies with palhm, even a SIGKILLed palhm; and the
  calling thread's signal mask (the `sigmask` builtin relies on that).

The caller keeps its copies of `stdin`, `stdout` and `stderr` and must close them
once the child is started: a stage sees EOF or SIGPIPE only when every other
holder of the pipe closed it. Raises OSError or subprocess.SubprocessError when the
process cannot be started.

`data_pipe` makes the pipes between stages (close-on-exec: only the stage that is
given an end holds it), `flush_stdout` writes out what palhm printed so far before
a child writes to the same stream.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Final

from palhm.model import Exec

PIPE_SIZE: Final = 1 << 20  # bytes asked for the data pipes (best effort)

_F_SETPIPE_SZ: Final[int] = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ: Final[int] = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_PR_SET_PDEATHSIG: Final = 1


def spawn(
    cmd: Exec, *, stdin: int | None, stdout: int | None, stderr: int, pgid: int | None
) -> subprocess.Popen[bytes]:
    """Start `cmd` as the module docstring says; returns its Popen (not waited for)."""
    return subprocess.Popen(
        list(cmd.argv),
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=stdout,
        stderr=stderr,
        env=environment(cmd),
        close_fds=True,
        # the first child founds the group, the others join it (same session, so
        # setpgid is allowed; palhm stays in the terminal's foreground group)
        process_group=0 if pgid is None else pgid,
        preexec_fn=_child_setup(),
    )


def environment(cmd: Exec) -> dict[str, str] | None:
    """palhm's environment with cmd.env added (doc/design.md#execs-and-pipeline-stages);
    None = inherit as is."""
    if not cmd.env:
        return None
    return {**os.environ, **cmd.env}


def data_pipe() -> tuple[int, int]:
    """A pipe (read, write), both close-on-exec, enlarged for throughput if allowed."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # EPERM past the per-user pipe quota: keep 64 KiB
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_end, write_end


def pipe_size(fd: int) -> int:
    """The capacity of pipe `fd` in bytes, 0 when it cannot be told."""
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 0


def flush_stdout() -> None:
    """Write out palhm's buffered stdout (gone or closed stdout: nothing to do)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return function


def _die_with_parent(prctl: Callable[..., int], parent: int) -> None:
    """preexec_fn: in the child, between fork and exec. Only two syscalls, no locks."""
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # palhm died before prctl took effect
        os._exit(255)


def _child_setup() -> Callable[[], None] | None:
    prctl = _prctl()
    if prctl is None:
        return None
    return functools.partial(_die_with_parent, prctl, os.getpid())
