"""Hostile surroundings: a full disk, an unwritable root, a stage that hangs past its
timeout, one that stops reading early, one killed by a signal. Each run fails with a
clear message naming the place, and leaves no trace: no copy, no staging directory,
no process; copies made before stay whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import need_program, write_config
from tests.reliability.harness import (
    MARKER_ENV,
    PYTHON,
    TASK,
    assert_counted_copies_whole,
    backup_task,
    inspect_root,
    localfs_param,
    run,
    stage,
    survivors,
)

HANG = "import time; time.sleep(300)"
SELF_KILL = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"


def exec_def(exec_id: str, *argv: str, marker: str, **extra: Any) -> dict[str, Any]:
    return {"id": exec_id, "argv": list(argv), "env": {MARKER_ENV: marker}, **extra}


def ref(exec_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "exec", "exec-id": exec_id, **extra}


def config_with(
    path: Path,
    root: Path,
    objects: list[dict[str, Any]],
    *,
    execs: Sequence[dict[str, Any]] = (),
    checksum: str = "blake3",
) -> Path:
    task = backup_task("localfs", localfs_param(root), objects, checksum=checksum)
    return write_config(path, {"nb-workers": 2, "execs": list(execs), "tasks": [task]})


def small_object(marker: str, path: str = "small") -> dict[str, Any]:
    return {"path": path, "pipeline": [stage("head", "-c", "10000", "/dev/urandom", marker=marker)]}


def assert_no_trace(root: Path, marker: str, *, copies_before: list[str]) -> None:
    """The failed run left nothing: same counted copies, nothing incomplete, no process."""
    state = inspect_root(root)
    assert state.counted == copies_before
    assert state.incomplete == []
    assert_counted_copies_whole(root, state)
    assert survivors(marker) == []


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("palhm: error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --------------------------------------------------------------------------- stages


@pytest.fixture
def marker() -> str:
    return uuid.uuid4().hex


def test_stage_past_its_timeout_is_killed_and_named(tmp_path: Path, marker: str) -> None:
    root = tmp_path / "root"
    execs = [exec_def("hang", PYTHON, "-c", HANG, marker=marker, timeout=0.5)]
    objects = [small_object(marker), {"path": "hung", "pipeline": [ref("hang")]}]
    result = run(config_with(tmp_path / "c.json", root, objects, execs=execs))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "object 'hung', stage 1 (hang)" in line and "timed out after 0.5 s" in line
    assert_no_trace(root, marker, copies_before=[])


def test_downstream_stage_exiting_without_reading_is_reported_not_hung(
    tmp_path: Path, marker: str
) -> None:
    """`yes | true`: true exits at once; yes dies of SIGPIPE; palhm names the cause."""
    root = tmp_path / "root"
    execs = [
        exec_def("yes-forever", "yes", marker, marker=marker),
        exec_def("no-reader", "true", marker=marker),
    ]
    objects = [{"path": "early", "pipeline": [ref("yes-forever"), ref("no-reader")]}]
    result = run(config_with(tmp_path / "c.json", root, objects, execs=execs))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "object 'early', stage 1 (yes-forever)" in line
    assert "killed by SIGPIPE (stage 2 (no-reader) stopped reading early)" in line
    assert_no_trace(root, marker, copies_before=[])


def test_downstream_head_closing_early_fails_the_object(tmp_path: Path, marker: str) -> None:
    root = tmp_path / "root"
    execs = [
        exec_def("zeros", "head", "-c", "50000000", "/dev/zero", marker=marker),
        exec_def("first-byte", "head", "-c", "1", marker=marker),
    ]
    objects = [{"path": "cut", "pipeline": [ref("zeros"), ref("first-byte")]}]
    result = run(config_with(tmp_path / "c.json", root, objects, execs=execs))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "object 'cut', stage 1 (zeros)" in line and "stopped reading early" in line
    assert_no_trace(root, marker, copies_before=[])


def test_stage_killed_by_a_signal_is_named_with_the_signal(tmp_path: Path, marker: str) -> None:
    root = tmp_path / "root"
    execs = [
        exec_def("self-kill", PYTHON, "-c", SELF_KILL, marker=marker),
        exec_def("hang", PYTHON, "-c", HANG, marker=marker),
    ]
    objects = [
        {"path": "killed", "pipeline": [ref("self-kill"), stage("cat", marker=marker)]},
        {"path": "slow", "pipeline": [ref("hang")]},  # killed by palhm's fail-fast
    ]
    result = run(config_with(tmp_path / "c.json", root, objects, execs=execs))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "object 'killed', stage 1 (self-kill)" in line and "killed by SIGKILL" in line
    assert_no_trace(root, marker, copies_before=[])


# --------------------------------------------------------------------------- file system


def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
    need_program("mount", "umount")


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True, timeout=30)


def _umount(target: Path) -> None:
    result = subprocess.run(["umount", str(target)], capture_output=True, timeout=30, check=False)
    if result.returncode != 0:  # busy: detach it, it goes once unused
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test only, unmounted afterwards."""
    _root_only()
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mountpoint))
    try:
        yield mountpoint
    finally:
        _umount(mountpoint)


@pytest.mark.parametrize("checksum", ["blake3", "none"])
def test_full_disk_fails_clearly_and_keeps_earlier_copies(
    tmp_path: Path, small_disk: Path, marker: str, checksum: str
) -> None:
    """palhm's own write (blake3) or splice (none) hits ENOSPC: the run is rolled back."""
    root = small_disk / "root"
    first = run(config_with(tmp_path / "small.json", root, [small_object(marker)]))
    assert first.returncode == 0, first.stderr
    before = inspect_root(root).counted
    big = {"path": "big", "pipeline": [stage("head", "-c", "4000000", "/dev/zero", marker=marker)]}
    result = run(config_with(tmp_path / "big.json", root, [big], checksum=checksum))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "object 'big'" in line and "No space left on device" in line
    assert_no_trace(root, marker, copies_before=before)


@pytest.fixture
def read_only_root(tmp_path: Path, marker: str) -> Iterator[tuple[Path, list[str]]]:
    """A root holding one copy, then bind-mounted read-only onto itself (root ignores
    file modes, so chmod alone would prove nothing)."""
    _root_only()
    root = tmp_path / "root"
    first = run(config_with(tmp_path / "first.json", root, [small_object(marker)]))
    assert first.returncode == 0, first.stderr
    copies = inspect_root(root).counted
    _mount("--bind", str(root), str(root))
    try:
        _mount("-o", "remount,bind,ro", str(root))
        yield root, copies
    finally:
        _umount(root)


def test_read_only_root_fails_clearly_and_changes_nothing(
    tmp_path: Path, read_only_root: tuple[Path, list[str]], marker: str
) -> None:
    root, copies = read_only_root
    result = run(config_with(tmp_path / "c.json", root, [small_object(marker)]))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"task '{TASK}'" in line and str(root) in line and "Read-only file system" in line
    assert_no_trace(root, marker, copies_before=copies)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is private to its owner)."""
    directory = Path(tempfile.mkdtemp(prefix="palhm-unwritable-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_unwritable_root_directory_fails_clearly(open_dir: Path, marker: str) -> None:
    """chmod 555 on the root: effective for an unprivileged user only, so as root the
    test runs palhm as `nobody` (setpriv), otherwise as the current user."""
    root = open_dir / "root"
    root.mkdir()
    config = config_with(open_dir / "c.json", root, [small_object(marker)])
    config.chmod(0o644)
    root.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        need_program("setpriv")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    result = subprocess.run(
        [*prefix, PYTHON, "-m", "palhm", "-f", str(config), "run", TASK],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(open_dir)},
    )
    root.chmod(0o755)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert str(root) in line and "Permission denied" in line
    assert_no_trace(root, marker, copies_before=[])
