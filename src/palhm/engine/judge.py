"""How the children of one call ended, and what to report: plain data, no processes.

    ending = Ending(cmd, index, deadline=...)      # one per child, filled in by the waiter
    trigger = stop_reason(endings, now=..., cancelled=...)      # while they run
    error = failure(trigger, endings, context=..., pipeline=..., sink_error=...)

Every child is judged against its `ec`; a child killed by a signal never counts as
success (doc/design.md#execs-and-pipeline-stages).

A run stops early ("trigger") when a child failed on its own (not by SIGPIPE: that
one is a consequence of a later stage stopping reading), a child passed its
deadline, or `cancel` was set; the caller adds "sink" (the data path failed) and
"error" (an exception while watching).

The root cause of a failed run, in order: cancel (Cancelled); the sink's error;
the child past its timeout; else the most downstream child that failed on its own
before palhm started killing -- one killed by SIGPIPE only when no other failed
(it means a later stage stopped reading early). Children that ended after palhm
began killing (`after_kill`) are consequences, never the reported cause.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Literal

from palhm.engine.relay import StderrTail
from palhm.errors import BackendError, Cancelled, CommandError, PalhmError, PipelineError
from palhm.model import Exec
from palhm.records import record
from palhm.values import signal_name

Trigger = Literal["failed", "timeout", "cancel", "sink", "error"]


class Ending:
    """What is known of how child `index` (running `cmd`) ended.

    `status` is its exit status, or None when it was killed by signal `signum`;
    `exited` says whether it ended at all. `after_kill`: it ended after palhm began
    killing the group. `deadline` (time.monotonic()) comes from cmd.timeout; past
    it, `timed_out` is set by stop_reason. `tail`: the last lines of its stderr.
    """

    __slots__ = (
        "cmd",
        "index",
        "deadline",
        "tail",
        "status",
        "signum",
        "exited",
        "after_kill",
        "timed_out",
    )

    def __init__(
        self,
        cmd: Exec,
        index: int,
        *,
        deadline: float | None = None,
        tail: StderrTail | None = None,
        status: int | None = None,
        signum: int | None = None,
        exited: bool = False,
        after_kill: bool = False,
        timed_out: bool = False,
    ) -> None:
        self.cmd = cmd
        self.index = index
        self.deadline = deadline
        self.tail = tail if tail is not None else StderrTail(forward=False)
        self.status = status
        self.signum = signum
        self.exited = exited
        self.after_kill = after_kill
        self.timed_out = timed_out

    def __repr__(self) -> str:
        fields = ("index", "status", "signum", "exited", "after_kill", "timed_out")
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in fields)
        return f"Ending({self.cmd.argv!r}, {shown})"

    @property
    def accepted(self) -> bool:
        """It exited normally with a status its `ec` accepts."""
        return self.status is not None and self.cmd.ec.accepts(self.status)


@record
class StageResult:
    """How one stage ended. `status` is None when it was killed by `signal` (a name)."""

    argv: tuple[str, ...]
    label: str
    status: int | None
    signal: str | None
    accepted: bool


def place(context: str, index: int, cmd: Exec, *, pipeline: bool) -> str:
    """How messages name child `index`: the context, plus the stage in a pipeline."""
    if not pipeline:
        return context
    return f"{context}, stage {index + 1} ({cmd.label})"


def stop_reason(endings: Sequence[Ending], *, now: float, cancelled: bool) -> Trigger | None:
    """Whether to stop the run now, and why: "failed", "timeout" (the child is marked
    `timed_out`), "cancel", or None to go on. Checked in that order."""
    if any(e.exited and not e.accepted and e.signum != signal.SIGPIPE for e in endings):
        return "failed"
    for ending in endings:
        if not ending.exited and ending.deadline is not None and now >= ending.deadline:
            ending.timed_out = True
            return "timeout"
    if cancelled:
        return "cancel"
    return None


def wait_time(endings: Sequence[Ending], *, now: float, longest: float) -> float:
    """How long the waiter may sleep: `longest`, or less to wake at the next deadline."""
    wait = longest
    for ending in endings:
        if ending.deadline is not None and not ending.exited:
            wait = min(wait, max(0.0, ending.deadline - now))
    return wait


def culprit(endings: Sequence[Ending]) -> Ending | None:
    """The child whose failure is the root cause (module docstring), None if none."""
    timed_out = [ending for ending in endings if ending.timed_out]
    if timed_out:
        return timed_out[0]
    failed = [e for e in endings if not e.accepted and not e.after_kill]
    on_their_own = [e for e in failed if e.signum != signal.SIGPIPE]
    candidates = on_their_own or failed
    return candidates[-1] if candidates else None


def outcome(ending: Ending, endings: Sequence[Ending], *, pipeline: bool) -> str:
    """How the message says the child ended ("exited with status 2", ...)."""
    if ending.timed_out:
        return f"timed out after {ending.cmd.timeout:g} s"
    if ending.signum is not None:
        text = f"killed by {signal_name(ending.signum)}"
        if ending.signum == signal.SIGPIPE and pipeline:
            text += f" ({_reader_of(ending, endings)} stopped reading early)"
        return text
    text = f"exited with status {ending.status}"
    if ending.cmd.ec.text != "==0":
        text += f" (accepted: {ending.cmd.ec.text})"
    return text


def _reader_of(ending: Ending, endings: Sequence[Ending]) -> str:
    if ending.index + 1 < len(endings):
        return f"stage {ending.index + 2} ({endings[ending.index + 1].cmd.label})"
    return "the sink"


def failure(
    trigger: Trigger | None,
    endings: Sequence[Ending],
    *,
    context: str,
    pipeline: bool,
    sink_error: BackendError | None = None,
) -> PalhmError | None:
    """The error that reports the root cause of a run that ended (every child reaped),
    or None when it succeeded. `sink_error`: the data path's error, if any."""
    if trigger == "cancel":
        return Cancelled(f"{context}: cancelled")
    if trigger == "sink" and sink_error is not None:
        return sink_error
    cause = culprit(endings)
    if cause is None:
        return None
    error_class = PipelineError if pipeline else CommandError
    return error_class(
        place(context, cause.index, cause.cmd, pipeline=pipeline),
        cause.cmd.argv,
        outcome(cause, endings, pipeline=pipeline),
        cause.tail.lines(),
    )


def results(endings: Sequence[Ending]) -> tuple[StageResult, ...]:
    """What the manifest records of each child."""
    return tuple(
        StageResult(
            argv=ending.cmd.argv,
            label=ending.cmd.label,
            status=ending.status,
            signal=signal_name(ending.signum) if ending.signum is not None else None,
            accepted=ending.accepted,
        )
        for ending in endings
    )
