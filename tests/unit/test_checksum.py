"""Streaming checksums agree with the tools an admin checks copies with
(doc/design.md#copy-protocol)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from palhm.engine.checksum import ALGORITHMS, CHECK_COMMANDS, digest_bytes, new_hasher
from tests.helpers import need_program

DATA = os.urandom(3 * (1 << 20) + 17)


@pytest.mark.parametrize("algorithm", sorted(CHECK_COMMANDS))
def test_streamed_digest_matches_the_command_line_tool(algorithm: str, tmp_path: Path) -> None:
    command = CHECK_COMMANDS[algorithm]
    need_program(command)
    target = tmp_path / "object"
    target.write_bytes(DATA)
    hasher = new_hasher(algorithm)
    assert hasher is not None
    view = memoryview(DATA)
    for offset in range(0, len(DATA), 1 << 20):  # as the pump thread feeds it
        hasher.update(view[offset : offset + (1 << 20)])
    tool = subprocess.run([command, str(target)], capture_output=True, text=True, check=True)
    assert tool.stdout.split()[0] == hasher.hexdigest()


def test_none_means_size_only() -> None:
    assert new_hasher("none") is None
    assert digest_bytes("none", b"abc") is None


def test_every_algorithm_gives_a_fresh_hasher_each_time() -> None:
    for name, factory in ALGORITHMS.items():
        if factory is None:
            continue
        first, second = new_hasher(name), new_hasher(name)
        assert first is not None and second is not None and first is not second
        first.update(b"data")
        assert first.hexdigest() != second.hexdigest()


def test_known_sha256_of_empty_input() -> None:
    assert digest_bytes("sha256", b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_unknown_algorithm_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="blake3, sha256, xxh3-128, none"):
        new_hasher("md5")
