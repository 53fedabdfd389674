"""The localfs backend seen from outside while a run is in progress and after it:
modes from the moment things exist, hidden staging, preallocation (doc/design.md#file-modes,
#data-path, #copy-protocol)."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import pytest

from palhm.backends.base import CopyInfo
from palhm.backends.localfs import LocalfsBackend
from palhm.errors import BackendError, LockedError
from tests.integration.backup_support import (
    TASK,
    backup_config,
    copies_in,
    hold_stage,
    mode,
    obj,
    staging_dirs,
    start_palhm,
    stop,
    wait_for,
    zeros,
)

DMODE, FMODE = 0o751, 0o604  # odd bits, so that a umask stripping any of them shows
PREFIX = "2022-05-01T06:59:17+00:00"


def has_data(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def everything_under(directory: Path) -> list[Path]:
    return [directory, *sorted(directory.rglob("*"))]


@pytest.mark.parametrize("umask", [0o000, 0o077], ids=["permissive-umask", "strict-umask"])
def test_every_directory_and_file_has_its_mode_while_the_run_is_in_progress(
    tmp_path: Path, umask: int
) -> None:
    root = tmp_path / "backups" / "host"  # missing: palhm makes it, with dmode too
    flag = tmp_path / "release"
    objects = [obj("a/b/held.txt", hold_stage(flag)), obj("a/c/zeros", zeros(100_000))]
    # checksum none: the stages write into the files themselves, so "has data" below
    # proves the file is past its creation (open, then fchmod, then the stage starts)
    config = backup_config(
        tmp_path / "c.json", root, objects, param={"dmode": "751", "fmode": 604}, checksum="none"
    )
    process = start_palhm(config, umask=umask)
    try:
        staging = wait_for(lambda: staging_dirs(root), what="the staging directory")[0]
        held = staging / "a" / "b" / "held.txt"
        for path in (held, staging / "a" / "c" / "zeros"):
            wait_for(partial(has_data, path), what=f"data in {path}")
        seen = [*everything_under(staging), root, tmp_path / "backups", root / ".palhm.lock"]
        during = {str(p): (oct(mode(p)), p.is_dir()) for p in seen}
        flag.touch()
        _, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 0, stderr
    assert during == {
        path: (oct(DMODE if is_dir else FMODE), is_dir) for path, (_, is_dir) in during.items()
    }
    assert len(during) == 1 + 1 + 2 + 2 + 1 + 3  # staging, a, a/b+a/c, objects, manifest, ...
    (prefix,) = copies_in(root)
    after = everything_under(root / prefix)
    assert {str(p): oct(mode(p)) for p in after} == {
        str(p): oct(DMODE if p.is_dir() else FMODE) for p in after
    }
    assert len(after) == 1 + 1 + 2 + 2 + 1  # copy, a, a/b + a/c, two objects, manifest


def test_staging_is_hidden_and_holds_a_building_manifest_until_commit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    flag = tmp_path / "release"
    process = start_palhm(backup_config(tmp_path / "c.json", root, [obj("x", hold_stage(flag))]))
    try:
        staging = wait_for(lambda: staging_dirs(root), what="the staging directory")[0]
        wait_for((staging / "x").exists, what="the object")  # the manifest came before it
        names_during = sorted(p.name for p in root.iterdir())
        building = json.loads((staging / ".palhm-manifest.json").read_text())
        flag.touch()
        process.communicate(timeout=60)
    finally:
        stop(process)
    assert names_during == [".palhm-staging-" + building["prefix"], ".palhm.lock"]
    assert building["state"] == "building" and building["task"] == TASK
    assert copies_in(root) == [building["prefix"]]
    final = json.loads((root / building["prefix"] / ".palhm-manifest.json").read_text())
    assert final["state"] == "complete"
    assert not staging.exists()


@pytest.mark.parametrize("checksum", ["none", "blake3"])
def test_alloc_size_preallocates_the_real_target_and_is_trimmed_at_the_end(
    tmp_path: Path, checksum: str
) -> None:
    root, workdir = tmp_path / "root", tmp_path / "cwd"
    workdir.mkdir()
    flag = tmp_path / "release"
    alloc = 8 << 20
    objects = [obj("db.sql", hold_stage(flag, b"12345"), **{"alloc-size": alloc})]
    config = backup_config(tmp_path / "c.json", root, objects, checksum=checksum)
    process = start_palhm(config, cwd=workdir)
    try:
        staging = wait_for(lambda: staging_dirs(root), what="the staging directory")[0]
        target = staging / "db.sql"
        # open() and fallocate() are two steps: wait for the second
        wait_for(
            lambda: target.exists() and target.stat().st_blocks * 512 >= alloc,
            what="preallocation",
        )
        during = os.stat(target)
        flag.touch()
        _, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 0, stderr
    # FALLOC_FL_KEEP_SIZE: the size is always what was written, never the hint
    assert during.st_size <= 5 and during.st_blocks * 512 >= alloc
    (prefix,) = copies_in(root)
    stored = root / prefix / "db.sql"
    assert stored.read_bytes() == b"12345"
    assert stored.stat().st_blocks * 512 < alloc  # the unused reservation was released
    assert list(workdir.iterdir()) == []  # nothing written where palhm was started


def test_remove_copy_refuses_anything_that_is_not_a_copy_under_the_root(tmp_path: Path) -> None:
    backend = LocalfsBackend({"root": str(tmp_path / "root")}, task_id="t")
    backend.ensure_root()
    victims = [tmp_path / "elsewhere" / PREFIX, tmp_path / "root" / "user-dir"]
    for victim in victims:
        victim.mkdir(parents=True)
        with pytest.raises(BackendError, match="refusing to remove"):
            backend.remove_copy(CopyInfo(PREFIX, "complete", 0, 0, str(victim)))
        assert victim.is_dir()


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", ".palhm-manifest.json"])
def test_object_paths_outside_the_copy_or_on_the_manifest_are_refused(
    tmp_path: Path, path: str
) -> None:
    backend = LocalfsBackend({"root": str(tmp_path / "root")}, task_id="t")
    copy = backend.begin_copy(PREFIX, building_manifest=b"{}")
    with pytest.raises(BackendError):
        copy.open_object(path, alloc_size=None)
    copy.rollback()
    assert not (tmp_path / "escape").exists()
    assert list((tmp_path / "root").iterdir()) == []


def test_lock_error_names_the_holder(tmp_path: Path) -> None:
    first = LocalfsBackend({"root": str(tmp_path)}, task_id="nightly")
    second = LocalfsBackend({"root": str(tmp_path)}, task_id="other")
    with first.lock(), pytest.raises(LockedError) as caught, second.lock():
        pass
    assert f"pid {os.getpid()}" in str(caught.value) and "task 'nightly'" in str(caught.value)


def test_a_block_is_written_in_slices_and_arrives_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink cuts blocks larger than WRITE_SLICE (block-size 1 MiB) into slices (a large write()
    costs more kernel CPU per byte here); every byte arrives, in order."""
    import palhm.backends.localfs as localfs

    sizes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes | memoryview) -> int:
        sizes.append(len(data))
        return real_write(fd, data)

    backend = LocalfsBackend({"root": str(tmp_path / "root")}, task_id="t")
    copy = backend.begin_copy(PREFIX, building_manifest=b"{}")
    sink = copy.open_object("o", alloc_size=None)
    block = bytes(range(256)) * ((1 << 20) // 256) + b"end"
    monkeypatch.setattr(localfs.os, "write", counting_write)
    sink.write(memoryview(block))
    monkeypatch.undo()
    assert sink.close() == len(block)
    assert max(sizes) == localfs.WRITE_SLICE and sum(sizes) == len(block)
    staged = next((tmp_path / "root").iterdir()) / "o"
    assert staged.read_bytes() == block
    copy.rollback()


@pytest.mark.parametrize("checksum", [True, False], ids=["hashed-write", "splice"])
def test_the_write_out_of_each_step_starts_while_the_object_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checksum: bool
) -> None:
    """Every WRITEBACK_STEP bytes, through write() or splice, the sink asks the kernel to
    start writing them out (the real call, recorded): the ranges follow each other from
    offset 0, none is asked twice, and every byte arrives."""
    import hashlib
    import threading

    import palhm.backends.localfs as localfs
    from palhm.engine.pump import Pump
    from palhm.engine.spawn import data_pipe

    asked: list[tuple[int, int, bool]] = []
    real = localfs.fsutil.start_writeback

    def recording(fd: int, offset: int, length: int) -> bool:
        started = real(fd, offset, length)
        asked.append((offset, length, started))
        return started

    monkeypatch.setattr(localfs.fsutil, "start_writeback", recording)
    backend = LocalfsBackend({"root": str(tmp_path / "root")}, task_id="t")
    copy = backend.begin_copy(PREFIX, building_manifest=b"{}")
    sink = copy.open_object("o", alloc_size=None)
    data = os.urandom(3 * localfs.WRITEBACK_STEP + 12345)
    read_end, write_end = data_pipe()
    pump = Pump(read_end, sink, hashlib.sha256() if checksum else None, 128 << 10, None, "c")
    assert (pump.splice_to is None) is checksum

    def feed() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    os.set_blocking(read_end, False)
    while not pump.eof and pump.error is None:
        if pump.on_readable() == 0:
            threading.Event().wait(0.001)
    pump.flush()
    feeder.join()
    pump.close()
    assert pump.error is None and sink.close() == len(data)
    offsets = [offset for offset, _, _ in asked]
    ends = [offset + length for offset, length, _ in asked]
    assert len(asked) == 3 and offsets == [0, *ends[:-1]]  # contiguous, never twice
    assert all(length >= localfs.WRITEBACK_STEP for _, length, _ in asked)
    assert all(started for _, _, started in asked)  # ext4/tmpfs here accept the hint
    staged = next((tmp_path / "root").iterdir()) / "o"
    assert staged.read_bytes() == data
    copy.rollback()


def test_a_refused_write_out_hint_is_not_asked_again_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel refuses sync_file_range (the real call on a pipe: ESPIPE), the
    sink stops asking after the first refusal and the writes go on unharmed."""
    import palhm.backends.localfs as localfs

    read_end, write_end = os.pipe()
    try:
        assert localfs.fsutil.start_writeback(write_end, 0, 1) is False  # the real refusal
    finally:
        os.close(read_end)
        os.close(write_end)
    asked: list[int] = []

    def refusing(fd: int, offset: int, length: int) -> bool:
        asked.append(offset)
        return False

    monkeypatch.setattr(localfs.fsutil, "start_writeback", refusing)
    backend = LocalfsBackend({"root": str(tmp_path / "root")}, task_id="t")
    copy = backend.begin_copy(PREFIX, building_manifest=b"{}")
    sink = copy.open_object("o", alloc_size=None)
    block = os.urandom(1 << 20)
    for _ in range(3 * localfs.WRITEBACK_STEP // len(block)):
        sink.write(memoryview(block))
    assert sink.close() == 3 * localfs.WRITEBACK_STEP
    assert asked == [0]
    staged = next((tmp_path / "root").iterdir()) / "o"
    assert staged.stat().st_size == 3 * localfs.WRITEBACK_STEP
    copy.rollback()
