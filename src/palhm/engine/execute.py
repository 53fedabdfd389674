"""All subprocess code lives here: one command (routines), a pipeline into a sink (backups).

API CONTRACT (other modules code against these signatures; keep them):

    run_command(cmd: Exec, *, context: str, verbosity: int,
                cancel: threading.Event | None = None) -> int
        Run one command (routine item). stdin is /dev/null. stdout/stderr go to
        palhm's own streams or /dev/null by cmd.vl_stdout / cmd.vl_stderr (A3.3); a
        tail of stderr is kept for the error message either way. Returns the exit
        status when cmd.ec accepts it, else raises CommandError(context, argv,
        "exited with status N" | "killed by SIGxxx" | "timed out after N s", tail).
        A command that cannot be started raises CommandError("could not be started:
        ..."). `cancel` set (before or while it runs) -> the command's process group
        is terminated and Cancelled is raised. Children left behind by a successful
        command (daemons) are not touched.

    run_pipeline(stages: Sequence[Exec], sink: ObjectSink, *, context: str,
                 verbosity: int, hasher: Hasher | None = None,
                 block_size: int = 1 << 20, cancel: threading.Event | None = None,
                 progress: Callable[[int], None] | None = None) -> PipelineResult
        Stages connected by OS pipes, no shell; first stdin /dev/null. The last
        stage always writes into a pipe that palhm empties into the sink, counting
        every byte: spliced into sink.splice_fd() when hasher is None and the sink
        offers one, else read in block_size chunks, hashed, and passed to
        sink.write() (one reused buffer: the sink must not keep `data` after
        write() returns). A sink that `discards` (null) gets nothing: the last
        stage writes to /dev/null. Every stage's status judged against its ec; the
        root cause is reported (not an upstream SIGPIPE, doc/design.md#execs-and-pipeline-stages).
        On failure,
        timeout or `cancel` being set: terminate the process group, grace period,
        kill, reap everything. sink.close() is called on success, sink.abort() on
        any failure. Raises PipelineError naming `context` + stage index/label
        ("task 't', object 'o', stage 2 (zstd)"), BackendError from the sink (also
        when the size it reports differs from the bytes palhm gave it), Cancelled
        when cancel was set. `progress(total_bytes)` is called from the calling
        thread as data flows. PipelineResult.size: the bytes palhm moved (0 when the
        sink discards). Descendants a stage left running in the pipeline's process
        group are killed when the pipeline ends; a process still holding the output
        STRAY_GRACE s after every stage exited (e.g. started with setsid) ends the
        object: palhm stops reading, kills it and warns (likewise a process holding
        the input of a stage once every stage before it exited).

Both are blocking and may be called from any thread, several at once. The caller
keeps the ability to run Python signal handlers: waits are select() calls of at
most POLL_INTERVAL, after which `cancel` is looked at.

How it works:
- Every child gets /dev/null or a pipe as stdin, a stderr pipe of its own, and
  PR_SET_PDEATHSIG=SIGKILL so it dies with palhm (even a SIGKILLed palhm). Children
  inherit the calling thread's signal mask (the `sigmask` builtin relies on that).
- All processes of one call share one new process group, so terminating the group
  reaches the stages and whatever they started. The group id stays reserved
  because palhm reaps its children only after the last signal to the group.
- One thread per call drains every child's stderr (relayed line by line to fd 2
  when the verbosity allows, a tail kept for messages), so a chatty stage never
  blocks on a full stderr pipe.
- Exits are observed with waitid(WNOWAIT) (woken by pidfds), which leaves the
  zombies in place until the end for the reason above.
- The data path runs in the calling thread, between those waits (_Pump). The end
  of an object is the end of its processes: once every stage exited, the output
  pipe may stay open STRAY_GRACE more seconds (a child finishing its last write);
  then palhm stops reading and SIGKILLs whatever still holds the pipe's write end.
  Only palhm's own can: the pipe was made by palhm (close-on-exec) and given to
  one stage alone. They are found in /proc and signalled through a pidfd. The
  same holds between stages: when the stages before stage N all exited and the
  pipe into stage N is still held open STRAY_GRACE s later, its holders are
  killed, so stage N sees its end of input instead of waiting forever.

Root cause of a failed pipeline, in order: cancel (Cancelled); the stage past
its timeout; the sink's error; else the most downstream stage that failed on its
own before palhm started killing -- a stage killed by SIGPIPE only when no other
stage failed (it means a later stage stopped reading early). Processes that end
after palhm began killing are consequences, never the reported cause.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import math
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, Protocol

from palhm import faults
from palhm.backends.base import ObjectSink
from palhm.engine import strays
from palhm.errors import (
    BackendError,
    Cancelled,
    CommandError,
    PipelineError,
    ResourceError,
    format_argv,
)
from palhm.model import Exec
from palhm.values import signal_name

log = logging.getLogger(__name__)

POLL_INTERVAL: Final = 0.1  # s: longest wait before `cancel` and timeouts are looked at
GRACE_PERIOD: Final = 2.0  # s between SIGTERM and SIGKILL when terminating
STRAY_GRACE: Final = 2.0  # s the output may stay open after every stage exited
STDERR_TAIL_LINES: Final = 20  # lines of a child's stderr kept for its error message
STDERR_WAIT: Final = 1.0  # s to wait for stderr EOF after the children are reaped
PIPE_SIZE: Final = 1 << 20  # bytes asked for the data pipes (best effort)

_F_SETPIPE_SZ: Final[int] = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ: Final[int] = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_PR_SET_PDEATHSIG: Final = 1
_TAIL_LINE_CHARS: Final = 400  # a tail line longer than this is cut
_STDERR_LINE_MAX: Final = 1 << 16  # bytes: relay a partial line once it is this long
_READ_CHUNK: Final = 1 << 16  # bytes read from a stderr pipe at a time
_DRAIN_READS: Final = 64  # reads of a pipe when forced to stop: a stray may never stop
_SMALL_WAKEUP: Final = 256 << 10  # bytes: a wake-up that moved less ...
_COALESCE_WAIT: Final = 0.0005  # s: ... is followed by this nap (a 1 MiB pipe only)
_BURST: Final = 16  # data chunks moved per wake-up before the stages are looked at again
_NO_SPLICE: Final = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})
_SPLICE_FLAGS: Final = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

Trigger = Literal["failed", "timeout", "cancel", "sink", "error"]


class Hasher(Protocol):
    """What run_pipeline needs of a checksum (hashlib, blake3, xxhash objects fit)."""

    def update(self, data: memoryview | bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StageResult:
    """How one stage ended. `status` is None when it was killed by `signal` (a name)."""

    argv: tuple[str, ...]
    label: str
    status: int | None
    signal: str | None
    accepted: bool


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """A successful pipeline: bytes stored, hex digest (None without hasher), stages."""

    size: int
    digest: str | None
    stages: tuple[StageResult, ...]


# --------------------------------------------------------------------------- public API


def run_command(
    cmd: Exec, *, context: str, verbosity: int, cancel: threading.Event | None = None
) -> int:
    """Run one command; see the module docstring for the contract."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{context}: cancelled")
    stdout = None if verbosity >= cmd.vl_stdout else subprocess.DEVNULL
    _flush_stdout()  # what palhm printed so far comes before the child's output
    try:
        with _Run(context=context, verbosity=verbosity, cancel=cancel, pipeline=False) as run:
            run.spawn(cmd, stdin=None, stdout=stdout)
            run.watch(None)
            run.finish(kill_strays=True)  # nothing the command started outlives it
    except OSError as error:  # no pipe or fd left (EMFILE), no process (EAGAIN)
        raise ResourceError(context, error) from None
    run.raise_failure(None)
    status = run.children[0].status
    assert status is not None  # accepted, so it exited normally
    return status


def run_pipeline(
    stages: Sequence[Exec],
    sink: ObjectSink,
    *,
    context: str,
    verbosity: int,
    hasher: Hasher | None = None,
    block_size: int = 1 << 20,
    cancel: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> PipelineResult:
    """Run `stages` into `sink`; see the module docstring for the contract."""
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    try:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{context}: cancelled")
        size, digest, results = _pump_pipeline(
            stages, sink, context, verbosity, hasher, block_size, cancel, progress
        )
    except OSError as error:  # no pipe or fd left (EMFILE), no process (EAGAIN)
        _abort_sink(sink, context)
        raise ResourceError(context, error) from None
    except BaseException:
        _abort_sink(sink, context)
        raise
    return PipelineResult(size=size, digest=digest, stages=results)


def _pump_pipeline(
    stages: Sequence[Exec],
    sink: ObjectSink,
    context: str,
    verbosity: int,
    hasher: Hasher | None,
    block_size: int,
    cancel: threading.Event | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, str | None, tuple[StageResult, ...]]:
    """Run the stages and the data path; close the sink on success. Raises on failure."""
    with _Run(context=context, verbosity=verbosity, cancel=cancel, pipeline=True) as run:
        pump = None
        if sink.discards:
            _spawn_stages(run, stages, discard=True)
        else:
            data_fd = _spawn_stages(run, stages, discard=False)
            assert data_fd is not None
            pump = _Pump(data_fd, sink, hasher, block_size, progress, context)
        run.watch(pump)
        run.finish(kill_strays=True)
    run.raise_failure(pump)
    stored = _close_sink(sink, context)
    if pump is None:
        return stored, None, run.results()
    if stored != pump.size:  # palhm counted every byte it gave the sink
        raise BackendError(
            f"{context}: the backend reports {stored} bytes stored, {pump.size} were written"
        )
    digest = hasher.hexdigest() if hasher is not None else None
    return pump.size, digest, run.results()


def _spawn_stages(run: _Run, stages: Sequence[Exec], *, discard: bool) -> int | None:
    """Start the stages connected by pipes. Returns the read end of the last stage's
    stdout pipe, or None when `discard`: the last stage then writes to /dev/null."""
    upstream: int | None = None  # read end of the previous stage's stdout
    for index, cmd in enumerate(stages):
        stdin, upstream = upstream, None
        write_end: int | None = None  # our copy of this stage's stdout
        try:
            if index == len(stages) - 1 and discard:
                write_end = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            else:
                upstream, write_end = _data_pipe()
            run.stdin_pipes.append(os.fstat(stdin).st_ino if stdin is not None else None)
            run.spawn(cmd, stdin=stdin, stdout=write_end)
        except BaseException:
            if upstream is not None:
                os.close(upstream)
            raise
        finally:
            # our copies go at once: a stage must see EOF / SIGPIPE when its peer dies
            if stdin is not None:
                os.close(stdin)
            if write_end is not None:
                os.close(write_end)
    return upstream


# --------------------------------------------------------------------------- helpers


def _flush_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()


def _data_pipe() -> tuple[int, int]:
    """A pipe (read, write), both close-on-exec, enlarged for throughput if allowed."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # EPERM past the per-user pipe quota: keep 64 KiB
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_end, write_end


def _pipe_size(fd: int) -> int:
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 0


def _environment(cmd: Exec) -> dict[str, str] | None:
    """palhm's environment with cmd.env added (doc/design.md#execs-and-pipeline-stages);
    None = inherit as is."""
    if not cmd.env:
        return None
    return {**os.environ, **cmd.env}


def _close_sink(sink: ObjectSink, context: str) -> int:
    try:
        return sink.close()
    except OSError as error:
        raise BackendError(f"{context}: {error}") from error


def _abort_sink(sink: ObjectSink, context: str) -> None:
    try:
        sink.abort()
    except Exception as error:  # the original failure is what the user must see
        log.warning("%s: could not abort the object: %s", context, error)


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


# --------------------------------------------------------------------------- stderr


class _StderrTail:
    """The last lines of one child's stderr; relays whole lines to fd 2 when `forward`."""

    def __init__(self, forward: bool) -> None:
        self.forward = forward
        self._lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        self._partial += data
        end = self._partial.rfind(b"\n") + 1
        if end == 0:
            if len(self._partial) < _STDERR_LINE_MAX:
                return
            end = len(self._partial)
        chunk = bytes(self._partial[:end])
        del self._partial[:end]
        self._emit(chunk)

    def finish(self) -> None:
        if self._partial:
            self._emit(bytes(self._partial) + b"\n")
            self._partial.clear()

    def lines(self) -> list[str]:
        return list(self._lines)

    def _emit(self, chunk: bytes) -> None:
        if self.forward:
            _write_all(2, chunk)
        for raw in chunk.rstrip(b"\n").rsplit(b"\n", STDERR_TAIL_LINES)[-STDERR_TAIL_LINES:]:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._lines.append(line[:_TAIL_LINE_CHARS])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError:  # palhm's own stderr is gone: nothing better to do with it
            return
        view = view[written:]


class _StderrRelay:
    """Drains the stderr pipes of one call's children in one thread."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._stop_read, self._stop_write = os.pipe()
        self._selector.register(self._stop_read, selectors.EVENT_READ, None)
        self._open = 0
        self._thread = threading.Thread(target=self._run, name="palhm-stderr", daemon=True)

    def add(self, fd: int, tail: _StderrTail) -> None:
        """Take ownership of `fd` (read end of a stderr pipe). Before start() only."""
        self._selector.register(fd, selectors.EVENT_READ, tail)
        self._open += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Wait up to `timeout` for EOF on every pipe, then read what is left and stop
        (a descendant that left the process group may hold a pipe open forever)."""
        if self._thread.ident is None:  # never started: a stage could not be started
            self._drain_all()
        else:
            self._thread.join(timeout)
            if self._thread.is_alive():
                os.write(self._stop_write, b"x")
                self._thread.join()
        self._selector.close()
        os.close(self._stop_read)
        os.close(self._stop_write)

    def _run(self) -> None:
        # signals go to the main thread, which runs Python handlers (and sigmask holds)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while self._open:
            for key, _ in self._selector.select():
                if key.data is None:
                    self._drain_all()
                    return
                self._read(key.fd, key.data)

    def _read(self, fd: int, tail: _StderrTail) -> None:
        try:
            data = os.read(fd, _READ_CHUNK)
        except OSError:
            data = b""
        if data:
            tail.feed(data)
        else:
            self._close(fd, tail)

    def _drain_all(self) -> None:
        """Read what the pipes hold now (bounded), then close them all."""
        for key in [key for key in self._selector.get_map().values() if key.data is not None]:
            os.set_blocking(key.fd, False)
            with contextlib.suppress(OSError):
                for _ in range(_DRAIN_READS):
                    data = os.read(key.fd, _READ_CHUNK)
                    if not data:
                        break
                    key.data.feed(data)
            self._close(key.fd, key.data)

    def _close(self, fd: int, tail: _StderrTail) -> None:
        tail.finish()
        self._selector.unregister(fd)
        os.close(fd)
        self._open -= 1


# --------------------------------------------------------------------------- data path


class _Pump:
    """Moves the last stage's output from its pipe into the sink, counting every byte.

    One thread (the caller's, between its waits for the stages) does it all: on 2
    cores already busy with the stages, a second thread and the hand-over between
    the two cost more than they overlap (bench/README.md). The pipe is non-blocking:
    each wake-up moves what the pipe holds, up to _BURST chunks, then goes back to
    watching the stages and `cancel`.

    - sink offers splice_fd() and no checksum: splice(2) pipe -> object file, no
      byte copied into Python;
    - else: read into one reused buffer, hash it while it is hot in the cache, and
      hand it to sink.write() (the path every sink supports).

    `size` counts exactly the bytes the sink accepted; the stages never get the
    object's file descriptor, so nothing else can write into the object.
    A sink error is kept in `error` and the run is stopped.
    """

    def __init__(
        self,
        fd: int,
        sink: ObjectSink,
        hasher: Hasher | None,
        block_size: int,
        progress: Callable[[int], None] | None,
        context: str,
    ) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.coalesce = _pipe_size(fd) >= PIPE_SIZE
        self.sink = sink
        self.hasher = hasher
        self.block_size = block_size
        self.progress = progress
        self.context = context
        self.splice_to = sink.splice_fd() if hasher is None else None
        self.view = memoryview(bytearray(block_size)) if self.splice_to is None else None
        self.filled = 0  # bytes of `view` read, not yet stored
        self.size = 0  # bytes the sink accepted
        self.eof = False
        self.error: BackendError | None = None

    def on_readable(self) -> int:
        """Move what the pipe holds now into the sink (at most _BURST reads). Returns
        the bytes taken from the pipe."""
        moved = 0
        for _ in range(_BURST):
            if self.eof or self.error is not None:
                break
            try:
                count = self._splice() if self.splice_to is not None else self._read()
            except BlockingIOError:  # drained: back to watching the stages
                break
            except BackendError as error:
                self.error = error
                break
            except Exception as error:  # a bug in a sink must not hang the run
                self.error = BackendError(f"{self.context}: sink failed: {error!r}")
                break
            if count == 0:
                self.eof = True
                break
            moved += count
        return moved

    def _splice(self) -> int:
        """Splice what the pipe holds into the file. BlockingIOError when empty."""
        assert self.splice_to is not None
        try:
            count = os.splice(self.fd, self.splice_to, self.block_size, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            raise
        except OSError as error:
            if error.errno not in _NO_SPLICE:
                raise BackendError(
                    f"{self.context}: cannot write the object: {error.strerror}"
                ) from None
            # this file cannot be spliced into (nothing moved): write() from now on
            self.splice_to = None
            self.view = memoryview(bytearray(self.block_size))
            return self._read()
        if count:
            self._stored(count)
        return count

    def _read(self) -> int:
        """Read into the buffer; hash and store it when full or at EOF. The pipe often
        holds a few KiB at a time: hashing and writing whole buffers keeps the cost
        per byte low. BlockingIOError when the pipe is empty."""
        assert self.view is not None
        count = os.readv(self.fd, [self.view[self.filled :]])
        self.filled += count
        if count == 0 or self.filled == len(self.view):
            self.flush()
        return count

    def flush(self) -> None:
        """Hash and store what the buffer holds (read path; nothing to do when splicing)."""
        if not self.filled or self.view is None:
            return
        with self.view[: self.filled] as chunk:
            if self.hasher is not None:
                self.hasher.update(chunk)
            try:
                self.sink.write(chunk)
            except OSError as error:
                raise BackendError(f"{self.context}: {error}") from error
        count, self.filled = self.filled, 0
        self._stored(count)

    def _stored(self, count: int) -> None:
        self.size += count
        faults.crashpoint("chunk-written")
        if self.progress is not None:
            self.progress(self.size)


# --------------------------------------------------------------------------- processes


@dataclass(eq=False, slots=True)
class _Child:
    cmd: Exec
    index: int
    proc: subprocess.Popen[bytes]
    tail: _StderrTail
    pidfd: int | None
    deadline: float | None
    status: int | None = None
    signum: int | None = None
    exited: bool = False
    after_kill: bool = False  # ended after palhm began killing: a consequence
    timed_out: bool = False
    reaped: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is not None and self.cmd.ec.accepts(self.status)


class _Run:
    """The children of one run_command / run_pipeline call: spawn, watch, kill, reap.

    A context manager: leaving it by an exception terminates and reaps everything.
    """

    def __init__(
        self, *, context: str, verbosity: int, cancel: threading.Event | None, pipeline: bool
    ) -> None:
        self.context = context
        self.verbosity = verbosity
        self.cancel = cancel
        self.pipeline = pipeline
        self.children: list[_Child] = []
        self.pgid: int | None = None
        self.trigger: Trigger | None = None
        self.killing = False
        self.pump: _Pump | None = None
        self.stdin_pipes: list[int | None] = []  # pipeline: inode of each stage's stdin pipe
        self._stray_watch: tuple[int, float] | None = None  # (stage index, end of grace)
        self._selector = selectors.DefaultSelector()
        self._pidfds = True  # every child has a pidfd in the selector
        self._relay = _StderrRelay()

    def __enter__(self) -> _Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and not all(child.reaped for child in self.children):
            self.trigger = self.trigger or "error"
            self.finish(kill_strays=True)
        self._close_pump()
        self._selector.close()
        self._relay.stop(STDERR_WAIT)

    # ----------------------------------------------------------------- spawning

    def where(self, index: int, cmd: Exec) -> str:
        """How messages name the child at `index`: the context, plus the stage."""
        if not self.pipeline:
            return self.context
        return f"{self.context}, stage {index + 1} ({cmd.label})"

    def spawn(self, cmd: Exec, *, stdin: int | None, stdout: int | None) -> None:
        """Start `cmd` in this run's process group. Raises CommandError/PipelineError
        when it cannot be started."""
        index = len(self.children)
        where = self.where(index, cmd)
        log.debug("%s: running %s", where, format_argv(cmd.argv))
        err_read, err_write = os.pipe()
        try:
            proc = self._popen(cmd, stdin, stdout, err_write)
        except (OSError, subprocess.SubprocessError) as error:
            os.close(err_read)
            reason = getattr(error, "strerror", None) or str(error)
            error_class = PipelineError if self.pipeline else CommandError
            raise error_class(where, cmd.argv, f"could not be started: {reason}") from error
        finally:
            os.close(err_write)  # only the child writes its stderr
        if self.pgid is None:
            self.pgid = proc.pid
            strays.register_group(proc.pid)  # found again if palhm is SIGKILLed
        self._track(cmd, index, proc, err_read)

    def _popen(
        self, cmd: Exec, stdin: int | None, stdout: int | None, stderr: int
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(cmd.argv),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=stdout,
            stderr=stderr,
            env=_environment(cmd),
            close_fds=True,
            # the first child founds the group, the others join it (same session, so
            # setpgid is allowed; palhm stays in the terminal's foreground group)
            process_group=0 if self.pgid is None else self.pgid,
            preexec_fn=_child_setup(),
        )

    def _track(self, cmd: Exec, index: int, proc: subprocess.Popen[bytes], err: int) -> None:
        tail = _StderrTail(forward=self.verbosity >= cmd.vl_stderr)
        self._relay.add(err, tail)
        pidfd = None
        if self._pidfds:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except (OSError, AttributeError):  # pidfd: Linux >= 5.3
                self._pidfds = False
        deadline = time.monotonic() + cmd.timeout if cmd.timeout is not None else None
        child = _Child(cmd, index, proc, tail, pidfd, deadline)
        self.children.append(child)
        if pidfd is not None:
            self._selector.register(pidfd, selectors.EVENT_READ, child)

    # ----------------------------------------------------------------- watching

    def watch(self, pump: _Pump | None) -> None:
        """Wait until every child exited and the data reached EOF, or a trigger to stop
        (failure, timeout, cancel, sink error) happened. When every stage exited but
        the output is still held open (a process a stage left behind), the data is
        taken for up to STRAY_GRACE more seconds, then reading stops (_stop_strays)."""
        self._relay.start()
        self.pump = pump
        if pump is not None:
            self._selector.register(pump.fd, selectors.EVENT_READ, pump)
        while self.trigger is None and not self._done():
            for key, _ in self._selector.select(self._wait_time()):
                if isinstance(key.data, _Child):
                    self._observe(key.data)  # its pidfd: it ended
                elif pump is not None and pump.fd >= 0:
                    self._pump_once(pump)
            if not self._pidfds:  # no pidfd to wake us: look at every child each time
                self._observe_all()
            self._check()
            if self.pipeline and self.trigger is None:
                self._watch_strays(pump)

    def _pump_once(self, pump: _Pump) -> None:
        moved = pump.on_readable()
        if pump.eof:
            self._close_pump()
        if pump.error is not None:
            self.trigger = "sink"
            self._close_pump()
        elif 0 < moved < _SMALL_WAKEUP and pump.coalesce:
            # A stage writing a few KiB at a time would wake palhm for each write; a
            # short nap lets the pipe fill (the writer never blocks below 2 GB/s).
            time.sleep(_COALESCE_WAIT)

    def _watch_strays(self, pump: _Pump | None) -> None:
        """The stages up to some point have all exited, but the pipe out of the last of
        them is not at EOF: a process they left behind may hold it. Give it
        STRAY_GRACE s, then look once: kill what still holds the pipe's write end."""
        running = next((child.index for child in self.children if not child.exited), None)
        inode: int | None
        if running is None:  # every stage exited: the pipe palhm reads
            inode = None if pump is None or pump.eof else os.fstat(pump.fd).st_ino
            at = len(self.children)
        else:  # the pipe into the first stage still running
            inode = self.stdin_pipes[running] if 0 < running < len(self.stdin_pipes) else None
            at = running
        if inode is None:
            return
        now = time.monotonic()
        if self._stray_watch is None or self._stray_watch[0] != at:
            self._stray_watch = (at, now + STRAY_GRACE)
        elif now >= self._stray_watch[1]:
            self._stray_watch = (at, math.inf)  # one look per pipe
            if running is None:
                assert pump is not None
                self._stop_strays(pump, inode)
            else:
                self._kill_strays(inode, f"stage {at} ({self.children[at - 1].cmd.label})")

    def _kill_strays(self, inode: int, writer: str) -> None:
        """Kill the processes holding the write end of pipe `inode` (all the stages
        writing it have exited). Each holds a pipe palhm made and gave to one stage
        only, so it is one of that stage's descendants: palhm's own."""
        killed = [
            text for text in (_kill_holder(pid, inode) for pid in _pipe_holders(inode)) if text
        ]
        if killed:
            log.warning(
                "%s: %s exited but its output was still held open %g s later, by: %s; killed",
                self.context,
                writer,
                STRAY_GRACE,
                ", ".join(killed),
            )

    def _stop_strays(self, pump: _Pump, inode: int) -> None:
        """Every stage exited, the output is still open: stop reading (the object is
        what was written until now) and kill what holds it. The processes never had
        the object file, so they cannot change it."""
        holders = _pipe_holders(inode)
        pump.on_readable()  # what they wrote up to now
        try:
            pump.flush()
        except BackendError as error:
            pump.error = error
            self.trigger = "sink"
        pump.eof = True
        self._close_pump()
        killed = _kill_holders(holders, inode)
        log.warning(
            "%s: every stage exited but its output was still open %g s later:"
            " stopped reading; the object holds the %d bytes written until then;"
            " process(es) holding it killed: %s",
            self.context,
            STRAY_GRACE,
            pump.size,
            ", ".join(killed) or "none found",
        )

    def _done(self) -> bool:
        pump_done = self.pump is None or self.pump.eof
        return pump_done and all(child.exited for child in self.children)

    def _wait_time(self) -> float:
        now = time.monotonic()
        wait = POLL_INTERVAL
        for child in self.children:
            if child.deadline is not None and not child.exited:
                wait = min(wait, max(0.0, child.deadline - now))
        return wait

    def _check(self) -> None:
        """Set the trigger to stop: a stage failed on its own, timed out, or cancel."""
        if self.trigger is not None:
            return
        if any(c.exited and not c.accepted and c.signum != signal.SIGPIPE for c in self.children):
            self.trigger = "failed"
            return
        now = time.monotonic()
        for child in self.children:
            if not child.exited and child.deadline is not None and now >= child.deadline:
                child.timed_out = True
                self.trigger = "timeout"
                return
        if self.cancel is not None and self.cancel.is_set():
            self.trigger = "cancel"

    def _observe_all(self) -> None:
        for child in self.children:
            if not child.exited:
                self._observe(child)

    def _observe(self, child: _Child) -> None:
        """Record the child's end if it ended, without reaping it (see module doc)."""
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            info = os.waitid(os.P_PID, child.proc.pid, flags)
        except ChildProcessError:  # reaped behind our back: Popen knows the status
            if child.proc.poll() is None:
                return
            child.reaped = True
            code = child.proc.returncode
            child.status, child.signum = (code, None) if code >= 0 else (None, -code)
        else:
            if info is None:
                return
            if info.si_code == os.CLD_EXITED:
                child.status = info.si_status
            else:
                child.signum = info.si_status
        child.exited = True
        child.after_kill = self.killing
        self._forget_pidfd(child)

    def _forget_pidfd(self, child: _Child) -> None:
        if child.pidfd is not None:
            self._selector.unregister(child.pidfd)
            os.close(child.pidfd)
            child.pidfd = None

    # ----------------------------------------------------------------- ending

    def finish(self, *, kill_strays: bool) -> None:
        """Terminate if a trigger fired, else (pipelines) kill leftover descendants in
        the group; then reap every child."""
        if self.trigger is not None:
            self._terminate()
        elif kill_strays:
            self._signal_group(signal.SIGKILL)
        for child in self.children:
            if not child.reaped:
                child.proc.wait()
                child.reaped = True
            self._forget_pidfd(child)
        if self.pgid is not None:
            strays.release_group(self.pgid)

    def _terminate(self) -> None:
        """SIGTERM to the group, up to GRACE_PERIOD for it to go, then SIGKILL."""
        self._observe_all()  # statuses that are already final are not our doing
        self.killing = True
        self._close_pump()  # writers into it get SIGPIPE
        self._signal_group(signal.SIGTERM)
        end = time.monotonic() + GRACE_PERIOD
        while not all(child.exited for child in self.children):
            left = end - time.monotonic()
            if left <= 0:
                break
            self._selector.select(min(left, POLL_INTERVAL))
            self._observe_all()
        self._signal_group(signal.SIGKILL)
        self._observe_all()

    def _signal_group(self, signum: int) -> None:
        # safe only while one of our children is unreaped: it keeps the group id taken
        if self.pgid is None or all(child.reaped for child in self.children):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def _close_pump(self) -> None:
        pump = self.pump
        if pump is None:
            return
        if pump.fd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(pump.fd)
            os.close(pump.fd)
            pump.fd = -1

    # ----------------------------------------------------------------- verdict

    def raise_failure(self, pump: _Pump | None) -> None:
        """After finish(): raise the root cause of a failure (module doc), if any."""
        if self.trigger == "cancel":
            raise Cancelled(f"{self.context}: cancelled")
        if self.trigger == "sink" and pump is not None and pump.error is not None:
            raise pump.error
        culprit = self._culprit()
        if culprit is None:
            return
        error_class = PipelineError if self.pipeline else CommandError
        raise error_class(
            self.where(culprit.index, culprit.cmd),
            culprit.cmd.argv,
            self._outcome(culprit),
            culprit.tail.lines(),
        )

    def _culprit(self) -> _Child | None:
        timed_out = [child for child in self.children if child.timed_out]
        if timed_out:
            return timed_out[0]
        failed = [c for c in self.children if not c.accepted and not c.after_kill]
        on_their_own = [c for c in failed if c.signum != signal.SIGPIPE]
        candidates = on_their_own or failed
        return candidates[-1] if candidates else None

    def _outcome(self, child: _Child) -> str:
        if child.timed_out:
            return f"timed out after {child.cmd.timeout:g} s"
        if child.signum is not None:
            outcome = f"killed by {signal_name(child.signum)}"
            if child.signum == signal.SIGPIPE and self.pipeline:
                outcome += f" ({self._reader_of(child)} stopped reading early)"
            return outcome
        outcome = f"exited with status {child.status}"
        if child.cmd.ec.text != "==0":
            outcome += f" (accepted: {child.cmd.ec.text})"
        return outcome

    def _reader_of(self, child: _Child) -> str:
        if child.index + 1 < len(self.children):
            return f"stage {child.index + 2} ({self.children[child.index + 1].cmd.label})"
        return "the sink"

    def results(self) -> tuple[StageResult, ...]:
        return tuple(
            StageResult(
                argv=child.cmd.argv,
                label=child.cmd.label,
                status=child.status,
                signal=signal_name(child.signum) if child.signum is not None else None,
                accepted=child.accepted,
            )
            for child in self.children
        )


def _pipe_holders(inode: int) -> list[int]:
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


def _kill_holders(pids: list[int], inode: int) -> list[str]:
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
            argv = stream.read(_TAIL_LINE_CHARS).split(b"\0")
    except OSError:
        return "?"
    return format_argv([arg.decode(errors="replace") for arg in argv if arg]) or "?"
