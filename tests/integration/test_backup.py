"""Backup runs with real pipelines, as a user runs them (doc/design.md#backups-objects-and-groups,
#what-counts-as-a-copy, #copy-protocol)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from palhm.engine.backup import run_backup
from palhm.model import BackupObject, BackupTask, Exec, ObjectGroup, PrefixSpec
from tests.helpers import need_program, run_palhm
from tests.integration.backup_support import (
    TASK,
    backup_config,
    copies_in,
    inline,
    manifest_of,
    obj,
    python_stage,
    zeros,
)

# Each object process counts the objects running at its start (itself included) through
# marker files: the last of k concurrent objects to start sees k markers.
WITNESS = (
    "import os, sys, time, uuid\n"
    "marker = os.path.join(sys.argv[1], uuid.uuid4().hex)\n"
    "open(marker, 'w').close()\n"
    "seen = len(os.listdir(sys.argv[1]))\n"
    "time.sleep(0.2)\n"
    "os.unlink(marker)\n"
    "print(seen)\n"
)


def witness(markers: Path) -> dict[str, Any]:
    return python_stage(WITNESS, str(markers))


def times(manifest: dict[str, Any]) -> dict[str, tuple[datetime, datetime]]:
    return {
        o["path"]: (datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"]))
        for o in manifest["objects"]
    }


def test_groups_run_in_dependency_order_never_above_nb_workers(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    groups: list[dict[str, Any]] = [
        {"id": "a"},
        {"id": "b", "depends": ["a"]},
        {"id": "c", "depends": ["a"]},
        {"id": "d", "depends": ["b", "c"]},
        {"id": "empty"},
        {"id": "after-empty", "depends": ["empty"]},
    ]
    members = {"a": 3, "b": 2, "c": 1, "d": 2, "after-empty": 1}
    objects = [
        obj(f"{group}/{i}", witness(markers), group=group)
        for group, count in members.items()
        for i in range(count)
    ]
    config = backup_config(
        tmp_path / "c.json", tmp_path / "root", objects, groups=groups, nb_workers=2
    )

    result = run_palhm(["-f", str(config), "run", TASK])

    assert result.returncode == 0, result.stderr
    (prefix,) = copies_in(tmp_path / "root")
    spans = times(manifest_of(tmp_path / "root", prefix))
    assert len(spans) == sum(members.values())

    def of(group: str) -> list[tuple[datetime, datetime]]:
        return [span for path, span in spans.items() if path.split("/")[0] == group]

    for group, depends in (("b", "a"), ("c", "a"), ("d", "b"), ("d", "c")):
        assert min(s for s, _ in of(group)) >= max(e for _, e in of(depends))
    seen = [int((tmp_path / "root" / prefix / path).read_text()) for path in spans]
    assert max(seen) <= 2


def test_objects_checksums_sizes_and_stage_statuses_are_in_the_manifest(tmp_path: Path) -> None:
    need_program("b3sum", "tar", "zstd")
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "file").write_bytes(os.urandom(100_000))
    objects = [
        obj(
            "tree.tar.zst",
            inline("tar", "-C", str(source), "-cf", "-", "d", ec="<2"),
            inline("zstd", "-q", "-T0"),
        ),
        obj("sub/dir/zeros", zeros(3_000_000), inline("cat")),
    ]
    root = tmp_path / "root"
    config = backup_config(tmp_path / "c.json", root, objects, checksum="blake3")

    result = run_palhm(["-f", str(config), "run", TASK])

    assert result.returncode == 0, result.stderr
    (prefix,) = copies_in(root)
    manifest = manifest_of(root, prefix)
    assert (manifest["task"], manifest["prefix"], manifest["state"]) == (TASK, prefix, "complete")
    for entry in manifest["objects"]:
        stored = root / prefix / entry["path"]
        b3sum = subprocess.run(["b3sum", str(stored)], capture_output=True, text=True, check=True)
        assert entry["checksum"] == {"algorithm": "blake3", "hex": b3sum.stdout.split()[0]}
        assert entry["size"] == stored.stat().st_size
    tar_entry = manifest["objects"][0]
    assert [s["argv"][0] for s in tar_entry["stages"]] == ["tar", "zstd"]
    assert [s["status"] for s in tar_entry["stages"]] == [0, 0]
    listing = subprocess.run(
        ["tar", "--zstd", "-tf", str(root / prefix / "tree.tar.zst")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "d/file" in listing.stdout.split()


@pytest.mark.parametrize(
    ("algorithm", "tool"), [("sha256", "sha256sum"), ("xxh3-128", "xxh128sum")]
)
def test_other_checksums_match_their_tools(tmp_path: Path, algorithm: str, tool: str) -> None:
    need_program(tool)
    root = tmp_path / "root"
    config = backup_config(
        tmp_path / "c.json", root, [obj("z", inline("head", "-c", "5000000", "/dev/urandom"))],
        checksum=algorithm,
    )  # fmt: skip
    assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
    (prefix,) = copies_in(root)
    (entry,) = manifest_of(root, prefix)["objects"]
    digest = subprocess.run([tool, str(root / prefix / "z")], capture_output=True, text=True)
    assert entry["checksum"]["hex"] == digest.stdout.split()[0]


def test_checksum_none_records_the_size_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = backup_config(tmp_path / "c.json", root, [obj("z", zeros(12345))], checksum="none")
    assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
    (prefix,) = copies_in(root)
    (entry,) = manifest_of(root, prefix)["objects"]
    assert (entry["checksum"], entry["size"]) == (None, 12345)
    assert (root / prefix / "z").read_bytes() == bytes(12345)


def test_rotation_by_count_keeps_the_newest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = backup_config(
        tmp_path / "c.json", root, [obj("a", inline("echo", "x"))], param={"nb-copy-limit": "2"}
    )
    made: list[str] = []
    for _ in range(4):
        assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
        made.append(sorted(set(copies_in(root)) - set(made))[0])
    assert copies_in(root) == made[2:]


def test_rotation_by_size_removes_oldest_until_the_root_fits(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = backup_config(
        tmp_path / "c.json", root, [obj("a", zeros(1000))], param={"root-size-limit": 2500}
    )
    made: list[str] = []
    for _ in range(4):
        assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
        made.append(sorted(set(copies_in(root)) - set(made))[0])
    assert copies_in(root) == made[2:]  # 2 x 1000 bytes fit in 2500, 3 do not


def test_foreign_files_and_directories_in_the_root_are_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    foreign = [root / "lost+found" / "inode", root / "notes.txt", root / "2023-01-01" / "mine"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("user data")
    config = backup_config(
        tmp_path / "c.json", root, [obj("a", inline("echo", "x"))],
        param={"nb-copy-limit": 1, "root-size-limit": 1},
    )  # fmt: skip
    for _ in range(2):
        assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
    assert all(path.read_text() == "user data" for path in foreign)
    assert len(copies_in(root)) == 1


def test_copy_of_the_original_palhm_counts_and_is_rotated_first(tmp_path: Path) -> None:
    root = tmp_path / "root"
    legacy = root / "2022-05-01T06:59:17+00:00"
    legacy.mkdir(parents=True)
    (legacy / "etc.tar.xz").write_bytes(b"old")
    config = backup_config(
        tmp_path / "c.json", root, [obj("a", inline("echo", "x"))], param={"nb-copy-limit": 2}
    )
    assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
    assert legacy.is_dir()  # two copies: the legacy one and the new one
    assert run_palhm(["-f", str(config), "run", TASK]).returncode == 0
    assert not legacy.exists()
    assert len(copies_in(root)) == 2


def test_prefix_collision_fails_and_never_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "root"
    hourly = {"prefix": {"type": "iso8601", "timespec": "hours"}}
    first = backup_config(tmp_path / "1.json", root, [obj("a", inline("echo", "1"))], param=hourly)
    second = backup_config(tmp_path / "2.json", root, [obj("a", inline("echo", "2"))], param=hourly)
    assert run_palhm(["-f", str(first), "run", TASK]).returncode == 0
    (prefix,) = copies_in(root)
    manifest_before = (root / prefix / ".palhm-manifest.json").read_bytes()

    result = run_palhm(["-f", str(second), "run", TASK])

    if copies_in(root) != [prefix]:  # the hour changed between the two runs
        pytest.skip("the two runs fell in different hours")
    assert result.returncode == 1
    assert f"task '{TASK}'" in result.stderr and "already exists" in result.stderr
    assert (root / prefix / "a").read_text() == "1\n"
    assert (root / prefix / ".palhm-manifest.json").read_bytes() == manifest_before
    assert [p.name for p in root.iterdir() if p.name.startswith(".palhm-staging")] == []


def test_the_same_task_runs_twice_in_one_process(tmp_path: Path) -> None:
    root = tmp_path / "root"
    task = BackupTask(
        id="twice",
        backend="localfs",
        objects=(
            BackupObject("a", (Exec(("echo", "one")),)),
            BackupObject("b", (Exec(("echo", "two")),), group="later"),
        ),
        groups=(ObjectGroup("later", ("default",)),),
        backend_param={"root": str(root)},
        prefix=PrefixSpec(kind="iso8601", timespec="microseconds"),
    )
    first = run_backup(task, nb_workers=1, verbosity=1)
    second = run_backup(task, nb_workers=1, verbosity=1)
    assert first.prefix != second.prefix
    assert copies_in(root) == sorted([first.prefix, second.prefix])
    for result in (first, second):
        assert [o.path for o in result.manifest.objects] == ["a", "b"]
        assert (root / result.prefix / "b").read_text() == "two\n"


def test_null_backend_runs_the_pipelines_and_keeps_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    objects = [obj("x", python_stage("import sys; open(sys.argv[1], 'w').write('y')", str(marker)))]
    config = backup_config(tmp_path / "c.json", tmp_path / "root", objects, backend="null")
    result = run_palhm(["-f", str(config), "run", TASK])
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "y"
    assert not (tmp_path / "root").exists()


def test_null_backend_failure_is_reported_like_any_other(tmp_path: Path) -> None:
    objects = [obj("dnssec", inline("printf", ""), inline("grep", "."))]
    config = backup_config(tmp_path / "c.json", tmp_path / "root", objects, backend="null")
    result = run_palhm(["-f", str(config), "run", TASK])
    assert result.returncode == 1
    assert "object 'dnssec'" in result.stderr and "grep" in result.stderr
