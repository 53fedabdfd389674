"""Pure parts of palhm.engine.execute: the stderr tail, the environment, the result types."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest

from palhm.engine import execute
from palhm.engine.execute import (
    STDERR_TAIL_LINES,
    PipelineResult,
    StageResult,
    _environment,
    _StderrTail,
)
from palhm.model import Exec


def test_tail_keeps_only_the_last_lines() -> None:
    tail = _StderrTail(forward=False)
    tail.feed(b"".join(b"line %d\n" % i for i in range(100)))
    assert tail.lines() == [f"line {i}" for i in range(100 - STDERR_TAIL_LINES, 100)]


def test_tail_joins_lines_split_across_reads() -> None:
    tail = _StderrTail(forward=False)
    for piece in (b"tar: some", b"thing went", b" wrong\nsecond ", b"line\n"):
        tail.feed(piece)
    assert tail.lines() == ["tar: something went wrong", "second line"]


def test_tail_keeps_an_unterminated_last_line_at_finish() -> None:
    tail = _StderrTail(forward=False)
    tail.feed(b"first\nno newline")
    assert tail.lines() == ["first"]
    tail.finish()
    assert tail.lines() == ["first", "no newline"]


def test_tail_skips_blank_lines_and_replaces_bad_bytes() -> None:
    tail = _StderrTail(forward=False)
    tail.feed(b"\n  \nbad \xff byte\r\n\n")
    assert tail.lines() == ["bad \ufffd byte"]


def test_tail_bounds_a_huge_line() -> None:
    tail = _StderrTail(forward=False)
    tail.feed(b"x" * 1_000_000)
    tail.finish()
    assert all(len(line) <= 1000 for line in tail.lines())
    assert tail.lines()


def test_forwarding_tail_writes_whole_lines_to_fd_2(capfd: pytest.CaptureFixture[str]) -> None:
    tail = _StderrTail(forward=True)
    tail.feed(b"one\ntw")
    assert capfd.readouterr().err == "one\n"
    tail.feed(b"o\n")
    tail.feed(b"three")
    tail.finish()
    assert capfd.readouterr().err == "two\nthree\n"


def test_silent_tail_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    tail = _StderrTail(forward=False)
    tail.feed(b"secret\n")
    tail.finish()
    assert capfd.readouterr().err == ""
    assert tail.lines() == ["secret"]


def test_environment_adds_to_palhm_environment() -> None:
    env = _environment(Exec(argv=("x",), env={"PALHM_UNIT": "1"}))
    assert env is not None
    assert env["PALHM_UNIT"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_environment_without_additions_is_inherited_as_is() -> None:
    assert _environment(Exec(argv=("x",))) is None


def test_results_are_frozen() -> None:
    result = PipelineResult(size=1, digest=None, stages=(StageResult(("a",), "a", 0, None, True),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.size = 2  # type: ignore[misc]


def test_hashlib_and_checksum_hashers_satisfy_the_protocol() -> None:
    from palhm.engine.checksum import ALGORITHMS

    hashers: list[execute.Hasher] = [hashlib.sha256()]
    hashers += [factory() for factory in ALGORITHMS.values() if factory is not None]
    for hasher in hashers:
        hasher.update(memoryview(b"abc"))
        assert isinstance(hasher.hexdigest(), str)
