"""The storage backend contract. Every backend (null, localfs, aws-s3) implements it.

A backend stores **copies** under its root: ROOT/PREFIX/PATH. The copy protocol
(doc/design.md#copy-protocol) is the backend's job:

- `begin_copy(prefix)` detects a collision with any existing copy *before* writing
  anything (CollisionError) and marks the new copy as in progress from its first
  write (localfs: a hidden staging directory; S3: a manifest in state "building").
- objects are written with `CopyWriter.open_object()`; the data is a stream of
  unknown length (rclone's PutStream).
- `CopyWriter.commit(manifest)` writes the final manifest *last* and makes the copy
  visible atomically (localfs: fsync + rename + fsync dir).
- `CopyWriter.rollback()` removes everything of this copy (S3: multipart uploads
  aborted too). It never touches anything else.

Only names that parse as palhm prefixes are copies (doc/design.md#what-counts-as-a-copy): nothing
else under
the root is ever listed as a copy or removed.

Threads: `open_object` and the sinks it returns are used from worker threads, one
sink per thread; `begin_copy`, `commit`, `rollback`, `list_copies`, `remove_copy` are
called from the main thread only.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, Any, ClassVar, Literal

from palhm.errors import BackendError
from palhm.manifest import parse_manifest
from palhm.records import record

MANIFEST_NAME = ".palhm-manifest.json"
MANIFEST_TMP = MANIFEST_NAME + ".tmp"  # localfs writes the manifest through it
RESERVED_NAMES = frozenset({MANIFEST_NAME, MANIFEST_TMP})
"""The names palhm uses inside a copy, exactly: no object may be stored under them
(config check refuses them), and only they are left out of a copy's objects."""

CopyState = Literal["complete", "legacy", "incomplete", "damaged", "other-task"]
"""complete: final manifest present; legacy: named exactly as the original PALHM named
its copies, no manifest at all (counted as a copy); incomplete: staging/building
(never counted); damaged: its manifest is unreadable (empty, not JSON, not a regular
file ...): reported, never counted, never removed by rotation; other-task: a complete
copy whose manifest names another task sharing the root: invisible to this task's
rotation, `latest` and totals, and never removed by it."""


REMOVABLE_STATES: frozenset[CopyState] = frozenset({"complete", "legacy", "incomplete"})
"""The states of copies a task may remove: never damaged or other-task ones."""


def warn_damaged(copies: list[CopyInfo], log: logging.Logger) -> None:
    """One warning per damaged copy, at every listing."""
    for copy in copies:
        if copy.state == "damaged":
            log.warning("copy %s is damaged: %s", copy.location, copy.problem)


def judge_manifest(data: bytes, name: str, task_id: str) -> tuple[CopyState, str | None, str]:
    """(state, task it names, problem) of a committed copy named `name` whose manifest
    holds `data`, seen by task `task_id`: the one judgement every backend makes.
    Unreadable, not final, or that of another copy: damaged (never counted or
    removed); another task's: other-task."""
    try:
        manifest = parse_manifest(data)
    except ValueError as error:
        return "damaged", None, f"{MANIFEST_NAME}: {error}"
    if manifest.state != "complete":
        return "damaged", manifest.task, f"{MANIFEST_NAME} is in state '{manifest.state}'"
    if manifest.prefix != name:
        return "damaged", manifest.task, f"{MANIFEST_NAME} is that of copy {manifest.prefix}"
    if manifest.task != task_id:
        return "other-task", manifest.task, ""
    return "complete", manifest.task, ""


@record
class CopyInfo:
    """A copy found under the backend root."""

    prefix: str
    state: CopyState
    size: int  # bytes of all objects in the copy, from the listing (manifest excluded)
    nb_objects: int
    location: str  # how messages name it: a directory path or s3://bucket/key/
    task: str | None = None  # the task its manifest names (None: unknown or no manifest)
    problem: str = ""  # why a copy is damaged, for messages
    retain_until: datetime | None = None  # Object Lock: the store refuses deletion before

    def locked(self, now: datetime) -> bool:
        """Whether the store keeps this copy from deletion at `now` (Object Lock)."""
        return self.retain_until is not None and self.retain_until > now

    @property
    def counted(self) -> bool:
        """Whether rotation counts this copy (complete or legacy)."""
        return self.state in ("complete", "legacy")


class ObjectSink(ABC):
    """Where the bytes of one object go. Used by one worker thread.

    The last pipeline stage always writes into a pipe; palhm moves the bytes from it
    into the sink and counts them, so the stages never hold the object itself (a
    stage reopening /dev/stdout reopens the pipe, and a process a stage left behind
    can never write into a committed object). `write()` is the one path every sink
    supports (a sink that wraps others uses only it). Three optional capabilities let
    palhm skip work where a sink allows it:

    - `splice_fd()`: a file descriptor, open for writing at the object's end, that
      palhm may splice(2) the pipe into without a checksum (no byte copied into
      Python); it is never given to a stage;
    - `reads_into`: the sink keeps the bytes in memory of its own (aws-s3 parts):
      palhm reads the pipe straight into `read_buffer()`, hashes the bytes there and
      hands them over with `took()`, instead of reading into a buffer of its own and
      calling write(), which would copy every byte once more;
    - `discards`: the sink keeps nothing (null backend): the last stage writes to
      /dev/null directly, nothing is read or hashed, write() is never called.
    """

    discards: ClassVar[bool] = False
    reads_into: ClassVar[bool] = False

    def splice_fd(self) -> int | None:
        """A file descriptor palhm may splice the data into (each byte exactly once,
        in order, at the current offset), or None: then write() is used."""
        return None

    def spliced(self, count: int) -> None:  # noqa: B027 (optional: most sinks need nothing)
        """palhm spliced `count` more bytes into splice_fd() (nothing to do by default)."""

    def read_buffer(self, size: int) -> memoryview:
        """With `reads_into`: a writable view of 1 to `size` bytes of the sink's own
        memory, where the object's next bytes go. palhm fills its start, releases the
        view, then calls took()."""
        raise NotImplementedError

    def took(self, count: int) -> None:  # noqa: B027 (only with reads_into)
        """The first `count` bytes of the last read_buffer() view are the object's next
        bytes. Raises BackendError as write() does."""

    @abstractmethod
    def write(self, data: memoryview) -> None:
        """Store the next chunk. Raises BackendError (ENOSPC, S3 error ...)."""

    @abstractmethod
    def close(self) -> int:
        """Finish the object (drop unused preallocation, fsync, complete upload).

        Returns the object's size in bytes as stored (palhm checks it against the
        bytes it gave; 0 for a sink that discards). Raises BackendError.
        """

    @abstractmethod
    def abort(self) -> None:
        """Give up on the object (abort the multipart upload, close files). Never raises
        for an object that is already gone; rollback removes what remains."""


class CopyWriter(ABC):
    """One copy being built. Obtained from `Backend.begin_copy`."""

    prefix: str

    @abstractmethod
    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        """Create the object PATH (relative, normalised, may contain '/'). Thread-safe."""

    def discard_object(self, path: str) -> None:  # noqa: B027 - optional
        """Remove what a failed attempt left of object PATH before it starts again
        (a backend that overwrites on open needs nothing)."""

    @abstractmethod
    def commit(self, manifest: bytes) -> None:
        """Write the final manifest last and make the copy visible atomically."""

    @abstractmethod
    def rollback(self) -> None:
        """Remove everything of this copy. Safe to call after a partial begin."""


class Backend(ABC):
    """A storage backend bound to one task's `backend-param`."""

    name: ClassVar[str]
    deletion_delegated: bool = False
    """`delete: delegated` (aws-s3): a refused deletion (DeleteDeniedError) is left to
    another host's `palhm rotate`, not a failure."""

    def __init__(self, params: Mapping[str, Any], *, task_id: str) -> None:
        self.params = params
        self.task_id = task_id

    @abstractmethod
    def describe(self) -> str:
        """Human name of the root for messages: '/media/backup', 's3://bucket/root'."""

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """Exclusive lock on the root for a whole run (doc/design.md#locking). Raises LockedError at
        once, saying who holds it, when another run has it."""

    @abstractmethod
    def list_copies(self) -> list[CopyInfo]:
        """Every prefix-named copy under the root, complete or not, oldest first."""

    @abstractmethod
    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> CopyWriter:
        """Start a copy. Raises CollisionError, writing nothing, if PREFIX exists."""

    @abstractmethod
    def remove_copy(self, copy: CopyInfo) -> None:
        """Delete one copy (old or incomplete) entirely."""

    @abstractmethod
    def read_manifest(self, prefix: str) -> bytes | None:
        """The copy's manifest bytes, or None when it has none (legacy copy)."""

    @abstractmethod
    def open_object_reader(self, prefix: str, path: str) -> AbstractContextManager[IO[bytes]]:
        """Read one object of a copy (verify, get). Raises BackendError if missing."""

    def retain_until(self, prefix: str) -> datetime | None:
        """The date until which the store keeps copy PREFIX from deletion (S3 Object
        Lock), recorded in its manifest; None when the backend locks nothing."""
        return None

    def after_commit(self, prefix: str) -> None:  # noqa: B027 - optional hook
        """Optional post-commit work (aws-s3: move objects to rot-storage-class)."""

    def read_note(self, name: str) -> bytes | None:
        """A small file palhm keeps at the root (`.palhm-pins.json`), or None. Optional."""
        return None

    def write_note(self, name: str, data: bytes) -> None:
        """Replace a small file at the root atomically. Raises BackendError. Optional."""
        raise BackendError(f"the {self.name} backend cannot store {name}")

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(path, size) of each object of a copy, manifest excluded. Optional."""
        raise NotImplementedError

    def iter_entries(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(path, kind) of everything in a copy but its manifest: kind "file",
        "directory", or what else it is ("symbolic link", "FIFO", "device", "mount
        point" ...). By default the objects of `iter_objects`, all files."""
        for path, _ in self.iter_objects(prefix):
            yield path, "file"
