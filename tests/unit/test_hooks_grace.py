"""The clean-up grace after a signal: clean-up commands run after SIGTERM, but one
that outlives the grace is terminated (real processes, a real signal)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from palhm.engine import interrupts
from palhm.engine.routine import run_item
from palhm.errors import Cancelled
from palhm.model import Exec
from palhm.notify.hooks import _Grace


@pytest.mark.usefixtures("handlers")
def test_cleanup_command_past_the_grace_is_terminated() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    interrupts.CANCEL.wait(10)
    assert interrupts.received_signal() == signal.SIGTERM
    hang = Exec((sys.executable, "-c", "import time; time.sleep(60)"))
    with _Grace(0.5) as grace, pytest.raises(Cancelled):
        run_item(hang, context="test", run_task=lambda _: None, verbosity=0, cancel=grace.expired)
    assert grace.expired.is_set()


@pytest.mark.usefixtures("handlers")
def test_cleanup_command_runs_to_its_end_within_the_grace_after_a_signal(tmp_path: Path) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    interrupts.CANCEL.wait(10)
    done = tmp_path / "done"
    quick = Exec(("sh", "-c", f"sleep 0.2; touch {done}"))
    with _Grace(30) as grace:
        run_item(quick, context="test", run_task=lambda _: None, verbosity=0, cancel=grace.expired)
    assert done.exists() and not grace.expired.is_set()


def test_without_a_signal_the_grace_never_expires() -> None:
    interrupts.reset()
    with _Grace(0.01) as grace:
        assert not grace.expired.wait(0.3)
