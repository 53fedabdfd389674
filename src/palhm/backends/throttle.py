"""Bandwidth limit for uploads (`upload-rate-limit`): one Throttle per copy, shared by
every object of it, so the limit holds for the copy's upload as a whole.

    sink = ThrottledSink(backend_sink, throttle)

The throttle works on the data entering the sink: a write of N bytes returns only
once the copy's bytes so far could have been sent at RATE since the throttle was
last idle. It saves up at most 0.25 s of unused bandwidth (so sleeping a little
too long, or many small writes, do not slow the upload below the limit), never
more: a slow pipeline does not earn the right to exceed the limit afterwards.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Final

from palhm.backends.base import ObjectSink

_RATE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*(?:/s)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_STEP: Final = 0.1  # s: longest single sleep, so a throttled write stays responsive
_SLACK: Final = 0.25  # s of sending time a late writer may catch up on (see take())


def parse_rate(raw: object) -> float:
    """Bytes per second from `1048576`, `"512k"`, `"8MiB/s"`, `"1.5M"` (k, M, G, T are
    binary multiples, as in restic's --limit-upload). Raises ValueError."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str) and (match := _RATE.match(raw)):
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise ValueError(
            f'expected bytes per second like 1048576, "512k" or "8MiB/s", found {raw!r}'
        )
    if not value > 0 or value == float("inf"):
        raise ValueError(f"expected a rate above 0, found {raw!r}")
    return value


class Throttle:
    """A shared bandwidth budget of `rate` bytes per second. Thread-safe."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._free_at = time.monotonic()  # when the bytes reserved so far are "sent"

    def take(self, nbytes: int) -> None:
        """Reserve `nbytes` and sleep until they fit the rate."""
        with self._lock:
            # SLACK: time lost oversleeping (or between two writes) is not lost to the
            # rate; at most SLACK seconds' worth of bytes may follow an idle spell
            start = max(self._free_at, time.monotonic() - _SLACK)
            self._free_at = start + nbytes / self.rate
            until = self._free_at
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, _STEP))


class ThrottledSink(ObjectSink):
    """An ObjectSink whose writes go through a Throttle (never an fd: data must pass
    through write() to be counted)."""

    def __init__(self, sink: ObjectSink, throttle: Throttle) -> None:
        self._sink = sink
        self._throttle = throttle

    def write(self, data: memoryview) -> None:
        self._throttle.take(data.nbytes)
        self._sink.write(data)

    def close(self) -> int:
        return self._sink.close()

    def abort(self) -> None:
        self._sink.abort()
