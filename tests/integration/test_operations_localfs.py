"""`list`, `verify` and `get` (doc/operations.md) on copies made by the real backup engine into a
real localfs root, with real pipeline processes. Damage is done to the stored files
by hand, as a failing disk or a careless admin would."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from types import MappingProxyType

import pytest

from palhm.engine.backup import run_backup
from palhm.errors import BackendError, UsageError
from palhm.model import BackupObject, BackupTask, Config, Exec, PrefixSpec
from palhm.ops.operations import VerifyError, get_object, list_text, verify

# microsecond prefixes: several copies a second without a collision
PREFIX = PrefixSpec(kind="iso8601", timespec="microseconds")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    data = tmp_path / "source.bin"
    data.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return data


def make_task(root: Path, source: Path, checksum: str = "blake3") -> BackupTask:
    objects = (
        BackupObject("data/source.bin", (Exec(("cat", str(source))),)),
        BackupObject("data/source.bin.zst", (Exec(("cat", str(source))), Exec(("zstd", "-c")))),
        BackupObject("hello.txt", (Exec(("echo", "hello")),)),
    )
    return BackupTask(
        "files",
        "localfs",
        objects,
        backend_param=MappingProxyType({"root": str(root)}),
        prefix=PREFIX,
        checksum=checksum,  # type: ignore[arg-type]
    )


def config_of(task: BackupTask) -> Config:
    return Config(source=Path("test.jsonc"), tasks={task.id: task})


def backed_up(
    tmp_path: Path, source: Path, checksum: str = "blake3"
) -> tuple[Config, BackupTask, Path]:
    """A task with one committed copy; returns the copy's directory too."""
    task = make_task(tmp_path / "root", source, checksum)
    result = run_backup(task, nb_workers=2, verbosity=1)
    return config_of(task), task, tmp_path / "root" / result.prefix


def test_verify_of_a_good_copy_reports_every_object(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source)
    report = verify(config, task, "latest")
    assert copy.name in report.splitlines()[0] and "OK" in report.splitlines()[0]
    for path in ("data/source.bin", "data/source.bin.zst", "hello.txt"):
        assert f"ok  {path} " in report


def test_verify_catches_a_flipped_byte_and_names_the_object(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source)
    target = copy / "data" / "source.bin"
    with open(target, "r+b") as stored:
        stored.seek(1_000_000)
        byte = stored.read(1)
        stored.seek(1_000_000)
        stored.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(VerifyError) as raised:
        verify(config, task, "latest")
    message = str(raised.value)
    assert "checksum differs: data/source.bin (blake3" in message
    assert "size differs" not in message
    assert "source.bin.zst" not in message  # the other objects are fine


def test_verify_catches_a_truncated_object(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source)
    os.truncate(copy / "data" / "source.bin.zst", 100)
    with pytest.raises(VerifyError) as raised:
        verify(config, task, copy.name)
    assert "size differs: data/source.bin.zst (manifest" in str(raised.value)
    assert "stored 100 bytes" in str(raised.value)


def test_verify_reports_missing_and_unexpected_objects_together(
    tmp_path: Path, source: Path
) -> None:
    config, task, copy = backed_up(tmp_path, source)
    (copy / "hello.txt").unlink()
    (copy / "stray.txt").write_text("not ours")
    with pytest.raises(VerifyError) as raised:
        verify(config, task, "latest")
    message = str(raised.value)
    assert "2 problem(s)" in message
    assert "missing object: hello.txt" in message
    assert "object not in the manifest: stray.txt" in message


@pytest.mark.parametrize("checksum", ["sha256", "xxh3-128"])
def test_verify_uses_the_algorithm_named_in_the_manifest(
    tmp_path: Path, source: Path, checksum: str
) -> None:
    config, task, copy = backed_up(tmp_path, source, checksum)
    assert f"size and {checksum}" in verify(config, task, "latest")
    with open(copy / "hello.txt", "r+b") as stored:
        stored.write(b"J")
    with pytest.raises(VerifyError, match=f"checksum differs: hello.txt \\({checksum}"):
        verify(config, task, "latest")


def test_size_only_copies_still_catch_truncation(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source, "none")
    assert "(size only)" in verify(config, task, "latest")
    os.truncate(copy / "hello.txt", 2)
    with pytest.raises(VerifyError, match="size differs: hello.txt"):
        verify(config, task, "latest")


def test_legacy_and_incomplete_copies_cannot_be_verified(tmp_path: Path, source: Path) -> None:
    root = tmp_path / "root"
    legacy = root / "2020-01-01T00:00:00+00:00"
    (legacy / "data").mkdir(parents=True)
    (legacy / "data" / "source.bin").write_bytes(source.read_bytes())
    staging = root / ".palhm-staging-2020-01-02T00:00:00+00:00"
    staging.mkdir()
    task = make_task(root, source)
    config = config_of(task)
    with pytest.raises(VerifyError, match="no manifest"):
        verify(config, task, legacy.name)
    with pytest.raises(VerifyError, match="is incomplete"):
        verify(config, task, "2020-01-02T00:00:00+00:00")
    with pytest.raises(VerifyError, match="only legacy copies"):
        verify(config, task, "latest")


def test_unknown_prefix_is_a_usage_error_listing_copies(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source)
    with pytest.raises(UsageError) as raised:
        verify(config, task, "2000-01-01T00:00:00+00:00")
    assert copy.name in str(raised.value)


def test_get_streams_the_object_byte_identical(tmp_path: Path, source: Path) -> None:
    config, task, _ = backed_up(tmp_path, source)
    out = io.BytesIO()
    get_object(config, task, "latest", "./data//source.bin", out)
    assert out.getvalue() == source.read_bytes()


def test_get_latest_takes_the_newest_complete_copy(tmp_path: Path, source: Path) -> None:
    config, task, _ = backed_up(tmp_path, source)
    source.write_bytes(b"second version\n")
    run_backup(task, nb_workers=1, verbosity=1)
    out = io.BytesIO()
    get_object(config, task, "latest", "data/source.bin", out)
    assert out.getvalue() == b"second version\n"


def test_get_of_a_damaged_object_fails_after_streaming_it(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source)
    with open(copy / "hello.txt", "r+b") as stored:
        stored.write(b"J")
    out = io.BytesIO()
    with pytest.raises(VerifyError, match="differs from the manifest"):
        get_object(config, task, "latest", "hello.txt", out)
    assert out.getvalue() == b"Jello\n"


def test_get_of_an_unknown_path_lists_the_objects(tmp_path: Path, source: Path) -> None:
    config, task, _ = backed_up(tmp_path, source)
    with pytest.raises(UsageError) as raised:
        get_object(config, task, "latest", "nope.txt", io.BytesIO())
    assert "hello.txt" in str(raised.value)
    with pytest.raises(UsageError):
        get_object(config, task, "latest", "../etc/passwd", io.BytesIO())


def test_get_from_a_legacy_copy_reads_the_file(tmp_path: Path, source: Path) -> None:
    root = tmp_path / "root"
    legacy = root / "2020-01-01T00:00:00+00:00"
    legacy.mkdir(parents=True)
    (legacy / "dump.sql").write_bytes(b"CREATE TABLE t;\n")
    task = make_task(root, source)
    out = io.BytesIO()
    get_object(config_of(task), task, "latest", "dump.sql", out)
    assert out.getvalue() == b"CREATE TABLE t;\n"
    with pytest.raises(BackendError, match="missing.sql"):
        get_object(config_of(task), task, "latest", "missing.sql", io.BytesIO())


def test_list_shows_every_state_oldest_first(tmp_path: Path, source: Path) -> None:
    config, task, copy = backed_up(tmp_path, source)
    root = copy.parent
    (root / "2020-01-01T00:00:00+00:00").mkdir()
    (root / "2020-01-01T00:00:00+00:00" / "old.tar").write_bytes(b"x" * 10)
    (root / ".palhm-staging-2099-01-01T00:00:00+00:00").mkdir()
    (root / "lost+found").mkdir()
    listed = json.loads(list_text(config, task, as_json=True))
    assert [(c["prefix"], c["state"]) for c in listed] == [
        ("2020-01-01T00:00:00+00:00", "legacy"),
        (copy.name, "complete"),
        ("2099-01-01T00:00:00+00:00", "incomplete"),
    ]
    complete = listed[1]
    stored = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file())
    manifest = (copy / ".palhm-manifest.json").stat().st_size
    assert complete["size"] == stored - manifest
    assert complete["objects"] == 3
    assert listed[0]["age-seconds"] > 3 * 365 * 86400
    text = list_text(config, task, as_json=False)
    rows = [line.split()[:3] for line in text.splitlines()[2:-1]]
    assert rows == [
        ["2020-01-01T00:00:00+00:00", "legacy", "1"],
        [copy.name, "complete", "3"],
        ["2099-01-01T00:00:00+00:00", "incomplete", "0"],
    ]
    assert text.splitlines()[-1].startswith("2 counted copies")
    assert "lost+found" not in text


@pytest.mark.parametrize(
    "operation",
    [
        lambda c, t: list_text(c, t, as_json=False),
        lambda c, t: list_text(c, t, as_json=True),
        lambda c, t: verify(c, t, "latest"),
        lambda c, t: get_object(c, t, "latest", "data/source.bin", io.BytesIO()),
    ],
    ids=["list", "list-json", "verify", "get"],
)
def test_a_root_that_does_not_exist_is_an_error_not_no_copies(
    tmp_path: Path, source: Path, operation: object
) -> None:
    """An unmounted disk must not read as "no copies": list, verify and get say the
    root is missing, fail, and create nothing."""
    task = make_task(tmp_path / "absent", source)
    with pytest.raises(BackendError, match=r"backup root .*absent does not exist.*mounted"):
        operation(config_of(task), task)  # type: ignore[operator]
    assert not (tmp_path / "absent").exists()


def test_an_empty_root_lists_no_copies(tmp_path: Path, source: Path) -> None:
    (tmp_path / "empty").mkdir()
    task = make_task(tmp_path / "empty", source)
    assert "no copies" in list_text(config_of(task), task, as_json=False)
    assert json.loads(list_text(config_of(task), task, as_json=True)) == []
