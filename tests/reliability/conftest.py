"""Fixtures shared by the reliability tests."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.reliability.harness import crash_config, seed_root


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A localfs root seeded once per session (harness.seed_root); tests clone it."""
    base = tmp_path_factory.mktemp("seed")
    root = base / "root"
    seed_root(root, crash_config(base / "seed.json", root, uuid.uuid4().hex))
    return root
