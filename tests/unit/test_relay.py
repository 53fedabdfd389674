"""palhm.engine.relay: the stderr tail (pure) and the relay thread (real pipes)."""

from __future__ import annotations

import os

import pytest

from palhm.engine.relay import STDERR_TAIL_LINES, StderrRelay, StderrTail


def test_tail_keeps_only_the_last_lines() -> None:
    tail = StderrTail(forward=False)
    tail.feed(b"".join(b"line %d\n" % i for i in range(100)))
    assert tail.lines() == [f"line {i}" for i in range(100 - STDERR_TAIL_LINES, 100)]


def test_tail_joins_lines_split_across_reads() -> None:
    tail = StderrTail(forward=False)
    for piece in (b"tar: some", b"thing went", b" wrong\nsecond ", b"line\n"):
        tail.feed(piece)
    assert tail.lines() == ["tar: something went wrong", "second line"]


def test_tail_keeps_an_unterminated_last_line_at_finish() -> None:
    tail = StderrTail(forward=False)
    tail.feed(b"first\nno newline")
    assert tail.lines() == ["first"]
    tail.finish()
    assert tail.lines() == ["first", "no newline"]


def test_tail_skips_blank_lines_and_replaces_bad_bytes() -> None:
    tail = StderrTail(forward=False)
    tail.feed(b"\n  \nbad \xff byte\r\n\n")
    assert tail.lines() == ["bad \ufffd byte"]


def test_tail_bounds_a_huge_line() -> None:
    tail = StderrTail(forward=False)
    tail.feed(b"x" * 1_000_000)
    tail.finish()
    assert all(len(line) <= 1000 for line in tail.lines())
    assert tail.lines()


def test_forwarding_tail_writes_whole_lines_to_fd_2(capfd: pytest.CaptureFixture[str]) -> None:
    tail = StderrTail(forward=True)
    tail.feed(b"one\ntw")
    assert capfd.readouterr().err == "one\n"
    tail.feed(b"o\n")
    tail.feed(b"three")
    tail.finish()
    assert capfd.readouterr().err == "two\nthree\n"


def test_silent_tail_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    tail = StderrTail(forward=False)
    tail.feed(b"secret\n")
    tail.finish()
    assert capfd.readouterr().err == ""
    assert tail.lines() == ["secret"]


def test_relay_drains_every_pipe_and_closes_them() -> None:
    relay = StderrRelay()
    tails = [StderrTail(forward=False) for _ in range(3)]
    writers = []
    for tail in tails:
        read_end, write_end = os.pipe()
        relay.add(read_end, tail)
        writers.append(write_end)
    relay.start()
    for number, write_end in enumerate(writers):
        # more than a pipe holds: the writer would block if nobody drained it
        os.write(write_end, b"x" * 70_000 + b"\nlast of %d\n" % number)
        os.close(write_end)
    relay.stop(60.0)
    assert [tail.lines()[-1] for tail in tails] == ["last of 0", "last of 1", "last of 2"]


def test_relay_stops_after_its_wait_though_a_pipe_stays_open() -> None:
    relay = StderrRelay()
    tail = StderrTail(forward=False)
    read_end, write_end = os.pipe()
    relay.add(read_end, tail)
    relay.start()
    os.write(write_end, b"said before the end\nno newline")
    try:
        relay.stop(0.05)  # the writer never closes: what it wrote is kept all the same
    finally:
        os.close(write_end)
    assert tail.lines() == ["said before the end", "no newline"]
    with pytest.raises(OSError):
        os.fstat(read_end)  # the relay closed its end


def test_relay_never_started_reads_what_is_there() -> None:
    relay = StderrRelay()
    tail = StderrTail(forward=False)
    read_end, write_end = os.pipe()
    relay.add(read_end, tail)
    os.write(write_end, b"could not start\n")
    os.close(write_end)
    relay.stop(60.0)
    assert tail.lines() == ["could not start"]
