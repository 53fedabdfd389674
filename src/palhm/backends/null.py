"""The `null` backend: runs every pipeline and discards the data (SPEC A5.7, A7).

Used for dry runs and checks (the DNSSEC check is a `dig | grep` object on null).
It stores no copies, so rotation has nothing to do and no lock is needed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import IO, ClassVar

from palhm.backends.base import Backend, CopyInfo, CopyWriter, ObjectSink
from palhm.errors import BackendError


class NullSink(ObjectSink):
    """Discards data. Offers an fd of /dev/null so that, without a checksum, the last
    stage writes there directly and palhm relays nothing; the size is then unknown
    and reported as 0 (nothing was stored)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._size = 0

    def fileno(self) -> int:
        if self._fd is None:
            self._fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return self._fd

    def write(self, data: memoryview) -> None:
        self._size += len(data)

    def close(self) -> int:
        self._release()
        return self._size

    def abort(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
