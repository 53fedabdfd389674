"""The `null` backend: runs every pipeline and discards the data (doc/design.md#backends,
doc/dnssec.md).

Used for dry runs and checks (the DNSSEC check is a `dig | grep` object on null).
It stores no copies, so rotation has nothing to do and no lock is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import IO, ClassVar

from palhm.backends.base import Backend, CopyInfo, CopyWriter, ObjectSink
from palhm.errors import BackendError


class NullSink(ObjectSink):
    """Keeps nothing: the last stage writes to /dev/null itself, so no byte passes
    through palhm and nothing is hashed; the size is unknown and reported as 0."""

    discards: ClassVar[bool] = True

    def __init__(self) -> None:
        self._size = 0

    def write(self, data: memoryview) -> None:
        """Counted, not kept (a sink wrapping this one may still call it)."""
        self._size += len(data)

    def close(self) -> int:
        return self._size

    def abort(self) -> None:
        """Nothing to give up."""


class NullCopyWriter(CopyWriter):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        return NullSink()

    def commit(self, manifest: bytes) -> None:
        """Nothing is kept: the manifest is discarded like the data."""

    def rollback(self) -> None:
        """Nothing was stored."""


class NullBackend(Backend):
    name: ClassVar[str] = "null"

    def describe(self) -> str:
        return "null"

    def lock(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def list_copies(self) -> list[CopyInfo]:
        return []

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> CopyWriter:
        return NullCopyWriter(prefix)

    def remove_copy(self, copy: CopyInfo) -> None:
        raise BackendError(f"the null backend has no copy '{copy.prefix}' to remove")

    def read_manifest(self, prefix: str) -> bytes | None:
        return None

    def open_object_reader(self, prefix: str, path: str) -> AbstractContextManager[IO[bytes]]:
        raise BackendError(f"the null backend stores nothing: no '{prefix}/{path}' to read")

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        return iter(())
