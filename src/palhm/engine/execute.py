"""All subprocess code goes through here: one command (routines), a pipeline into a sink.

API CONTRACT (other modules code against these signatures; keep them):

    run_command(cmd: Exec, *, context: str, verbosity: int,
                cancel: threading.Event | None = None) -> int
        Run one command (routine item). stdin is /dev/null. stdout/stderr go to
        palhm's own streams or /dev/null by cmd.vl_stdout / cmd.vl_stderr
        (doc/design.md#execs-and-pipeline-stages); a tail of stderr is kept for the
        error message either way. Returns the exit
        status when cmd.ec accepts it, else raises CommandError(context, argv,
        "exited with status N" | "killed by SIGxxx" | "timed out after N s", tail).
        A command that cannot be started raises CommandError("could not be started:
        ..."). `cancel` set (before or while it runs) -> the command's process group
        is terminated and Cancelled is raised. Whatever the command left running in
        its process group is killed when it ends, success or not (a daemon that
        must outlive it starts a session of its own, as start-stop-daemon does).

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
        root cause is reported (not an upstream SIGPIPE,
        doc/design.md#execs-and-pipeline-stages). On failure, timeout or `cancel`
        being set: terminate the process group, grace period, kill, reap everything.
        sink.close() is called on success, sink.abort() on any failure. Raises
        PipelineError naming `context` + stage index/label
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

The parts, each with its own module and contract (doc/design.md#execution):
- spawn.py: starting one process: argv only, its descriptors (close_fds, stdin
  /dev/null, close-on-exec data pipes), its process group, PR_SET_PDEATHSIG.
- relay.py: one thread per call drains every child's stderr, relays it line by
  line to fd 2 when the verbosity allows and keeps a tail for messages.
- group.py: the children of one call in one process group: exits observed with
  waitid(WNOWAIT) woken by pidfds (the zombies keep the group id reserved until
  the last signal), terminate (SIGTERM, grace, SIGKILL), reap.
- judge.py: plain data: when to stop (a stage failed on its own, a timeout,
  cancel) and the root cause and message of a failure.
- pump.py: the data path, in the calling thread between those waits: splice or
  read + hash + write into the sink, counting every byte.
- holders.py: processes a stage left holding a pipe open. Once every stage
  exited, the output pipe may stay open STRAY_GRACE more seconds (a child
  finishing its last write); then palhm stops reading and SIGKILLs whatever still
  holds the pipe's write end. The same holds between stages: when the stages
  before stage N all exited and the pipe into stage N is still held open
  STRAY_GRACE s later, its holders are killed, so stage N sees its end of input.
- this module: the Supervisor that puts them together for one call (also used
  by ops/feed.py and ops/drill.py), and the two functions above.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from palhm.backends.base import ObjectSink
from palhm.engine import judge
from palhm.engine.group import GRACE_PERIOD, POLL_INTERVAL, ProcessGroup
from palhm.engine.holders import STRAY_GRACE, GraceTimer, kill_holders, pipe_holders
from palhm.engine.judge import Ending, StageResult, Trigger
from palhm.engine.pump import Hasher, Pump
from palhm.engine.relay import STDERR_TAIL_LINES, STDERR_WAIT, StderrRelay, StderrTail
from palhm.engine.spawn import data_pipe, flush_stdout
from palhm.errors import (
    BackendError,
    Cancelled,
    CommandError,
    PipelineError,
    ResourceError,
    format_argv,
)
from palhm.model import Exec
from palhm.records import record

__all__ = [
    "GRACE_PERIOD",
    "POLL_INTERVAL",
    "STDERR_TAIL_LINES",
    "STRAY_GRACE",
    "Hasher",
    "PipelineResult",
    "StageResult",
    "Supervisor",
    "run_command",
    "run_pipeline",
]

log = logging.getLogger(__name__)


@record
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
    flush_stdout()  # what palhm printed so far comes before the child's output
    try:
        with Supervisor(context=context, verbosity=verbosity, cancel=cancel) as run:
            run.start(cmd, stdin=None, stdout=stdout)
            run.watch(None)
            run.finish(kill_strays=True)  # nothing the command started outlives it
    except OSError as error:  # no pipe or fd left (EMFILE), no process (EAGAIN)
        raise ResourceError(context, error) from None
    run.raise_failure()
    status = run.endings[0].status
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
        size, digest, stage_results = _pump_pipeline(
            stages, sink, context, verbosity, hasher, block_size, cancel, progress
        )
    except OSError as error:  # no pipe or fd left (EMFILE), no process (EAGAIN)
        _abort_sink(sink, context)
        raise ResourceError(context, error) from None
    except BaseException:
        _abort_sink(sink, context)
        raise
    return PipelineResult(size=size, digest=digest, stages=stage_results)


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
    with Supervisor(context=context, verbosity=verbosity, cancel=cancel, pipeline=True) as run:
        pump = None
        if sink.discards:
            _spawn_stages(run, stages, discard=True)
        else:
            data_fd = _spawn_stages(run, stages, discard=False)
            assert data_fd is not None
            pump = Pump(data_fd, sink, hasher, block_size, progress, context)
        run.watch(pump)
        run.finish(kill_strays=True)
    run.raise_failure()
    stored = _close_sink(sink, context)
    if pump is None:
        return stored, None, run.results()
    if stored != pump.size:  # palhm counted every byte it gave the sink
        raise BackendError(
            f"{context}: the backend reports {stored} bytes stored, {pump.size} were written"
        )
    digest = hasher.hexdigest() if hasher is not None else None
    return pump.size, digest, run.results()


def _spawn_stages(run: Supervisor, stages: Sequence[Exec], *, discard: bool) -> int | None:
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
                upstream, write_end = data_pipe()
            run.track_input(stdin)
            run.start(cmd, stdin=stdin, stdout=write_end)
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


# --------------------------------------------------------------------------- supervisor


class Supervisor:
    """The children of one call put together: started, watched, stopped, judged.

        with Supervisor(context=..., verbosity=..., cancel=..., pipeline=...) as run:
            run.start(cmd, stdin=fd_or_None, stdout=fd_or_None)   # each stage in order
            run.watch(pump_or_None)     # until all ended (and the data at EOF), or a
            run.finish(kill_strays=...) # trigger to stop; then stop and reap them
        run.raise_failure()             # the root cause (judge.py), if any

    The children share one process group (group.py), their stderr is relayed
    (relay.py) at `verbosity`, and `cancel` is looked at every POLL_INTERVAL.
    `pipeline` names each child as a stage in messages. Leaving the block by an
    exception terminates and reaps everything. One thread uses a Supervisor.
    """

    def __init__(
        self,
        *,
        context: str,
        verbosity: int,
        cancel: threading.Event | None,
        pipeline: bool = False,
    ) -> None:
        self.context = context
        self.verbosity = verbosity
        self.cancel = cancel
        self.pipeline = pipeline
        self.trigger: Trigger | None = None  # why the run stops early (judge.py)
        self.pump: Pump | None = None
        self._inputs: list[int | None] = []  # inode of each stage's stdin pipe
        self._group = ProcessGroup()
        self._relay = StderrRelay()
        self._strays = GraceTimer(STRAY_GRACE)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and not self._group.all_reaped():
            self.trigger = self.trigger or "error"
            self.finish(kill_strays=True)
        self._close_pump()
        self._group.close()
        self._relay.stop(STDERR_WAIT)

    @property
    def pgid(self) -> int | None:
        """The process group of the children (None before the first one started)."""
        return self._group.pgid

    @property
    def endings(self) -> list[Ending]:
        """How each child ended, in the order they were started."""
        return self._group.endings

    def where(self, index: int, cmd: Exec) -> str:
        """How messages name the child at `index`: the context, plus the stage."""
        return judge.place(self.context, index, cmd, pipeline=self.pipeline)

    def results(self) -> tuple[StageResult, ...]:
        return judge.results(self._group.endings)

    # ----------------------------------------------------------------- starting

    def track_input(self, stdin: int | None) -> None:
        """Pipelines: before starting the next stage, give the pipe into it, so a
        process left holding it once the stages before it exited is killed."""
        self._inputs.append(os.fstat(stdin).st_ino if stdin is not None else None)

    def start(self, cmd: Exec, *, stdin: int | None, stdout: int | None) -> None:
        """Start `cmd` as the next child (spawn.py; the caller closes its copies of
        `stdin` and `stdout`). Raises CommandError / PipelineError naming the child
        when it cannot be started."""
        where = self.where(len(self._group.endings), cmd)
        if log.isEnabledFor(logging.DEBUG):  # quoting loads shlex: only when shown
            log.debug("%s: running %s", where, format_argv(cmd.argv))
        tail = StderrTail(forward=self.verbosity >= cmd.vl_stderr)
        err_read, err_write = os.pipe()
        try:
            self._group.start(cmd, stdin=stdin, stdout=stdout, stderr=err_write, tail=tail)
        except (OSError, subprocess.SubprocessError) as error:
            os.close(err_read)
            reason = getattr(error, "strerror", None) or str(error)
            error_class = PipelineError if self.pipeline else CommandError
            raise error_class(where, cmd.argv, f"could not be started: {reason}") from error
        finally:
            os.close(err_write)  # only the child writes its stderr
        self._relay.add(err_read, tail)

    # ----------------------------------------------------------------- watching

    def watch(self, pump: Pump | None) -> None:
        """Wait until every child exited and the data reached EOF, or a trigger to stop
        (failure, timeout, cancel, sink error) happened. When every stage exited but
        the output is still held open (a process a stage left behind), the data is
        taken for up to STRAY_GRACE more seconds, then reading stops (_stop_strays)."""
        self._relay.start()
        self.pump = pump
        if pump is not None:
            self._group.watch_fd(pump.fd, pump)
        while self.trigger is None and not self._done():
            for _ready in self._group.wait(self._wait_time()):
                if pump is not None and pump.fd >= 0:
                    self._pump_once(pump)
            self._check()
            if self.pipeline and self.trigger is None:
                self._watch_strays()

    def _pump_once(self, pump: Pump) -> None:
        moved = pump.on_readable()
        if pump.eof:
            self._close_pump()
        if pump.error is not None:
            self.trigger = "sink"
            self._close_pump()
        else:
            pump.settle(moved)

    def _done(self) -> bool:
        pump_done = self.pump is None or self.pump.eof
        return pump_done and self._group.all_exited()

    def _wait_time(self) -> float:
        return judge.wait_time(self._group.endings, now=time.monotonic(), longest=POLL_INTERVAL)

    def _check(self) -> None:
        """Set the trigger to stop: a stage failed on its own, timed out, or cancel."""
        if self.trigger is not None:
            return
        cancelled = self.cancel is not None and self.cancel.is_set()
        now = time.monotonic()
        self.trigger = judge.stop_reason(self._group.endings, now=now, cancelled=cancelled)

    def _watch_strays(self) -> None:
        """The stages up to some point have all exited, but the pipe out of the last of
        them is not at EOF: a process they left behind may hold it. Give it
        STRAY_GRACE s, then look once: kill what still holds the pipe's write end."""
        pump = self.pump
        running = self._group.first_running()
        inode: int | None
        if running is None:  # every stage exited: the pipe palhm reads
            inode = None if pump is None or pump.eof else os.fstat(pump.fd).st_ino
            at = len(self._group.endings)
        else:  # the pipe into the first stage still running
            inode = self._inputs[running] if 0 < running < len(self._inputs) else None
            at = running
        if inode is None or not self._strays.due(at, time.monotonic()):
            return
        if running is None:
            assert pump is not None
            self._stop_strays(pump, inode)
        else:
            writer = self._group.endings[at - 1].cmd
            self._kill_strays(inode, f"stage {at} ({writer.label})")

    def _kill_strays(self, inode: int, writer: str) -> None:
        """Kill the processes holding the write end of pipe `inode` (all the stages
        writing it have exited): holders.py says why they are palhm's own."""
        killed = kill_holders(pipe_holders(inode), inode)
        if killed:
            log.warning(
                "%s: %s exited but its output was still held open %g s later, by: %s; killed",
                self.context,
                writer,
                STRAY_GRACE,
                ", ".join(killed),
            )

    def _stop_strays(self, pump: Pump, inode: int) -> None:
        """Every stage exited, the output is still open: stop reading (the object is
        what was written until now) and kill what holds it. The processes never had
        the object file, so they cannot change it."""
        holders = pipe_holders(inode)
        pump.stop()  # what they wrote up to now
        if pump.error is not None:
            self.trigger = "sink"
        self._close_pump()
        killed = kill_holders(holders, inode)
        log.warning(
            "%s: every stage exited but its output was still open %g s later:"
            " stopped reading; the object holds the %d bytes written until then;"
            " process(es) holding it killed: %s",
            self.context,
            STRAY_GRACE,
            pump.size,
            ", ".join(killed) or "none found",
        )

    # ----------------------------------------------------------------- ending

    def finish(self, *, kill_strays: bool) -> None:
        """Terminate if a trigger fired, else kill what the children left in the
        group when `kill_strays`; then reap every child."""
        if self.trigger is not None:
            self._group.begin_killing()
            self._close_pump()  # writers into it get SIGPIPE
            self._group.terminate(GRACE_PERIOD)
        elif kill_strays:
            self._group.signal(signal.SIGKILL)
        self._group.reap()

    def _close_pump(self) -> None:
        pump = self.pump
        if pump is not None and pump.fd >= 0:
            self._group.unwatch_fd(pump.fd)
            pump.close()

    def raise_failure(self) -> None:
        """After finish(): raise the root cause of a failure (judge.py), if any."""
        sink_error = self.pump.error if self.pump is not None else None
        error = judge.failure(
            self.trigger,
            self._group.endings,
            context=self.context,
            pipeline=self.pipeline,
            sink_error=sink_error,
        )
        if error is not None:
            raise error
