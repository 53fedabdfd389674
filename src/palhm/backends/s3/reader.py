"""Reading an S3 object as a stream (verify, get): botocore's body as a binary file."""

from __future__ import annotations

import io
from typing import IO, Any, cast

from palhm.aws import translate_errors
from palhm.errors import BackendError


class S3BodyReader(io.RawIOBase):
    """A GetObject body as a read-only raw stream. `read(n)` hands botocore's bytes
    over without another copy; a network failure mid-stream raises BackendError
    naming the object."""

    def __init__(self, body: Any, location: str) -> None:
        super().__init__()
        self._body = body
        self._location = location

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with translate_errors(BackendError, f"{self._location}: reading failed"):
            data: bytes = self._body.read(None if size is None or size < 0 else size)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()

    def as_io(self) -> IO[bytes]:
        """This stream typed as a binary file for callers of the Backend contract."""
        return cast(IO[bytes], self)
