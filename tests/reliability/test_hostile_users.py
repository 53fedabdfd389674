"""Another user who can write in ROOT (a NAS share, a delegated directory) while palhm
runs as root. Every test uses a real unprivileged user (`nobody`, through setpriv).

The class: whatever that user does to the names in ROOT -- rename the staging
directory, put a symbolic link in its place, replace a manifest by a FIFO or a
link to /dev/zero, start processes writing where a link points --, root never
writes, reads, hangs or kills through it, and reports it."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.reliability.hostile import (
    as_other,
    copies,
    hidden,
    other_dir,
    palhm,
    sh,
    small,
    spawn_as_other,
    start_palhm,
    task,
    write,
)

SECRET = "root-only secret 8f1c\n"


def shared_root(base: Path) -> Path:
    root = base / "root"
    root.mkdir()
    root.chmod(0o777)  # the other user may create, rename and delete names here
    return root


def two_step_task(root: Path, base: Path, secret: Path, **param: object) -> dict[str, object]:
    """Object `first` waits for base/go; object `second` (a later group) dumps the
    root-only secret: it is opened only after the attacker acted."""
    go = base / "go"
    waiting = {
        "path": "first",
        "group": "one",
        "pipeline": [sh(f"touch {base}/waiting; while [ ! -e {go} ]; do sleep 0.02; done")],
    }
    dump = {"path": "second", "group": "two", "pipeline": [sh(f"cat {secret}")]}
    doc = task(root, [waiting, dump], **param)
    doc["object-groups"] = [{"id": "one"}, {"id": "two", "depends": ["one"]}]
    return doc


def secret_file(base: Path) -> Path:
    secret = base / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    return secret


def files_below(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize("swap", ["symlink", "other-directory"])
def test_staging_swapped_mid_run_never_redirects_roots_writes(public_dir: Path, swap: str) -> None:
    base = public_dir
    root = shared_root(base)
    evil = other_dir(base / "evil")
    config = write(base / "c.json", two_step_task(root, base, secret_file(base)))
    run = start_palhm(config, "run", "backup")
    try:
        wait_for(lambda: (base / "waiting").exists(), what="the first object to wait")
        (staging,) = hidden(root)
        as_other("mv", str(root / staging), str(root / "moved"))
        if swap == "symlink":
            as_other("ln", "-s", str(evil), str(root / staging))
        else:
            as_other("mkdir", str(root / staging))
        (base / "go").touch()
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, stderr
    assert "moved or replaced during the run" in stderr
    assert copies(root) == [], "a copy was committed from a directory palhm did not make"
    leaked = files_below(evil) | files_below(root / "moved")
    if swap == "other-directory":
        leaked |= files_below(root / staging)
    assert not any(SECRET.encode() in data for data in leaked.values()), leaked
    assert not any(name.endswith(".palhm-manifest.json") for name in leaked), leaked


def test_rollback_never_kills_processes_writing_where_a_link_points(public_dir: Path) -> None:
    """The old rollback SIGKILLed every process with a file open below the (linked)
    staging directory: here, the other user's own writer."""
    base = public_dir
    root = shared_root(base)
    evil = other_dir(base / "evil")
    writer = spawn_as_other("sh", "-c", f"exec sleep 300 > {evil}/theirs")
    doc = two_step_task(root, base, secret_file(base))
    doc["objects"][1]["pipeline"] = [sh("exit 3")]  # type: ignore[index]
    config = write(base / "c.json", doc)
    run = start_palhm(config, "run", "backup")
    try:
        wait_for(lambda: (evil / "theirs").exists(), what="the other user's writer")
        wait_for(lambda: (base / "waiting").exists(), what="the first object to wait")
        (staging,) = hidden(root)
        as_other("mv", str(root / staging), str(root / "moved"))
        as_other("ln", "-s", str(evil), str(root / staging))
        (base / "go").touch()
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 1, stderr
        time.sleep(0.2)
        assert writer.poll() is None, "palhm killed another user's process"
        assert (evil / "theirs").exists()
    finally:
        writer.kill()
        writer.wait()
        if run.poll() is None:
            run.kill()


def _plant(root: Path, prefix: str, kind: str) -> None:
    """As the other user: a prefix-named directory whose manifest is hostile."""
    directory = root / prefix
    as_other("mkdir", str(directory))
    manifest = directory / ".palhm-manifest.json"
    if kind == "fifo":
        as_other("mkfifo", str(manifest))
    elif kind == "dev-zero-link":
        as_other("ln", "-s", "/dev/zero", str(manifest))
    elif kind == "link-to-real-manifest":
        real = next(p for p in root.iterdir() if p.name != prefix and not p.name.startswith("."))
        as_other("ln", "-s", str(real / ".palhm-manifest.json"), str(manifest))
    elif kind == "directory":
        as_other("mkdir", str(manifest))
    elif kind == "empty":
        as_other("touch", str(manifest))
    elif kind == "huge-sparse":
        as_other("truncate", "-s", "200M", str(manifest))
    elif kind == "garbage":
        as_other("sh", "-c", f"printf 'not json' > {manifest}")


MANIFEST_KINDS = [
    "fifo",
    "dev-zero-link",
    "link-to-real-manifest",
    "directory",
    "empty",
    "huge-sparse",
    "garbage",
]


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_a_hostile_manifest_is_a_damaged_copy_never_a_hang(public_dir: Path, kind: str) -> None:
    base = public_dir
    root = shared_root(base)
    config = write(base / "c.json", task(root, [small()], **{"nb-copy-limit": 2}))
    assert palhm(config, "run", "backup").returncode == 0
    planted = "2000-01-01T00:00:00+00:00"
    _plant(root, planted, kind)
    listed = palhm(config, "list", "backup", timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{re.escape(planted)} +damaged ", listed.stdout, re.M), listed.stdout
    verified = palhm(config, "verify", "backup", planted, timeout=30)
    assert verified.returncode == 1
    assert "damaged" in verified.stderr
    for _ in range(3):  # runs never count it, never remove it, never hang on it
        result = palhm(config, "run", "backup", timeout=60)
        assert result.returncode == 0, result.stderr
    assert planted in copies(root)
    assert len(copies(root)) == 3  # the 2 newest real copies and the damaged one


def test_a_root_writable_by_others_is_reported(public_dir: Path) -> None:
    root = shared_root(public_dir)
    config = write(public_dir / "c.json", task(root, [small()]))
    result = palhm(config, "run", "backup")
    assert result.returncode == 0
    assert f"the backup root {root} can be written by other users" in result.stderr


@pytest.mark.parametrize("name", [".palhm.lock"])
def test_a_lock_file_link_is_refused_not_followed(public_dir: Path, name: str) -> None:
    root = shared_root(public_dir)
    target = other_dir(public_dir / "home") / "target"
    as_other("ln", "-s", str(target), str(root / name))
    config = write(public_dir / "c.json", task(root, [small()]))
    result = palhm(config, "run", "backup")
    assert result.returncode == 1
    assert "symbolic link" in result.stderr
    assert not target.exists(), "root created a file through the other user's link"


def test_another_users_process_is_never_signalled_by_list_or_run(public_dir: Path) -> None:
    """A staging directory the other user planted (not palhm's) is removed as an
    incomplete copy, but their process writing in it is left alone."""
    root = shared_root(public_dir)
    planted = root / ".palhm-staging-2020-01-01T00:00:00+00:00"
    as_other("mkdir", str(planted))
    writer = spawn_as_other("sh", "-c", f"exec sleep 300 > {planted}/f")
    try:
        wait_for(lambda: (planted / "f").exists(), what="the writer")
        config = write(public_dir / "c.json", task(root, [small()]))
        assert palhm(config, "run", "backup").returncode == 0
        time.sleep(0.2)
        assert writer.poll() is None
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    os.sync()
