"""The `localfs` backend: copies as directories under a local (or NFS/SMB) root.

Layout under ROOT (doc/design.md#copy-names-prefixes, #backends, #copy-protocol, #locking)::

    ROOT/.palhm.lock                       flock held for a whole run; says who holds it
    ROOT/.palhm-staging-PREFIX/            a copy being built (incomplete, hidden)
    ROOT/PREFIX/                           a committed copy; .palhm-manifest.json inside
    ROOT/.palhm-deleting-PREFIX/           a copy being removed by rotation (incomplete)

Commit: fsync every object (done when its sink closes) and every directory, write
the manifest last (temporary file, fsync, rename), fsync the staging directory,
rename it to ROOT/PREFIX, fsync ROOT. A crash at any point leaves either a complete
copy or a hidden incomplete one that the next run removes. A directory without a
manifest named exactly as the original PALHM named its copies is a `legacy` copy,
counted; one whose manifest is unreadable is `damaged` (reported, never counted or
removed); one whose manifest names another task is `other-task`. Names that are
neither prefixes nor ours (lost+found, a user's files, `2023-01-01T00:00:00Z`
without a manifest) are never touched.

Other users (doc/reliability.md, threat model): ROOT is opened once per run and
everything below it is reached through directory descriptors, never a symbolic
link (backends/_fsutil.py). The staging directory stays open from its creation,
so every object and manifest lands in it whatever happens to its name; the commit
renames it only while the name is still that directory, and the rollback empties
it through its descriptor. Only processes provably palhm's are ever stopped
(strays.py), never "whoever has a file open there".

Modes (doc/design.md#file-modes): every directory and file is created with its
configured mode in the mkdir/open call itself. The umask may only clear bits, so the
result is never more permissive than configured; palhm then sets the exact mode
(fchmod on the new, still empty file; chmod on the new directory) before writing
anything into it. The process umask is never changed: it is shared with every thread
and every stage process started meanwhile.

Data path (doc/design.md#data-path): the last stage writes into a pipe; palhm
splices it into the target file (no checksum) or writes the chunks it hashed, so the
stages never hold the file. `alloc-size` preallocates the target with fallocate(2)
FALLOC_FL_KEEP_SIZE: the file's size is always the bytes written; the unused
reservation is released when the file is closed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar, Final

from palhm import faults
from palhm.backends import _fsutil as fsutil
from palhm.backends.base import (
    MANIFEST_NAME,
    MANIFEST_TMP,
    REMOVABLE_STATES,
    RESERVED_NAMES,
    Backend,
    CopyInfo,
    CopyState,
    CopyWriter,
    ObjectSink,
    judge_manifest,
    warn_damaged,
)
from palhm.errors import BackendError, CollisionError, LockedError
from palhm.prefix import is_original_name, is_prefix, sort_by_prefix

log = logging.getLogger(__name__)

LOCK_NAME: Final = ".palhm.lock"
STAGING: Final = ".palhm-staging-"
DELETING: Final = ".palhm-deleting-"
DEFAULT_DMODE: Final = 0o750
DEFAULT_FMODE: Final = 0o640
_ROLLBACK_FDS: Final = 8  # a removal holds about one descriptor per directory level


class LocalfsBackend(Backend):
    name: ClassVar[str] = "localfs"

    def __init__(self, params: Mapping[str, Any], *, task_id: str) -> None:
        super().__init__(params, task_id=task_id)
        if not params.get("root"):
            raise BackendError(f"task '{task_id}': the localfs backend needs a 'root'")
        self.root = Path(params["root"])
        self.dmode: int = params.get("dmode", DEFAULT_DMODE)
        self.fmode: int = params.get("fmode", DEFAULT_FMODE)
        self._held_root: int | None = None  # ROOT, opened once for a locked run

    def describe(self) -> str:
        return str(self.root)

    @contextlib.contextmanager
    def _root(self) -> Iterator[int]:
        """ROOT as a directory descriptor: the one opened by lock() while the lock is
        held (a run works on one directory, whatever happens to the path), else a
        fresh one. FileNotFoundError when ROOT does not exist."""
        if self._held_root is not None:
            yield self._held_root
            return
        try:
            fd = fsutil.open_root(self.root)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise BackendError(
                f"cannot open the backup root {self.root}: {_reason(error)}"
            ) from None
        try:
            yield fd
        finally:
            os.close(fd)

    # -- lock ----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """flock ROOT/.palhm.lock; LockedError naming the holder if another run has it."""
        self.ensure_root()
        with self._root() as root_fd:
            _warn_if_shared(self.root, root_fd)
            path = self.root / LOCK_NAME
            try:
                fd = fsutil.create_file(LOCK_NAME, self.fmode, dir_fd=root_fd, exclusive=False)
            except OSError as error:
                raise BackendError(f"cannot open the lock file {path}: {_reason(error)}") from None
            try:
                self._take(fd, path)
                self._held_root = root_fd
                yield
            finally:
                self._held_root = None
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
            "host": os.uname().nodename,
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
            created = fsutil.make_root_dirs(self.root.resolve(), self.dmode)
        except OSError as error:
            raise BackendError(f"cannot create the backup root {self.root}: {error}") from None
        if created:
            # A missing root may be a disk that is not mounted: make it visible.
            log.warning("created the backup root %s (was it meant to be a mount?)", self.root)

    # -- listing -------------------------------------------------------------------

    def list_copies(self) -> list[CopyInfo]:
        """Prefix-named, staging and deleting directories under ROOT, oldest first."""
        try:
            with self._root() as root_fd:
                with os.scandir(root_fd) as entries:
                    names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
                found = [self._copy_info(root_fd, name) for name in names]
        except FileNotFoundError:
            return []
        except OSError as error:
            raise BackendError(f"cannot list {self.root}: {_reason(error)}") from None
        copies = [c for c in found if c is not None]
        warn_damaged(copies, log)
        return sort_by_prefix(copies, lambda c: c.prefix)

    def _copy_info(self, root_fd: int, name: str) -> CopyInfo | None:
        prefix, state = _classify(name)
        if prefix is None:
            return None
        try:
            directory = fsutil.open_dir(name, root_fd)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None  # replaced meanwhile, or a link: not a copy
            raise
        try:
            task, problem = None, ""
            if state is None:
                state, task, problem = self._committed_state(directory, name)
                if state is None:
                    return None
            size, count = fsutil.tree_size(directory, skip=RESERVED_NAMES)
        finally:
            os.close(directory)
        return CopyInfo(prefix, state, size, count, str(self.root / name), task, problem)

    def _committed_state(
        self, directory: int, name: str
    ) -> tuple[CopyState | None, str | None, str]:
        """(state, task of its manifest, problem) of a prefix-named directory; state
        None when it is not a copy at all (no manifest and not a name the original
        PALHM wrote)."""
        try:
            data = fsutil.read_bounded(MANIFEST_NAME, dir_fd=directory)
        except FileNotFoundError:
            if fsutil.exists(MANIFEST_TMP, directory):
                return "damaged", None, f"no {MANIFEST_NAME}, only a temporary {MANIFEST_TMP}"
            # Only our commit renames a directory to a prefix, after its final
            # manifest: without one, it is the original PALHM's copy or not a copy.
            return ("legacy", None, "") if is_original_name(name) else (None, None, "")
        except (OSError, ValueError) as error:
            return "damaged", None, f"cannot read {MANIFEST_NAME}: {_reason(error)}"
        return judge_manifest(data, name, self.task_id)

    # -- copies --------------------------------------------------------------------

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> CopyWriter:
        """Create ROOT/.palhm-staging-PREFIX; CollisionError if the prefix is taken.
        From the staging directory's creation on, a failure removes it again."""
        _check_prefix(prefix)
        self.ensure_root()
        staging_name = STAGING + prefix
        staging = self.root / staging_name
        with self._root() as root_fd:
            if fsutil.exists(prefix, root_fd):
                raise CollisionError(
                    f"a copy named {prefix} already exists in {self.root}; it is never "
                    "overwritten and nothing was written (two runs in the same second?)"
                )
            try:
                staging_fd = fsutil.make_dir(staging_name, self.dmode, dir_fd=root_fd)
            except FileExistsError:
                raise CollisionError(f"{staging} already exists; nothing was written") from None
            except OSError as error:
                raise BackendError(f"cannot create {staging}: {error.strerror}") from None
            try:
                writer = LocalfsCopyWriter(self, prefix, os.dup(root_fd), staging_fd)
            except OSError as error:
                os.close(staging_fd)
                with contextlib.suppress(OSError):
                    os.rmdir(staging_name, dir_fd=root_fd)
                raise BackendError(f"cannot begin copy {staging}: {_reason(error)}") from None
        try:
            faults.crashpoint("staging-created")  # test facility (tests/reliability)
            writer.write_manifest(building_manifest)
        except BaseException:
            with contextlib.suppress(BackendError):
                writer.rollback()
            raise
        return writer

    def remove_copy(self, copy: CopyInfo) -> None:
        """Delete one copy found by `list_copies` (its `location` names the directory)."""
        name = Path(copy.location).name
        if (
            Path(copy.location).parent != self.root
            or _classify(name)[0] != copy.prefix
            or copy.state not in REMOVABLE_STATES
        ):
            raise BackendError(f"refusing to remove {copy.location}: not a copy of this task")
        try:
            with self._root() as root_fd:
                if copy.state != "incomplete":
                    name = self._set_aside(root_fd, name, copy.prefix)
                fsutil.remove_tree(name, dir_fd=root_fd)
        except OSError as error:
            raise BackendError(f"cannot remove copy {copy.location}: {_reason(error)}") from None

    def _set_aside(self, root_fd: int, name: str, prefix: str) -> str:
        """Rename a committed copy to a hidden name first: if the removal stops half
        way, what is left is an incomplete copy, never a 'legacy' copy missing files.
        A copy with a file system mounted inside is refused before anything changes."""
        directory = fsutil.open_dir(name, root_fd)
        try:
            mounted = fsutil.mount_points(directory)
        finally:
            os.close(directory)
        if mounted:
            raise OSError(
                errno.EBUSY,
                f"a file system is mounted inside it, at {mounted[0]}; unmount it first",
                name,
            )
        doomed = DELETING + prefix
        if fsutil.exists(doomed, root_fd):
            fsutil.remove_tree(doomed, dir_fd=root_fd)
        fsutil.rename_noreplace(name, doomed, dir_fd=root_fd)
        faults.crashpoint("set-aside")  # test facility (tests/reliability)
        os.fsync(root_fd)
        return doomed

    # -- notes (pins) ----------------------------------------------------------------

    def read_note(self, name: str) -> bytes | None:
        try:
            with self._root() as root_fd:
                return fsutil.read_bounded(name, dir_fd=root_fd)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise BackendError(f"cannot read {self.root / name}: {error}") from None

    def write_note(self, name: str, data: bytes) -> None:
        try:
            with self._root() as root_fd:
                fsutil.write_durably(name, data, self.fmode, dir_fd=root_fd)
        except OSError as error:
            raise BackendError(f"cannot write {self.root / name}: {_reason(error)}") from None

    # -- reading -------------------------------------------------------------------

    def read_manifest(self, prefix: str) -> bytes | None:
        _check_prefix(prefix)
        where = self.root / prefix / MANIFEST_NAME
        try:
            with self._root() as root_fd:
                directory = fsutil.open_dir(prefix, root_fd)
                try:
                    return fsutil.read_bounded(MANIFEST_NAME, dir_fd=directory)
                finally:
                    os.close(directory)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise BackendError(f"cannot read {where}: {_reason(error)}") from None

    @contextlib.contextmanager
    def open_object_reader(self, prefix: str, path: str) -> Iterator[IO[bytes]]:
        """The regular file PATH of a copy, opened without following any link and
        without blocking (a FIFO or device there is refused, never read)."""
        _check_prefix(prefix)
        relative = _relative(path)
        target = self.root / prefix / relative
        try:
            with self._root() as root_fd:
                fd = fsutil.open_regular_path(PurePosixPath(prefix) / relative, root_fd)
        except (OSError, ValueError) as error:
            raise BackendError(f"cannot read object {target}: {_reason(error)}") from None
        with open(fd, "rb") as stream:
            yield stream

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        for entry in self._entries(prefix):
            if entry.kind == "file":
                yield entry.path, entry.size

    def iter_entries(self, prefix: str) -> Iterator[tuple[str, str]]:
        """Every name in a copy but the manifest: files, directories, links, FIFOs,
        mount points (reported, not entered)."""
        for entry in self._entries(prefix):
            yield entry.path, entry.kind

    def _entries(self, prefix: str) -> list[fsutil.Entry]:
        _check_prefix(prefix)
        try:
            with self._root() as root_fd:
                directory = fsutil.open_dir(prefix, root_fd)
                try:
                    entries = [e for e in fsutil.walk(directory) if e.path != MANIFEST_NAME]
                finally:
                    os.close(directory)
        except OSError as error:
            where = f"copy {prefix} in {self.root}"
            raise BackendError(f"cannot list {where}: {_reason(error)}") from None
        return entries


class LocalfsCopyWriter(CopyWriter):
    """One copy being built in its staging directory, held open: every object,
    directory and manifest is created relative to that descriptor, so renaming or
    replacing ROOT/.palhm-staging-PREFIX during the run never redirects a write."""

    def __init__(self, backend: LocalfsBackend, prefix: str, root_fd: int, staging_fd: int) -> None:
        self.prefix = prefix
        self._backend = backend
        self._root_fd = root_fd
        self._staging_fd = staging_fd
        self._staging_name = STAGING + prefix
        self._staging = backend.root / self._staging_name
        self._final = backend.root / prefix
        self._dirs: set[PurePosixPath] = set()  # made below staging: fsync before rename
        self._dirs_lock = threading.Lock()
        self._renamed = False
        self._closed = False
        # Descriptors kept for the rollback: it must work when the run failed because
        # every descriptor was taken (low `ulimit -n`, many workers).
        self._reserve = [fsutil.open_root(Path("/")) for _ in range(_ROLLBACK_FDS)]

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        """Create STAGING/PATH with fmode (parents with dmode). Thread-safe."""
        relative = _relative(path)
        if relative.as_posix() in RESERVED_NAMES:
            raise BackendError(f"object path '{path}' is reserved for the copy manifest")
        target = self._staging / relative
        try:
            parent, made = fsutil.make_dirs(
                relative.parent, self._backend.dmode, dir_fd=self._staging_fd
            )
            try:
                if made:
                    with self._dirs_lock:
                        self._dirs.update([relative.parent, *relative.parent.parents][:-1])
                fd = fsutil.create_file(
                    relative.name, self._backend.fmode, dir_fd=parent, exclusive=True
                )
            finally:
                os.close(parent)
        except OSError as error:
            raise BackendError(f"cannot create {target}: {_reason(error)}") from None
        preallocated = bool(alloc_size) and fsutil.preallocate(
            fd, alloc_size or 0, target, keep_size=True
        )
        return LocalfsSink(fd, target, preallocated=preallocated)

    def discard_object(self, path: str) -> None:
        """Remove what a failed attempt left of STAGING/PATH, so it can start again."""
        relative = _relative(path)
        try:
            os.unlink(str(relative), dir_fd=self._staging_fd)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise BackendError(
                f"cannot remove {self._staging / relative}: {_reason(error)}"
            ) from None

    def write_manifest(self, manifest: bytes) -> None:
        """Atomically (re)place STAGING/.palhm-manifest.json and make it durable."""
        target = self._staging / MANIFEST_NAME
        try:
            fsutil.write_durably(
                MANIFEST_NAME, manifest, self._backend.fmode, dir_fd=self._staging_fd
            )
        except OSError as error:
            raise BackendError(f"cannot write the manifest {target}: {_reason(error)}") from None
        faults.crashpoint("manifest-written")  # test facility (tests/reliability)

    def commit(self, manifest: bytes) -> None:
        try:
            for relative in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
                directory = fsutil.open_dir_path(relative, self._staging_fd)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            os.fsync(self._staging_fd)
        except OSError as error:
            raise BackendError(f"cannot sync {self._staging}: {_reason(error)}") from None
        self.write_manifest(manifest)
        if not fsutil.same_file(self._staging_name, self._root_fd, self._staging_fd):
            raise BackendError(
                f"{self._staging} was moved or replaced during the run (another user"
                " writing in the root?); the copy is not committed"
            )
        faults.crashpoint("before-rename")  # test facility (tests/reliability)
        try:
            fsutil.rename_noreplace(self._staging_name, self.prefix, dir_fd=self._root_fd)
        except FileExistsError:
            raise CollisionError(
                f"{self._final} appeared during the run; it was not replaced"
            ) from None
        except OSError as error:
            raise BackendError(f"cannot commit copy {self._final}: {_reason(error)}") from None
        self._renamed = True
        try:
            faults.crashpoint("after-rename")  # test facility (tests/reliability)
            os.fsync(self._root_fd)
        except OSError as error:
            raise BackendError(f"cannot commit copy {self._final}: {_reason(error)}") from None
        self._close()

    def rollback(self) -> None:
        """Remove the staging directory (or the renamed copy if commit failed after the
        rename): its content through the descriptor held since its creation, then its
        name only if that is still this directory. Raises BackendError if the removal
        fails; the next run retries it."""
        if self._closed:
            return
        self._release_reserve()
        name = self.prefix if self._renamed else self._staging_name
        directory = self._final if self._renamed else self._staging
        try:
            ours = fsutil.same_file(name, self._root_fd, self._staging_fd)
            if ours:
                fsutil.remove_tree(name, dir_fd=self._root_fd, opened=self._staging_fd)
            else:
                fsutil.remove_tree_content(self._staging_fd)
                log.warning(
                    "%s was moved or replaced during the run: its content was removed,"
                    " the name is left alone",
                    directory,
                )
        except OSError as error:
            raise BackendError(
                f"cannot remove the failed copy {directory}: {_reason(error)}"
            ) from None
        finally:
            self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release_reserve()
            os.close(self._staging_fd)
            os.close(self._root_fd)

    def _release_reserve(self) -> None:
        while self._reserve:
            os.close(self._reserve.pop())


# The most one write() puts into the page cache. Measured on this project's Linux 6.x
# VM (ext4): one 1 MiB write costs 2.5-3 times the kernel CPU of four 256 KiB ones
# (bench/README.md, "Write size"). The default `block-size` (128 KiB) is below it; a
# larger one set in the config is written in slices.
WRITE_SLICE: Final = 256 << 10
# Every WRITEBACK_STEP bytes stored, the sink starts their write-out to the disk
# (fsutil.start_writeback) instead of leaving it all to the fsync at the end: the
# disk then works while the stages run. 4 x 512 MiB in parallel: x0.80-0.86 of the
# wall time without it, with 2, 8 or 32 MiB steps (bench/README.md, "Early write-out").
WRITEBACK_STEP: Final = 8 << 20


class LocalfsSink(ObjectSink):
    """The target file of one object. palhm splices the last stage's pipe into it
    (no checksum) or writes the chunks it hashed; no stage ever holds it."""

    def __init__(self, fd: int, path: Path, *, preallocated: bool) -> None:
        self._fd: int | None = fd
        self._path = path
        self._preallocated = preallocated
        self._stored = 0  # bytes in the file (palhm writes it from offset 0, in order)
        self._started = 0  # bytes whose write-out to the disk was started
        self._writeback = True  # False once the kernel refused the hint

    def splice_fd(self) -> int:
        return self._open_fd()

    def spliced(self, count: int) -> None:
        self._advance(self._open_fd(), count)

    def _advance(self, fd: int, count: int) -> None:
        """`count` more bytes are in the file: start the write-out of each full step."""
        self._stored += count
        pending = self._stored - self._started
        if pending >= WRITEBACK_STEP and self._writeback:
            self._writeback = fsutil.start_writeback(fd, self._started, pending)
            self._started = self._stored

    def _open_fd(self) -> int:
        if self._fd is None:
            raise BackendError(f"{self._path} is already closed")
        return self._fd

    def write(self, data: memoryview) -> None:
        """Write `data` (a block of `block-size`) in slices of WRITE_SLICE bytes."""
        fd = self._open_fd()
        count = len(data)
        try:
            while data:
                written = os.write(fd, data[:WRITE_SLICE])
                data = data[written:]
        except OSError as error:
            raise BackendError(f"cannot write {self._path}: {error.strerror}") from None
        self._advance(fd, count)

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


def _reason(error: BaseException) -> str:
    """An OSError's reason in words an administrator acts on."""
    if isinstance(error, OSError):
        if error.errno == errno.ELOOP:
            return "it is a symbolic link (never followed below the backup root)"
        return error.strerror or str(error)
    return str(error)


def _warn_if_shared(root: Path, root_fd: int) -> None:
    """Say so when users other than palhm's own can write in ROOT (doc/reliability.md,
    threat model): palhm never follows their links, but they can delete copies."""
    info = os.fstat(root_fd)
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning(
            "the backup root %s can be written by other users (owner uid %d, mode %04o):"
            " they can delete or damage its copies",
            root, info.st_uid, stat.S_IMODE(info.st_mode),
        )  # fmt: skip


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
