"""Shared pytest setup. Service fixtures live in tests/services/, one module each."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from palhm.engine import interrupts

pytest_plugins = [
    "tests.services.moto",
    "tests.services.smtp",
    "tests.services.dnslab",
    "tests.services.databases",
    "tests.services.s3stores",
]


@pytest.fixture
def handlers() -> Iterator[None]:
    """palhm's SIGINT/SIGTERM handlers, as the CLI installs them; restored afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in interrupts.HANDLED_SIGNALS}
    interrupts.reset()
    interrupts.install_handlers()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    interrupts.reset()
