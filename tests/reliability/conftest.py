"""Fixtures shared by the reliability tests."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
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


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory outside pytest's private tmp (0700, which the other user cannot
    traverse), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="palhm-hostile-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
