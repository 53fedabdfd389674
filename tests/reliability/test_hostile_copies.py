"""Damaged copies, surprising names and a wrong clock, through the real CLI.

Classes: what a copy holds besides its objects (links, FIFOs, devices, extra files,
a mounted file system); names that look like prefixes but are a user's; two tasks
sharing one root; copies dated in the future; damaged manifests. None of them may
make palhm trust a wrong copy, lose a good one, follow a link, or hang."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.reliability.hostile import copies, palhm, small, task, write

MANIFEST = ".palhm-manifest.json"


def _one_copy(tmp_path: Path, **param: object) -> tuple[Path, Path, str]:
    root = tmp_path / "root"
    objects = [small("a", "alpha"), small("sub/b", "beta")]
    config = write(tmp_path / "c.json", task(root, objects, **param))
    result = palhm(config, "run", "backup")
    assert result.returncode == 0, result.stderr
    (prefix,) = copies(root)
    return config, root, prefix


# --------------------------------------------------------------------------- objects


def _replace(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "symlink":
        path.symlink_to("/etc/passwd")
    elif kind == "dev-zero-link":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # a char device: /dev/zero
    elif kind == "directory":
        path.mkdir()


@pytest.mark.parametrize("kind", ["symlink", "dev-zero-link", "fifo", "device", "directory"])
def test_an_object_that_is_no_regular_file_fails_verify_and_get_without_hanging(
    tmp_path: Path, kind: str
) -> None:
    config, root, prefix = _one_copy(tmp_path)
    _replace(root / prefix / "sub" / "b", kind)
    verified = palhm(config, "verify", "backup", timeout=30)
    assert verified.returncode == 1, verified.stderr
    assert "sub/b" in verified.stderr
    got = palhm(config, "get", "backup", "latest", "sub/b", timeout=30)
    assert got.returncode == 1, got.stderr
    assert got.stdout == "", "get streamed something that is not the object"
    assert "Traceback" not in got.stderr + verified.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("file", "object not in the manifest: sub/extra"),
        ("symlink", "not a regular file: sub/extra (a symbolic link)"),
        ("fifo", "not a regular file: sub/extra (a FIFO)"),
        ("directory", "directory not in the manifest: sub/extra"),
        ("manifest-tmp", "object not in the manifest: .palhm-manifest.json.tmp"),
    ],
)
def test_verify_reports_everything_a_copy_holds_beyond_its_manifest(
    tmp_path: Path, extra: str, message: str
) -> None:
    config, root, prefix = _one_copy(tmp_path)
    target = root / prefix / "sub" / "extra"
    if extra == "file":
        target.write_bytes(b"x")
    elif extra == "symlink":
        target.symlink_to("/etc/shadow")
    elif extra == "fifo":
        os.mkfifo(target)
    elif extra == "directory":
        target.mkdir()
    else:
        (root / prefix / (MANIFEST + ".tmp")).write_bytes(b"{}")
    verified = palhm(config, "verify", "backup", timeout=30)
    assert verified.returncode == 1
    assert message in verified.stderr, verified.stderr


def test_a_file_system_mounted_inside_a_copy_is_reported_never_entered_never_emptied(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    config, root, old = _one_copy(tmp_path, **{"nb-copy-limit": 1})
    mount = root / old / "sub" / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "precious").write_bytes(b"not palhm's")
        verified = palhm(config, "verify", "backup", old)
        assert verified.returncode == 1
        assert "not a regular file: sub/mnt (a mount point)" in verified.stderr
        result = palhm(config, "run", "backup")  # rotation must remove `old`
        assert result.returncode == 1
        assert "a file system is mounted inside it, at sub/mnt" in result.stderr
        assert (mount / "precious").read_bytes() == b"not palhm's"
        assert old in copies(root), "the copy was set aside half removed"
        # an incomplete copy with a mount inside: removal refused, the run goes on
        stale = root / ".palhm-staging-2001-01-01T00:00:00+00:00"
        (stale / "m").mkdir(parents=True)
        subprocess.run(["mount", "--bind", str(mount), str(stale / "m")], check=True)
        try:
            again = palhm(config, "run", "backup")
            assert (stale / "m" / "precious").read_bytes() == b"not palhm's"
            assert "a file system is mounted inside it" in again.stderr
        finally:
            subprocess.run(["umount", str(stale / "m")], check=True)
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# --------------------------------------------------------------------------- names


USER_DIRS = [
    "2023-01-01T00:00:00Z",
    "20230101T00Z",
    "20230101T000000Z",
    "2023-01-01T00:00:00+01:00",
    "2023-01-01T00:00+00:00",
    "2023-01-01T00:00:00.000+00:00",
]


def test_user_directories_named_like_prefixes_are_never_copies(tmp_path: Path) -> None:
    """Only the exact form the original PALHM wrote, without a manifest, is a legacy
    copy; every other prefix-like name without a manifest is a user's directory."""
    root = tmp_path / "root"
    for name in USER_DIRS:
        (root / name).mkdir(parents=True)
        (root / name / "mine").write_bytes(b"user data")
    legacy = root / "2020-01-01T00:00:00+00:00"
    legacy.mkdir()
    (legacy / "etc.tar").write_bytes(b"original palhm")
    config = write(tmp_path / "c.json", task(root, [small()], **{"nb-copy-limit": 1}))
    for _ in range(2):
        result = palhm(config, "run", "backup")
        assert result.returncode == 0, result.stderr
    for name in USER_DIRS:
        assert (root / name / "mine").read_bytes() == b"user data", name
    assert not legacy.exists(), "the original's copy is counted and rotated"
    listed = palhm(config, "list", "backup", "--json")
    names = [c["prefix"] for c in json.loads(listed.stdout)]
    assert not set(names) & set(USER_DIRS)


def test_two_tasks_sharing_a_root_never_see_or_rotate_each_others_copies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    one = task(root, [small("a", "from one")], task_id="one", **{"nb-copy-limit": 1})
    two = task(root, [small("a", "from two")], task_id="two", **{"nb-copy-limit": 1})
    config = write(tmp_path / "c.json", one, two)
    for task_id in ("two", "one", "one", "one"):
        result = palhm(config, "run", task_id)
        assert result.returncode == 0, result.stderr
    assert len(copies(root)) == 2, "one task's rotation removed the other's copy"
    assert "also holds copies of task 'two'" in result.stderr
    listed = json.loads(palhm(config, "list", "two", "--json").stdout)
    assert len(listed) == 1
    got = palhm(config, "get", "two", "latest", "a")
    assert got.stdout == "from two"
    assert palhm(config, "get", "one", "latest", "a").stdout == "from one"
    assert palhm(config, "verify", "two").returncode == 0


# --------------------------------------------------------------------------- clocks


def _forge_future_copy(root: Path, source: str, when: datetime) -> str:
    """A copy as a run with the clock at `when` would have made it."""
    name = when.isoformat(timespec="microseconds")
    (root / source).rename(root / name)
    manifest = json.loads((root / name / MANIFEST).read_text())
    manifest["prefix"] = name
    (root / name / MANIFEST).write_text(json.dumps(manifest))
    return name


@pytest.mark.parametrize("rule", [{"keep-last": 2}, {"nb-copy-limit": 2}, {"keep-daily": 2}])
def test_copies_dated_in_the_future_never_push_real_copies_out(
    tmp_path: Path, rule: dict[str, int]
) -> None:
    root = tmp_path / "root"
    config = write(tmp_path / "c.json", task(root, [small("a", "stale")], **rule))
    assert palhm(config, "run", "backup").returncode == 0
    future = _forge_future_copy(root, copies(root)[0], datetime.now(UTC) + timedelta(days=400))
    write(tmp_path / "c.json", task(root, [small("a", "fresh")], **rule))
    for _ in range(3):
        result = palhm(config, "run", "backup")
        assert result.returncode == 0, result.stderr
        assert "dated in the future" in result.stderr
    real = [c for c in copies(root) if c != future]
    assert future in copies(root) and len(real) in (1, 2)
    if "keep-daily" not in rule:
        assert len(real) == 2, "a real copy was deleted to keep the future one"
    assert palhm(config, "get", "backup", "latest", "a").stdout == "fresh"
    listed = palhm(config, "list", "backup")
    assert re.search(rf"^{re.escape(future)} .*\(future\)$", listed.stdout, re.M), listed.stdout


# --------------------------------------------------------------------------- damage


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-json", "building", "other-prefix"])
def test_verify_latest_fails_on_a_damaged_newest_copy_instead_of_checking_an_older_one(
    tmp_path: Path, damage: str
) -> None:
    config, root, _ = _one_copy(tmp_path)
    assert palhm(config, "run", "backup").returncode == 0
    newest = copies(root)[-1]
    manifest = root / newest / MANIFEST
    text = manifest.read_text()
    if damage == "empty":
        manifest.write_text("")
    elif damage == "truncated":
        manifest.write_text(text[: len(text) // 2])
    elif damage == "not-json":
        manifest.write_bytes(b"\x00\xff garbage")
    elif damage == "building":
        manifest.write_text(text.replace('"state": "complete"', '"state": "building"'))
    else:
        manifest.write_text(text.replace(newest, "1999-01-01T00:00:00+00:00"))
    verified = palhm(config, "verify", "backup")
    assert verified.returncode == 1
    assert f"copy {newest} is damaged" in verified.stderr, verified.stderr
    assert "original PALHM" not in verified.stderr
    by_name = palhm(config, "verify", "backup", newest)
    assert by_name.returncode == 1 and "damaged" in by_name.stderr
    listed = palhm(config, "list", "backup")
    assert re.search(rf"^{re.escape(newest)} +damaged ", listed.stdout, re.M)
    assert "1 counted copy" in listed.stdout
    got = palhm(config, "get", "backup", "latest", "a")
    assert got.returncode == 1 and "damaged" in got.stderr
