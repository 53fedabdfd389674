"""palhm.engine.interrupts: SIGINT/SIGTERM recorded, CANCEL set, Interrupted raised after."""

from __future__ import annotations

import os
import signal

import pytest

from palhm.engine import interrupts
from palhm.errors import ExitStatus, Interrupted

WAIT = 30.0  # s; a bound, not a speed check


@pytest.mark.usefixtures("handlers")
@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, ExitStatus.TERMINATED), (signal.SIGINT, ExitStatus.INTERRUPTED)],
)
def test_signal_sets_cancel_and_check_raises_interrupted(
    signum: signal.Signals, status: ExitStatus
) -> None:
    interrupts.check()  # nothing received yet: no exception
    os.kill(os.getpid(), signum)
    assert interrupts.CANCEL.wait(WAIT)
    assert interrupts.received_signal() == signum
    with pytest.raises(Interrupted) as caught:
        interrupts.check()
    assert caught.value.exit_status == status


@pytest.mark.usefixtures("handlers")
def test_second_signal_keeps_the_first_and_does_not_raise() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    assert interrupts.CANCEL.wait(WAIT)
    os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: handled
    assert interrupts.received_signal() == signal.SIGTERM


@pytest.mark.usefixtures("handlers")
def test_reset_forgets_the_signal() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    assert interrupts.CANCEL.wait(WAIT)
    interrupts.reset()
    assert interrupts.received_signal() is None
    assert not interrupts.CANCEL.is_set()
    interrupts.check()
