"""Pure parts of `list`/`verify`/`get` (doc/operations.md): which copy `latest` names, task and
path checks. The real round trips are in tests/integration and tests/e2e; here an
in-memory backend stands in for storage."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, ClassVar

import pytest

from palhm.backends.base import Backend, CopyInfo, CopyWriter
from palhm.errors import BackendError, UsageError
from palhm.manifest import Manifest, ObjectRecord, encode_manifest
from palhm.model import BackupObject, BackupTask, Config, Exec, RoutineTask
from palhm.ops.operations import VerifyError, backup_task, resolve_copy, verify

TASK = BackupTask("db", "null", (BackupObject("x", (Exec(("true",)),)),))


class MemoryBackend(Backend):
    """Copies as dicts: prefix -> (state, {path: bytes}, manifest bytes or None)."""

    name: ClassVar[str] = "memory"

    def __init__(self, copies: Mapping[str, tuple[str, dict[str, bytes], bytes | None]]) -> None:
        super().__init__({}, task_id="db")
        self.copies = dict(copies)

    def describe(self) -> str:
        return "memory:/"

    def lock(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def list_copies(self) -> list[CopyInfo]:
        return [
            CopyInfo(p, s, sum(map(len, o.values())), len(o), p)  # type: ignore[arg-type]
            for p, (s, o, _) in sorted(self.copies.items())
        ]

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> CopyWriter:
        raise NotImplementedError

    def remove_copy(self, copy: CopyInfo) -> None:
        raise NotImplementedError

    def read_manifest(self, prefix: str) -> bytes | None:
        return self.copies[prefix][2]

    @contextmanager
    def _reader(self, prefix: str, path: str) -> Iterator[IO[bytes]]:
        objects = self.copies[prefix][1]
        if path not in objects:
            raise BackendError(f"no object {path}")
        yield io.BytesIO(objects[path])

    def open_object_reader(self, prefix: str, path: str) -> AbstractContextManager[IO[bytes]]:
        return self._reader(prefix, path)


def manifest_for(prefix: str, objects: dict[str, bytes]) -> bytes:
    now = datetime.now(UTC)
    records = tuple(ObjectRecord(p, len(d), "none", None, now, now, ()) for p, d in objects.items())
    return encode_manifest(Manifest("db", prefix, now, now, records))


def complete(prefix: str, objects: dict[str, bytes]) -> tuple[str, dict[str, bytes], bytes]:
    return ("complete", objects, manifest_for(prefix, objects))


OLD = "2024-01-01T00:00:00+00:00"
MID = "2024-01-02T00:00:00+00:00"
NEW = "2024-01-03T00:00:00+00:00"


def test_latest_is_the_newest_complete_copy_even_before_newer_legacy_or_incomplete() -> None:
    backend = MemoryBackend(
        {
            OLD: complete(OLD, {"a": b"1"}),
            MID: ("legacy", {"a": b"2"}, None),
            NEW: ("incomplete", {}, None),
        }
    )
    assert resolve_copy(backend, TASK, "latest", legacy_latest=False).prefix == OLD
    assert resolve_copy(backend, TASK, "latest", legacy_latest=True).prefix == OLD


def test_latest_falls_back_to_legacy_only_for_get() -> None:
    backend = MemoryBackend({OLD: ("legacy", {"a": b"1"}, None)})
    assert resolve_copy(backend, TASK, "latest", legacy_latest=True).prefix == OLD
    with pytest.raises(VerifyError, match="only legacy copies"):
        resolve_copy(backend, TASK, "latest", legacy_latest=False)


def test_no_copies_at_all_is_a_run_time_failure_naming_the_root() -> None:
    with pytest.raises(VerifyError, match="no copies in memory:/"):
        resolve_copy(MemoryBackend({}), TASK, "latest", legacy_latest=True)


def test_unknown_prefix_lists_the_newest_five() -> None:
    prefixes = [f"2024-01-{d:02d}T00:00:00+00:00" for d in range(1, 9)]
    backend = MemoryBackend({p: complete(p, {}) for p in prefixes})
    with pytest.raises(UsageError) as raised:
        resolve_copy(backend, TASK, "2023-01-01T00:00:00+00:00", legacy_latest=False)
    message = str(raised.value)
    assert all(p in message for p in prefixes[-5:])
    assert prefixes[0] not in message


def test_routine_task_is_refused_with_the_backup_tasks_listed() -> None:
    routine = RoutineTask("daily", ())
    config = Config(source=Path("c.jsonc"), tasks={"daily": routine, "db": TASK})
    with pytest.raises(UsageError, match=r"'daily' is a routine.*backup tasks: db"):
        backup_task(config, "daily")
    assert backup_task(config, "db") is TASK


def test_damaged_manifest_is_reported_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = MemoryBackend({OLD: ("complete", {"a": b"1"}, b"{not json")})
    monkeypatch.setattr("palhm.ops.operations.open_backend", lambda config, task: backend)
    config = Config(source=Path("c.jsonc"), tasks={"db": TASK})
    with pytest.raises(VerifyError, match="damaged manifest"):
        verify(config, TASK, "latest")


def test_size_only_manifest_detects_a_size_change(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = complete(OLD, {"a": b"12345"})
    backend = MemoryBackend({OLD: ("complete", {"a": b"1234"}, entry[2])})
    monkeypatch.setattr("palhm.ops.operations.open_backend", lambda config, task: backend)
    config = Config(source=Path("c.jsonc"), tasks={"db": TASK})
    with pytest.raises(VerifyError, match=r"size differs: a \(manifest 5 bytes, stored 4 bytes\)"):
        verify(config, TASK, "latest")
