"""Deterministic fault injection: a TEST FACILITY, not a feature for users.

The reliability suite (tests/reliability/) kills or interrupts palhm at chosen
points of a run to check that no partial copy is ever counted, no complete copy is
lost and no stage process outlives palhm. The engine marks those points with
one-line calls::

    faults.crashpoint("before-rename")

Nothing happens unless the environment variable PALHM_FAULT is set, to

    NAME[:N][:ACTION]      e.g. PALHM_FAULT=before-rename:1:kill

- NAME: a crash point name (kebab-case, see CRASHPOINTS; unknown names are errors,
  so a typo in a test cannot silently disable its fault);
- N: act the Nth time the point is reached in this process (1-based, default 1);
- ACTION: `kill` (default) SIGKILLs the process itself, the way a power cut or the
  OOM killer ends it: no clean-up code runs. `term` / `int` send SIGTERM / SIGINT to
  the process itself and return, so the normal handler path (cancel, kill the
  pipelines, roll back, exit 143 / 130) is exercised from exactly that point.
  `stop` sends SIGSTOP to the process itself: the run freezes at that point (its
  lock held) until a test sends SIGCONT, e.g. to start another run meanwhile.

PALHM_FAULT is read once, at import: when it is unset `crashpoint` is a single
global lookup and return. A malformed value raises ValueError at import (palhm then
fails as "internal error": loud, never ignored).

Threads: `crashpoint` may be called from any thread; counting is thread-safe. A
signal sent from a worker thread is still handled by the main thread (Python's rule).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Final

from palhm.records import field, record

ENVIRONMENT_VARIABLE: Final = "PALHM_FAULT"

CRASHPOINTS: Final = frozenset(
    {
        # backup.py: a run's steps
        "lock-acquired",  # the root is locked, nothing else done yet
        "incomplete-removal",  # about to remove a copy left incomplete by a dead run
        "incomplete-removed",  # ... and that copy is gone
        "copy-begun",  # begin_copy done: staging dir / S3 building manifest exists
        "object-opened",  # an object's sink exists (empty file / nothing uploaded yet)
        "object-closed",  # an object's pipeline succeeded and its sink is closed
        "before-commit",  # every object built, final manifest not written yet
        "committed",  # the copy is committed, rotation not started
        "before-removal",  # rotation: about to remove an old copy
        "after-removal",  # rotation: that old copy is gone
        # engine/pump.py: the hashed data path
        "chunk-written",  # a chunk was hashed and handed to the sink
        # localfs
        "staging-created",  # the staging directory exists, no manifest in it yet
        "manifest-written",  # a manifest (building, then final) is in place in staging
        "before-rename",  # final manifest written, staging not renamed yet
        "after-rename",  # renamed to ROOT/PREFIX, the root not fsynced yet
        "set-aside",  # rotation renamed an old copy to .palhm-deleting-PREFIX
        # aws-s3
        "part-uploaded",  # one part of a multipart upload is stored
        "removing-marked",  # a committed copy's manifest says "removing"
    }
)

ACTIONS: Final = {
    "kill": signal.SIGKILL,
    "term": signal.SIGTERM,
    "int": signal.SIGINT,
    "stop": signal.SIGSTOP,
}


@record(frozen=False)
class Fault:
    """One planned fault: act when `point` is reached for the `occurrence`th time."""

    point: str
    occurrence: int
    action: str
    reached: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def due(self) -> bool:
        """Count one arrival at the point; True exactly on the planned one."""
        with self.lock:
            self.reached += 1
            return self.reached == self.occurrence


def parse_fault(text: str) -> Fault:
    """`NAME[:N][:ACTION]` -> Fault. Raises ValueError naming what is wrong."""
    parts = text.strip().split(":")
    where = f"{ENVIRONMENT_VARIABLE}={text!r}"
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{where}: expected NAME[:N][:ACTION]")
    point, rest = parts[0], parts[1:]
    if point not in CRASHPOINTS:
        known = ", ".join(sorted(CRASHPOINTS))
        raise ValueError(f"{where}: unknown crash point '{point}' (known: {known})")
    occurrence = 1
    if rest and rest[0].isdigit():
        occurrence = int(rest.pop(0))
    action = rest.pop(0) if rest else "kill"
    if rest or occurrence < 1 or action not in ACTIONS:
        raise ValueError(
            f"{where}: expected NAME[:N][:ACTION], N >= 1, ACTION one of {list(ACTIONS)}"
        )
    return Fault(point, occurrence, action)


def _from_environment() -> Fault | None:
    text = os.environ.get(ENVIRONMENT_VARIABLE, "")
    return parse_fault(text) if text.strip() else None


_FAULT: Fault | None = _from_environment()


def crashpoint(name: str) -> None:
    """Mark a crash point. Acts only when PALHM_FAULT names it (module docstring)."""
    fault = _FAULT
    if fault is None or fault.point != name or not fault.due():
        return
    os.kill(os.getpid(), ACTIONS[fault.action])
    while fault.action == "kill":  # never go on: the process is being killed
        time.sleep(1)


def armed() -> Fault | None:
    """The fault planned by PALHM_FAULT in this process, or None (for tests)."""
    return _FAULT
