"""Sinks and helpers for the tests of palhm.engine.execute and .routine (real processes)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from palhm.backends.base import ObjectSink
from palhm.errors import BackendError
from palhm.model import Exec
from palhm.values import ExitCodeSpec

T = TypeVar("T")

HANG_LIMIT = 60.0  # s: a call still running after this is a hang (never a speed check)


def ex(*argv: str, **fields: Any) -> Exec:
    """An Exec from argv; `ec` may be given as text ("<2")."""
    if isinstance(fields.get("ec"), str | int):
        fields["ec"] = ExitCodeSpec.parse(fields["ec"])
    return Exec(argv=tuple(argv), **fields)


def py(code: str, **fields: Any) -> Exec:
    """An Exec running Python code in a child interpreter."""
    return ex(sys.executable, "-c", code, **fields)


class MemorySink(ObjectSink):
    """Keeps the object in memory and records how it was used."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.chunk_sizes: list[int] = []
        self.closed = False
        self.aborted = False

    def write(self, data: memoryview) -> None:
        self.chunk_sizes.append(len(data))
        self.data += data

    def close(self) -> int:
        self.closed = True
        return len(self.data)

    def abort(self) -> None:
        self.aborted = True


class FailingSink(MemorySink):
    """Fails like a full backend once `limit` bytes were stored."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: memoryview) -> None:
        if len(self.data) + len(data) > self.limit:
            raise BackendError("test sink: No space left on device")
        super().write(data)


class FileSink(ObjectSink):
    """Writes into a real file (or device such as /dev/full) through its own fd."""

    def __init__(self, path: Path | str, *, offer_fd: bool = True) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.offer_fd = offer_fd
        self.writes = 0
        self.aborted = False

    def splice_fd(self) -> int | None:
        return self.fd if self.offer_fd else None

    def write(self, data: memoryview) -> None:
        self.writes += 1
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as error:
            raise BackendError(f"test sink: {error.strerror}") from error

    def close(self) -> int:
        size = os.fstat(self.fd).st_size
        os.close(self.fd)
        return size

    def abort(self) -> None:
        self.aborted = True
        os.close(self.fd)


def bounded(call: Callable[[], T], *, seconds: float = HANG_LIMIT) -> T:
    """Run `call` in a thread and return its result or raise its exception; fail the
    test (instead of hanging the suite) if it has not returned after `seconds`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: hung")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]  # type: ignore[no-any-return]


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, *, seconds: float = HANG_LIMIT) -> bool:
    """Wait (bounded) until `pid` is gone; True if it went."""
    end = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def wait_for_file(path: Path, *, seconds: float = HANG_LIMIT) -> str:
    """Wait (bounded) until `path` holds a complete line; return it stripped."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text().strip()
        time.sleep(0.02)
    pytest.fail(f"{path} was never written")
