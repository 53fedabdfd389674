"""A short run of scripts/kill_loop.py in the suite (`-m slow`): SIGKILL at random
moments of real runs, hashed and direct-fd paths, every crash-matrix invariant
checked after each kill and after the recovery run. The long run (100+ kills) is
the script itself; its figures are in doc/reliability.md."""

from __future__ import annotations

import importlib.util
import random
import uuid
from pathlib import Path

import pytest

from tests.reliability.harness import crash_config, seed_root

SCRIPT = Path(__file__).parents[2] / "scripts" / "kill_loop.py"


@pytest.mark.slow
def test_random_sigkills_never_count_a_partial_copy_nor_lose_a_good_one(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("kill_loop", SCRIPT)
    assert spec is not None and spec.loader is not None
    kill_loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kill_loop)
    seeded = tmp_path / "seed"
    seed_root(seeded, crash_config(tmp_path / "seed.json", seeded, uuid.uuid4().hex))
    rng = random.Random(3)
    for index in range(10):
        checksum = ("blake3", "none")[index % 2]
        kill_loop.one_kill(tmp_path / f"k{index}", seeded, checksum, rng.uniform(0, 2.0))
