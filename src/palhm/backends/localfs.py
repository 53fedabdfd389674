"""The `localfs` backend: copies as directories under a local (or NFS/SMB) root.

Layout under ROOT (SPEC A5.4, A5.7, B5-B9, B13, C2)::

    ROOT/.palhm.lock                       flock held for a whole run; says who holds it
    ROOT/.palhm-staging-PREFIX/            a copy being built (incomplete, hidden)
    ROOT/PREFIX/                           a committed copy; .palhm-manifest.json inside
    ROOT/.palhm-deleting-PREFIX/           a copy being removed by rotation (incomplete)

Commit: fsync every object (done when its sink closes) and every directory, write
the manifest last (temporary file, fsync, rename), fsync the staging directory,
rename it to ROOT/PREFIX, fsync ROOT. A crash at any point leaves either a complete
copy or a hidden incomplete one that the next run removes. A prefix-named directory
without a manifest was made by the original PALHM: a `legacy` copy, counted. Names
that are neither prefixes nor ours (lost+found, a user's files) are never touched.

Modes (B5): every directory and file is created with its configured mode in the
mkdir/open call itself. The umask may only clear bits, so the result is never more
permissive than configured; palhm then sets the exact mode (fchmod on the new,
still empty file; chmod on the new directory) before writing anything into it. The
process umask is never changed: it is shared with every thread and every stage
process started meanwhile.

Data path (B9): the last stage writes into a pipe; palhm splices it into the target
file (no checksum) or writes the chunks it hashed, so the stages never hold the
file. `alloc-size` preallocates the target with fallocate(2) FALLOC_FL_KEEP_SIZE:
the file's size is always the bytes written; the unused reservation is released
when the file is closed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar, Final

from palhm import faults
from palhm.backends import _fsutil as fsutil
from palhm.backends.base import MANIFEST_NAME, Backend, CopyInfo, CopyState, CopyWriter, ObjectSink
from palhm.errors import BackendError, CollisionError, LockedError
from palhm.manifest import manifest_state
from palhm.prefix import is_prefix, sort_by_prefix

log = logging.getLogger(__name__)

LOCK_NAME: Final = ".palhm.lock"
STAGING: Final = ".palhm-staging-"
DELETING: Final = ".palhm-deleting-"
DEFAULT_DMODE: Final = 0o750
DEFAULT_FMODE: Final = 0o640


class LocalfsBackend(Backend):
    name: ClassVar[str] = "localfs"

    def __init__(self, params: Mapping[str, Any], *, task_id: str) -> None:
        super().__init__(params, task_id=task_id)
        if not params.get("root"):
            raise BackendError(f"task '{task_id}': the localfs backend needs a 'root'")
        self.root = Path(params["root"])
        self.dmode: int = params.get("dmode", DEFAULT_DMODE)
        self.fmode: int = params.get("fmode", DEFAULT_FMODE)

    def describe(self) -> str:
        return str(self.root)

    # -- lock ----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """flock ROOT/.palhm.lock; LockedError naming the holder if another run has it."""
        self.ensure_root()
        path = self.root / LOCK_NAME
        try:
            fd = fsutil.create_file(path, self.fmode, exclusive=False)
        except OSError as error:
            raise BackendError(f"cannot open the lock file {path}: {error.strerror}") from None
        try:
            self._take(fd, path)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _take(self, fd: int, path: Path) -> None:
        """flock the open lock file and write who holds it."""
        try:
            fsutil.try_flock(fd)
        except BlockingIOError:
            holder = _wait_for_holder_note(fd)
            raise LockedError(f"{self.root} is in use by another palhm run ({holder})") from None
        except OSError as error:  # ENOLCK: a share without locks
            raise BackendError(f"cannot lock {path}: {error.strerror}") from None
        try:
            fsutil.replace_content(fd, self._holder_info())
        except OSError as error:  # the lock holds; only the note for others is missing
            log.warning("cannot write %s: %s", path, error.strerror)

    def _holder_info(self) -> bytes:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "task": self.task_id,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return json.dumps(info).encode() + b"\n"

    def ensure_root(self) -> None:
        """Create ROOT (and missing parents, `mkdir -p`) with dmode if it is missing.
        BackendError instead when `create-root` is false, or when `require-mount` is
        true and ROOT is not a mount point (an unmounted disk must not fill `/`)."""
        if self.params.get("require_mount") and not os.path.ismount(self.root):
            state = "is not a mount point" if self.root.exists() else "does not exist"
            raise BackendError(
                f"the backup root {self.root} {state} (require-mount: is the backup disk mounted?)"
            )
        if self.root.is_dir():
            return
        if self.params.get("create_root") is False:
            raise BackendError(
                f"the backup root {self.root} does not exist (create-root is false:"
                " is the backup disk mounted?)"
            )
        try:
            created = fsutil.make_dirs(Path("/"), self.root.resolve(), self.dmode)
        except OSError as error:
            raise BackendError(f"cannot create the backup root {self.root}: {error}") from None
        if created:
            # A missing root may be a disk that is not mounted: make it visible.
            log.warning("created the backup root %s (was it meant to be a mount?)", self.root)

    # -- listing -------------------------------------------------------------------

    def list_copies(self) -> list[CopyInfo]:
        """Prefix-named, staging and deleting directories under ROOT, oldest first."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise BackendError(f"cannot list {self.root}: {error.strerror}") from None
        copies = [self._copy_info(e) for e in entries if e.is_dir(follow_symlinks=False)]
        found = [c for c in copies if c is not None]
        return sort_by_prefix(found, lambda c: c.prefix)

    def _copy_info(self, entry: os.DirEntry[str]) -> CopyInfo | None:
        prefix, state = _classify(entry.name)
        if prefix is None:
            return None
        if state is None:
            state = self._committed_state(Path(entry.path))
        size, count = fsutil.tree_size(Path(entry.path), skip=MANIFEST_NAME)
        return CopyInfo(prefix, state, size, count, entry.path)

    def _committed_state(self, directory: Path) -> CopyState:
        try:
            data = (directory / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            return "legacy"
        except OSError as error:
            raise BackendError(f"cannot read {directory / MANIFEST_NAME}: {error}") from None
        # Only our commit renames a directory to a prefix, after its final manifest:
        # anything else there (unreadable, "building") was not made by this protocol,
        # so it is treated like the original PALHM's copies, never deleted as junk.
        return "complete" if manifest_state(data) == "complete" else "legacy"

    # -- copies --------------------------------------------------------------------

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> CopyWriter:
        """Create ROOT/.palhm-staging-PREFIX; CollisionError if the prefix is taken."""
        _check_prefix(prefix)
        self.ensure_root()
        final, staging = self.root / prefix, self.root / (STAGING + prefix)
        if os.path.lexists(final):
            raise CollisionError(
                f"a copy named {prefix} already exists in {self.root}; it is never "
                "overwritten and nothing was written (two runs in the same second?)"
            )
        try:
            fsutil.make_dir(staging, self.dmode)
            faults.crashpoint("staging-created")  # test facility (tests/reliability)
        except FileExistsError:
            raise CollisionError(f"{staging} already exists; nothing was written") from None
        except OSError as error:
            raise BackendError(f"cannot create {staging}: {error.strerror}") from None
        writer = LocalfsCopyWriter(self, prefix, staging, final)
        writer.write_manifest(building_manifest)
        return writer

    def remove_copy(self, copy: CopyInfo) -> None:
        """Delete one copy found by `list_copies` (its `location` names the directory)."""
        directory = Path(copy.location)
        if directory.parent != self.root or _classify(directory.name)[0] != copy.prefix:
            raise BackendError(f"refusing to remove {directory}: not a copy under {self.root}")
        try:
            if copy.state == "incomplete":
                fsutil.stop_writers(directory)
            else:
                directory = self._set_aside(directory, copy.prefix)
            fsutil.remove_tree(directory)
        except OSError as error:
            raise BackendError(f"cannot remove copy {directory}: {error}") from None

    def _set_aside(self, directory: Path, prefix: str) -> Path:
        """Rename a committed copy to a hidden name first: if the removal stops half
        way, what is left is an incomplete copy, never a 'legacy' copy missing files."""
        doomed = self.root / (DELETING + prefix)
        if doomed.exists():
            fsutil.remove_tree(doomed)
        os.rename(directory, doomed)
        faults.crashpoint("set-aside")  # test facility (tests/reliability)
        fsutil.fsync_dir(self.root)
        return doomed

    # -- notes (pins) ----------------------------------------------------------------

    def read_note(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise BackendError(f"cannot read {self.root / name}: {error.strerror}") from None

    def write_note(self, name: str, data: bytes) -> None:
        try:
            fsutil.write_durably(self.root / name, data, self.fmode)
        except OSError as error:
            raise BackendError(f"cannot write {self.root / name}: {error.strerror}") from None

    # -- reading -------------------------------------------------------------------

    def read_manifest(self, prefix: str) -> bytes | None:
        directory = self._copy_dir(prefix)
        try:
            return (directory / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise BackendError(f"cannot read {directory / MANIFEST_NAME}: {error}") from None

    @contextlib.contextmanager
    def open_object_reader(self, prefix: str, path: str) -> Iterator[IO[bytes]]:
        target = self._copy_dir(prefix) / _relative(path)
        try:
            stream = open(target, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as error:
            raise BackendError(f"cannot read object {target}: {error.strerror}") from None
        with stream:
            yield stream

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        directory = self._copy_dir(prefix)
        for path in fsutil.walk_files(directory):
            relative = path.relative_to(directory).as_posix()
            if relative != MANIFEST_NAME:
                yield relative, path.stat().st_size

    def _copy_dir(self, prefix: str) -> Path:
        _check_prefix(prefix)
        directory = self.root / prefix
        if not directory.is_dir():
            raise BackendError(f"no copy {prefix} in {self.root}")
        return directory


class LocalfsCopyWriter(CopyWriter):
    """One copy being built in its staging directory."""

    def __init__(self, backend: LocalfsBackend, prefix: str, staging: Path, final: Path) -> None:
        self.prefix = prefix
        self._backend = backend
        self._staging = staging
        self._final = final
        self._dirs: set[Path] = {staging}  # directories to fsync before the rename
        self._dirs_lock = threading.Lock()
        self._renamed = False

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        """Create STAGING/PATH with fmode (parents with dmode). Thread-safe."""
        relative = _relative(path)
        if relative.as_posix() == MANIFEST_NAME:
            raise BackendError(f"object path '{path}' is reserved for the copy manifest")
        target = self._staging / relative
        try:
            created = fsutil.make_dirs(self._staging, target.parent, self._backend.dmode)
            with self._dirs_lock:
                self._dirs.update(created)
            fd = fsutil.create_file(target, self._backend.fmode, exclusive=True)
        except OSError as error:
            raise BackendError(f"cannot create {target}: {error.strerror}") from None
        preallocated = bool(alloc_size) and fsutil.preallocate(
            fd, alloc_size or 0, target, keep_size=True
        )
        return LocalfsSink(fd, target, preallocated=preallocated)

    def discard_object(self, path: str) -> None:
        """Remove what a failed attempt left of STAGING/PATH, so it can start again."""
        target = self._staging / _relative(path)
        try:
            target.unlink(missing_ok=True)
        except OSError as error:
            raise BackendError(f"cannot remove {target}: {error.strerror}") from None

    def write_manifest(self, manifest: bytes) -> None:
        """Atomically (re)place STAGING/.palhm-manifest.json and make it durable."""
        target = self._staging / MANIFEST_NAME
        try:
            fsutil.write_durably(target, manifest, self._backend.fmode)
        except OSError as error:
            raise BackendError(f"cannot write the manifest {target}: {error.strerror}") from None
        faults.crashpoint("manifest-written")  # test facility (tests/reliability)

    def commit(self, manifest: bytes) -> None:
        try:
            for directory in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
                fsutil.fsync_dir(directory)
        except OSError as error:
            raise BackendError(f"cannot sync {self._staging}: {error.strerror}") from None
        self.write_manifest(manifest)
        if os.path.lexists(self._final):
            raise CollisionError(f"{self._final} appeared during the run; it was not replaced")
        faults.crashpoint("before-rename")  # test facility (tests/reliability)
        try:
            os.rename(self._staging, self._final)
            self._renamed = True
            faults.crashpoint("after-rename")  # test facility (tests/reliability)
            fsutil.fsync_dir(self._final.parent)
        except OSError as error:
            raise BackendError(f"cannot commit copy {self._final}: {error.strerror}") from None

    def rollback(self) -> None:
        """Remove the staging directory (or the renamed copy if commit failed after the
        rename). Raises BackendError if the removal fails; the next run retries it."""
        directory = self._final if self._renamed else self._staging
        try:
            if self._renamed or os.path.lexists(directory):
                fsutil.stop_writers(directory)
                fsutil.remove_tree(directory)
        except OSError as error:
            raise BackendError(f"cannot remove the failed copy {directory}: {error}") from None


class LocalfsSink(ObjectSink):
    """The target file of one object. palhm splices the last stage's pipe into it
    (no checksum) or writes the chunks it hashed; no stage ever holds it."""

    def __init__(self, fd: int, path: Path, *, preallocated: bool) -> None:
        self._fd: int | None = fd
        self._path = path
        self._preallocated = preallocated

    def splice_fd(self) -> int:
        return self._open_fd()

    def _open_fd(self) -> int:
        if self._fd is None:
            raise BackendError(f"{self._path} is already closed")
        return self._fd

    def write(self, data: memoryview) -> None:
        fd = self._open_fd()
        try:
            while data:
                written = os.write(fd, data)
                data = data[written:]
        except OSError as error:
            raise BackendError(f"cannot write {self._path}: {error.strerror}") from None

    def close(self) -> int:
        """Drop the unused preallocation, fsync, close; the file's size.

        The preallocation keeps the file's size (FALLOC_FL_KEEP_SIZE), so the size is
        always the bytes written, whether alloc-size was smaller or larger."""
        fd = self._open_fd()
        self._fd = None
        try:
            size = os.fstat(fd).st_size
            if self._preallocated:
                os.ftruncate(fd, size)  # frees the blocks reserved past the end
            os.fsync(fd)
        except OSError as error:
            raise BackendError(f"cannot finish {self._path}: {error.strerror}") from None
        finally:
            os.close(fd)
        return size

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _classify(name: str) -> tuple[str | None, CopyState | None]:
    """(prefix, state) of a directory name: state None means 'committed, look inside';
    prefix None means the name is not a copy at all."""
    for marker in (STAGING, DELETING):
        if name.startswith(marker):
            rest = name[len(marker) :]
            return (rest, "incomplete") if is_prefix(rest) else (None, None)
    return (name, None) if is_prefix(name) else (None, None)


def _relative(path: str) -> PurePosixPath:
    try:
        return fsutil.checked_relative(path)
    except ValueError as error:
        raise BackendError(str(error)) from None


def _check_prefix(prefix: str) -> None:
    if not is_prefix(prefix):
        raise BackendError(f"'{prefix}' is not a copy prefix")


def _wait_for_holder_note(fd: int) -> str:
    """Who holds the lock. The holder writes its note just after taking the flock, so
    a run refused in between may briefly read an empty file: retry for up to 0.5 s."""
    for _ in range(10):
        holder = _describe_holder(fsutil.read_all(fd))
        if holder != UNKNOWN_HOLDER:
            return holder
        time.sleep(0.05)
    return UNKNOWN_HOLDER


UNKNOWN_HOLDER: Final = "holder unknown"


def _describe_holder(raw: bytes) -> str:
    try:
        info = json.loads(raw)
        return f"pid {info['pid']} on {info['host']}, task '{info['task']}', since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return UNKNOWN_HOLDER
