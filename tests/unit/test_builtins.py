"""Builtin routine items: the registry and sigmask."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from palhm.engine.builtins import BUILTINS, run_builtin
from palhm.errors import PalhmError
from palhm.model import Builtin, SigmaskAction


@pytest.fixture
def saved_mask() -> Iterator[None]:
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def current_mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def sigmask(*actions: tuple[str, tuple[int, ...]]) -> Builtin:
    return Builtin(
        "sigmask",
        sigmask=tuple(SigmaskAction(a, s) for a, s in actions),  # type: ignore[arg-type]
    )


def test_registry_names_sigmask() -> None:
    assert set(BUILTINS) == {"sigmask"}


@pytest.mark.usefixtures("saved_mask")
def test_sigmask_blocks_then_unblocks_in_order() -> None:
    run_builtin(sigmask(("block", (signal.SIGUSR1, signal.SIGUSR2))))
    assert {signal.SIGUSR1, signal.SIGUSR2} <= current_mask()
    run_builtin(sigmask(("unblock", (signal.SIGUSR2,)), ("block", (signal.SIGHUP,))))
    mask = current_mask()
    assert signal.SIGUSR1 in mask and signal.SIGHUP in mask
    assert signal.SIGUSR2 not in mask


@pytest.mark.usefixtures("saved_mask")
def test_blocked_signal_stays_pending_instead_of_being_delivered() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        run_builtin(sigmask(("block", (signal.SIGUSR1,))))
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        assert signal.SIGUSR1 in signal.sigpending()
        assert received == []
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
        signal.signal(signal.SIGUSR1, previous)
    assert received == [signal.SIGUSR1]


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(PalhmError) as caught:
        run_builtin(Builtin("reboot"), context="task 'r', item 3")
    assert str(caught.value) == "task 'r', item 3: unknown builtin 'reboot' (known: sigmask)"
