"""Signal handling: record the signal, ask every running part to stop (doc/design.md#signals).

`install_handlers()` (the CLI, before running a task) replaces Python's default
KeyboardInterrupt (SIGINT) and the default "die at once" of SIGTERM, SIGHUP,
SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM with one handler: every one of them is a
request to stop (a closed terminal, a stray `kill -USR1`, an alarm() left by a
wrapper must not kill palhm mid-copy with no rollback, no on-failure hook and no
metrics). The handler records the first signal and sets `CANCEL`.
Whatever is running notices `CANCEL` (run_command / run_pipeline look at it at
least every execute.POLL_INTERVAL, the backup scheduler waits on it), kills its
children, rolls back, and then calls `check()`, which raises errors.Interrupted so
the CLI exits with 128+N (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP ...) after
clean-up. A second signal
changes nothing: clean-up is already under way and must not be cut short.

Threads: the handler runs in the main thread, between two bytecodes of whatever
the main thread was doing -- possibly while it holds CANCEL's own lock -- so it
never takes a lock itself: the event is set from a fresh low-level thread.
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
from types import FrameType
from typing import Final

from palhm.errors import Interrupted
from palhm.values import signal_name

log = logging.getLogger(__name__)

HANDLED_SIGNALS: Final = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)

CANCEL: Final = threading.Event()
"""Set once one of HANDLED_SIGNALS arrived (after install_handlers)."""

_received: int | None = None
_generation = 0  # bumped by reset(), so a late _announce of an old signal is dropped


def install_handlers() -> None:
    """Catch HANDLED_SIGNALS from now on. Main thread only (Python's rule)."""
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _on_signal)


def received_signal() -> int | None:
    """The first handled signal received since install/reset, or None."""
    return _received


def check() -> None:
    """Raise errors.Interrupted if a signal was received; call it after clean-up."""
    if _received is not None:
        raise Interrupted(_received)


def reset() -> None:
    """Forget a received signal and clear CANCEL (tests; a second task run)."""
    global _received, _generation
    _generation += 1
    _received = None
    CANCEL.clear()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is None:
        _received = signum
    # Event.set() and logging take locks the interrupted main thread may hold
    _thread.start_new_thread(_announce, (signum, _generation))


def _announce(signum: int, generation: int) -> None:
    if generation != _generation:
        return
    if not CANCEL.is_set():
        log.warning("received %s: stopping, cleaning up", signal_name(signum))
    CANCEL.set()
