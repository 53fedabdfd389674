"""upload-rate-limit: the rate grammar and the throttle's bookkeeping (no timing
assertions: the measured rate is bench/bench_upload_rate_limit.py's job)."""

from __future__ import annotations

import pytest

from palhm.backends.base import ObjectSink
from palhm.backends.throttle import Throttle, ThrottledSink, parse_rate


@pytest.mark.parametrize(
    ("raw", "rate"),
    [
        (1048576, 1048576.0),
        ("512k", 512 * 1024.0),
        ("8MiB/s", 8 * 1048576.0),
        ("1.5M", 1.5 * 1048576),
        ("2 GB", 2.0 * (1 << 30)),
        ("100", 100.0),
        (0.5, 0.5),
    ],
)
def test_rates_parse(raw: object, rate: float) -> None:
    assert parse_rate(raw) == rate


@pytest.mark.parametrize("bad", [0, -1, "0k", "fast", "1 Mbit", True, None, "inf", float("inf")])
def test_bad_rates_say_what_was_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_rate(bad)


class Collecting(ObjectSink):
    def __init__(self) -> None:
        self.data = bytearray()
        self.aborted = False

    def write(self, data: memoryview) -> None:
        self.data += data

    def close(self) -> int:
        return len(self.data)

    def abort(self) -> None:
        self.aborted = True


def test_throttled_sink_passes_every_byte_and_abort_through() -> None:
    inner = Collecting()
    sink = ThrottledSink(inner, Throttle(1 << 40))
    assert sink.splice_fd() is None and not sink.discards  # every byte through write()
    for chunk in (b"abc", b"", b"defg"):
        sink.write(memoryview(chunk))
    assert sink.close() == 7 and bytes(inner.data) == b"abcdefg"
    sink.abort()
    assert inner.aborted


def test_reservations_accumulate_across_objects_of_a_copy() -> None:
    throttle = Throttle(1 << 40)
    before = throttle._free_at
    for _ in range(3):
        throttle.take(1 << 20)
    assert throttle._free_at >= before + 3 * (1 << 20) / (1 << 40)
