"""Failing backups: fail fast, name the place, roll back, leave nothing behind
(doc/design.md#backups-objects-and-groups, #copy-protocol, #execs-and-pipeline-stages, #locking,
#signals)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import descendants, need_program, require_services, run_palhm
from tests.integration.backup_support import (
    TASK,
    backup_config,
    copies_in,
    hold_stage,
    inline,
    obj,
    staging_dirs,
    start_palhm,
    stop,
    wait_for,
    zeros,
)


def first_copy(root: Path, tmp_path: Path) -> str:
    config = backup_config(tmp_path / "good.json", root, [obj("a", inline("echo", "good"))])
    assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
    (prefix,) = copies_in(root)
    return prefix


def test_failing_middle_stage_names_task_object_and_stage_and_leaves_no_copy(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    earlier = first_copy(root, tmp_path)
    objects = [obj("db.sql.zst", zeros(5_000_000), inline("false"), inline("cat"))]
    config = backup_config(tmp_path / "bad.json", root, objects)

    result = run_palhm(["-f", str(config), "run", TASK])

    assert result.returncode == 1
    assert "task 'backup'" in result.stderr
    assert "object 'db.sql.zst'" in result.stderr
    assert "stage 2" in result.stderr and "false" in result.stderr
    assert "Traceback" not in result.stderr
    assert copies_in(root) == [earlier]
    assert (root / earlier / "a").read_text() == "good\n"
    assert staging_dirs(root) == []


def test_a_failure_kills_the_other_running_objects_at_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    objects = [
        obj("slow", inline("sleep", "300")),
        obj("broken", inline("sh-does-not-exist-here")),
    ]
    config = backup_config(tmp_path / "c.json", root, objects)
    process = start_palhm(config)
    try:
        # the subprocess timeout is the guard: a run waiting for `sleep 300` fails it
        _, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 1
    assert "object 'broken'" in stderr
    assert "object 'slow'" not in stderr  # its cancellation is a consequence, not the cause
    assert copies_in(root) == [] and staging_dirs(root) == []


def test_objects_waiting_behind_a_failed_group_never_start(tmp_path: Path) -> None:
    marker = tmp_path / "later-ran"
    objects = [
        obj("bad", inline("false")),
        obj("later", inline("touch", str(marker)), group="after"),
    ]
    groups = [{"id": "after", "depends": ["default"]}]
    config = backup_config(tmp_path / "c.json", tmp_path / "root", objects, groups=groups)
    assert run_palhm(["-f", str(config), "run", TASK]).returncode == 1
    assert not marker.exists()


def test_a_second_concurrent_run_fails_clearly_and_the_first_completes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    flag = tmp_path / "release"
    first = start_palhm(backup_config(tmp_path / "1.json", root, [obj("a", hold_stage(flag))]))
    try:
        wait_for(lambda: staging_dirs(root), what="the first run to start its copy")
        second = run_palhm(
            [
                "-f",
                str(backup_config(tmp_path / "2.json", root, [obj("b", inline("echo"))])),
                "run",
                TASK,
            ]
        )
        flag.touch()
        _, first_err = first.communicate(timeout=60)
    finally:
        stop(first)
    assert second.returncode == 1
    assert "in use by another palhm run" in second.stderr
    assert f"pid {first.pid}" in second.stderr and "task 'backup'" in second.stderr
    assert first.returncode == 0, first_err
    (prefix,) = copies_in(root)
    assert (root / prefix / "a").read_text() == "held\n"


def test_a_program_that_cannot_start_fails_the_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = backup_config(tmp_path / "c.json", root, [obj("x", inline("/nonexistent/prog"))])
    result = run_palhm(["-f", str(config), "run", TASK])
    assert result.returncode == 1
    assert "object 'x'" in result.stderr and "/nonexistent/prog" in result.stderr
    assert copies_in(root) == [] and staging_dirs(root) == []


def test_no_process_of_a_failed_run_outlives_it(tmp_path: Path) -> None:
    objects = [obj(f"slow{i}", inline("sleep", "300")) for i in range(3)]
    objects.append(obj("bad", inline("sleep", "0.3"), inline("false")))
    config = backup_config(tmp_path / "c.json", tmp_path / "root", objects, nb_workers=4)
    process = start_palhm(config)
    try:
        wait_for(lambda: len(descendants(process.pid)) >= 3, what="the stages to start")
        children = descendants(process.pid)
        process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 1
    assert [pid for pid in children if os.path.exists(f"/proc/{pid}")] == []


# -- full disk ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs (root only), unmounted at teardown."""
    need_program("mount", "umount")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs: {mounted.stderr.strip()}"
        pytest.fail(message) if require_services() else pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.mark.parametrize("checksum", ["none", "blake3"])
def test_full_disk_rolls_back_with_a_clear_error(
    small_disk: Path, tmp_path: Path, checksum: str
) -> None:
    # whatever the checksum, palhm writes the object (splice or write): the backend fails
    cause = "cannot write"
    root = small_disk / "root"
    earlier = first_copy(root, tmp_path)
    objects = [obj("big", zeros(30 << 20)), obj("small", inline("echo", "x"))]
    config = backup_config(tmp_path / "c.json", root, objects, checksum=checksum)

    result = run_palhm(["-f", str(config), "run", TASK])

    assert result.returncode == 1
    assert "object 'big'" in result.stderr and cause in result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert copies_in(root) == [earlier] and staging_dirs(root) == []
    assert os.statvfs(small_disk).f_bfree * os.statvfs(small_disk).f_frsize > 19 << 20
