"""palhm killed or interrupted at points of an aws-s3 run (moto over HTTP, real CLI).

The seeded root holds 2 copies from real runs, a legacy copy, a copy left "building"
with an unfinished multipart upload, and keys that are not copies. The task keeps 3
copies, so its rotation removes one (the legacy copy). After a crash nothing partial
is counted and no complete copy is lost; the next run leaves no incomplete copy and
no multipart upload behind.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import cases, newest, planned_removals, run, survivors
from tests.reliability.s3_harness import (
    S3_BUILDING,
    S3_LIMIT,
    S3State,
    assert_s3_copies_whole,
    clone_s3_root,
    inspect_s3,
    s3_config,
    s3_objects,
    s3_param,
    seed_extras,
)
from tests.services.moto import MotoServer, empty_bucket

pytestmark = pytest.mark.services

# (point, occurrence, new copy committed when killed there, copies rotation removed)
S3_CRASHES = [
    ("lock-acquired", 1, False, 0),
    ("incomplete-removal", 1, False, 0),
    ("copy-begun", 1, False, 0),
    ("part-uploaded", 1, False, 0),
    ("before-commit", 1, False, 0),
    ("committed", 1, True, 0),
    ("removing-marked", 1, True, 1),
    ("after-removal", 1, True, 1),
]
S3_SLOW = {
    ("lock-acquired", 1),
    ("incomplete-removal", 1),
    ("copy-begun", 1),
    ("before-commit", 1),
    ("committed", 1),
    ("after-removal", 1),
}
S3_SIGNALS = [("part-uploaded", 1, "term", 143), ("copy-begun", 1, "int", 130)]


@pytest.fixture(scope="module")
def s3_seed(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A bucket for this module and a seeded root in it: (bucket, seed root)."""
    s3 = moto_server.client("s3")
    bucket = f"palhm-reliability-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    base = tmp_path_factory.mktemp("s3seed")
    config = s3_config(
        base / "c.json",
        s3_param(bucket, "seed", moto_server.endpoint_url),
        s3_objects(uuid.uuid4().hex),
    )
    for _ in range(2):
        result = run(config, env=moto_server.env)
        assert result.returncode == 0, result.stderr
    seed_extras(s3, bucket, "seed")
    yield bucket, "seed"
    empty_bucket(s3, bucket)
    s3.delete_bucket(Bucket=bucket)


class S3Case:
    """One test's own root, cloned from the seed, and its config."""

    def __init__(self, server: MotoServer, seed: tuple[str, str], tmp_path: Path) -> None:
        self.server = server
        self.s3: Any = server.client("s3")
        self.bucket, seed_root = seed
        self.root = f"case-{uuid.uuid4().hex[:12]}"
        self.marker = uuid.uuid4().hex
        clone_s3_root(self.s3, self.bucket, seed_root, self.root)
        param = s3_param(self.bucket, self.root, server.endpoint_url)
        self.config = s3_config(tmp_path / "c.json", param, s3_objects(self.marker))

    def state(self) -> S3State:
        return inspect_s3(self.s3, self.bucket, self.root)

    def assert_whole(self, state: S3State) -> None:
        assert_s3_copies_whole(self.s3, self.bucket, self.root, state)


def check_recovery(case: S3Case, crashed: S3State) -> None:
    result = run(case.config, env=case.server.env)
    assert result.returncode == 0, result.stderr
    final = case.state()
    assert final.incomplete == {} and final.uploads == []
    new = set(final.counted) - set(crashed.counted)
    assert len(new) == 1 and new <= set(final.complete)
    assert final.counted == newest([*crashed.counted, *new], S3_LIMIT)
    assert final.foreign == crashed.foreign
    case.assert_whole(final)


@pytest.mark.parametrize(("point", "nth", "committed", "removed"), cases(S3_CRASHES, slow=S3_SLOW))
def test_kill_during_an_s3_run_counts_no_partial_copy_and_leaves_no_upload(
    moto_server: MotoServer,
    s3_seed: tuple[str, str],
    tmp_path: Path,
    point: str,
    nth: int,
    committed: bool,
    removed: int,
) -> None:
    case = S3Case(moto_server, s3_seed, tmp_path)
    before = case.state()
    assert S3_BUILDING in before.incomplete and before.uploads
    crashed_run = run(case.config, env=moto_server.env, fault=f"{point}:{nth}:kill")
    assert crashed_run.returncode == -signal.SIGKILL, f"no crash: {crashed_run.stderr}"
    assert survivors(case.marker) == []
    crashed = case.state()
    case.assert_whole(crashed)
    new = set(crashed.counted) - set(before.counted)
    assert len(new) == int(committed) and new <= set(crashed.complete)
    lost = set(before.counted) - set(crashed.counted)
    assert len(lost) == removed and lost <= set(planned_removals(before.counted, S3_LIMIT))
    assert crashed.foreign == before.foreign
    check_recovery(case, crashed)


@pytest.mark.parametrize(
    ("point", "nth", "action", "status"), cases(S3_SIGNALS, slow={("copy-begun", 1)})
)
def test_signal_during_an_s3_run_rolls_back_and_aborts_uploads(
    moto_server: MotoServer,
    s3_seed: tuple[str, str],
    tmp_path: Path,
    point: str,
    nth: int,
    action: str,
    status: int,
) -> None:
    case = S3Case(moto_server, s3_seed, tmp_path)
    before = case.state()
    result = run(case.config, env=moto_server.env, fault=f"{point}:{nth}:{action}")
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert survivors(case.marker) == []
    after = case.state()
    assert after.counted == before.counted  # nothing committed, nothing rotated
    assert after.incomplete == {} and after.uploads == []  # the stale one cleaned too
    case.assert_whole(after)
