"""The public types of palhm.engine.execute: the result types and the Hasher protocol.
The parts of execute are tested in test_spawn, test_relay, test_group, test_judge,
test_pump and test_holders."""

from __future__ import annotations

import hashlib

import pytest

from palhm.engine import execute
from palhm.engine.execute import PipelineResult, StageResult
from palhm.records import FrozenError


def test_results_are_frozen() -> None:
    result = PipelineResult(size=1, digest=None, stages=(StageResult(("a",), "a", 0, None, True),))
    with pytest.raises(FrozenError):
        result.size = 2  # type: ignore[misc]


def test_hashlib_and_checksum_hashers_satisfy_the_protocol() -> None:
    from palhm.engine.checksum import ALGORITHMS

    hashers: list[execute.Hasher] = [hashlib.sha256()]
    hashers += [factory() for factory in ALGORITHMS.values() if factory is not None]
    for hasher in hashers:
        hasher.update(memoryview(b"abc"))
        assert isinstance(hasher.hexdigest(), str)
