"""File-system primitives of the localfs backend: creation with exact modes, durable
writes, preallocation, tree walks and removals.

Everything below the backup root works on directory file descriptors: a directory
is opened once (O_DIRECTORY | O_NOFOLLOW) and every name inside it is created,
opened, renamed or removed relative to that descriptor (openat, mkdirat, renameat,
unlinkat). Another user who can write in the root (a NAS share, a delegated
directory) may rename or replace any name at any moment, but cannot make root
write, read, rename or delete through a symbolic link: a name that is not what it
should be fails the call (ELOOP, ENOTDIR) instead of being followed. Files are
opened O_NONBLOCK and checked with fstat before any read (a FIFO never hangs a
read, a device is never read), and reads are bounded. Walks and removals never
cross into another file system mounted inside a copy.

Raise OSError; localfs turns them into BackendError messages naming the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from palhm.records import record

log = logging.getLogger(__name__)

_CREATE_FLAGS: Final = os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# The largest manifest or lock note palhm reads: a manifest lists about 2,000 objects
# per MiB, so this leaves room for any real copy and stops a file that grew without
# bound (or a hostile one) from filling memory.
MAX_MANIFEST_SIZE: Final = 64 << 20


class NotRegularFileError(OSError):
    """A name palhm reads or writes is not a regular file (FIFO, device, directory)."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file (a {kind})", name)


def kind_of(mode: int) -> str:
    """A file type in words, for messages and verify reports."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def open_root(path: Path) -> int:
    """The directory ROOT itself. The configured path is the administrator's, so a
    symbolic link in it is followed; nothing below it ever is."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_dir(name: str, dir_fd: int) -> int:
    """The directory NAME inside DIR_FD; never through a symbolic link."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def open_dir_path(relative: PurePosixPath, dir_fd: int) -> int:
    """The directory at RELATIVE below DIR_FD, one component at a time, none followed."""
    fd = os.dup(dir_fd)
    try:
        for part in relative.parts:
            inner = open_dir(part, fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_file(name: str, mode: int, *, dir_fd: int, exclusive: bool) -> int:
    """Open NAME in DIR_FD for writing, creating it with exactly `mode` (see localfs:
    the mode is given to open() and completed by fchmod before any byte is written).

    exclusive: fail with FileExistsError if NAME exists; else an existing regular
    file is opened read-write as is (its mode untouched). Never through a link; an
    existing name that is not a regular file is refused (NotRegularFileError).
    """
    if exclusive:
        fd = os.open(name, os.O_WRONLY | os.O_EXCL | _CREATE_FLAGS, mode, dir_fd=dir_fd)
    else:
        try:
            fd = os.open(name, os.O_RDWR | os.O_EXCL | _CREATE_FLAGS, mode, dir_fd=dir_fd)
        except FileExistsError:
            return open_regular(name, dir_fd=dir_fd, flags=os.O_RDWR)
    try:
        os.fchmod(fd, mode)  # the umask may have cleared bits the config asks for
    except OSError:
        os.close(fd)
        raise
    return fd


def open_regular(name: str, *, dir_fd: int, flags: int = os.O_RDONLY) -> int:
    """Open the regular file NAME in DIR_FD: never through a symbolic link, never
    blocking on a FIFO (opened O_NONBLOCK, checked with fstat, then made blocking)."""
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(name, kind_of(info.st_mode))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_path(relative: PurePosixPath, dir_fd: int) -> int:
    """open_regular of RELATIVE below DIR_FD, no component followed."""
    parent = open_dir_path(relative.parent, dir_fd)
    try:
        return open_regular(relative.name, dir_fd=parent)
    finally:
        os.close(parent)


def read_bounded(name: str, *, dir_fd: int, limit: int = MAX_MANIFEST_SIZE) -> bytes:
    """The content of the regular file NAME in DIR_FD, at most `limit` bytes
    (ValueError when it is larger)."""
    fd = open_regular(name, dir_fd=dir_fd)
    try:
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{name} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def make_dir(name: str, mode: int, *, dir_fd: int) -> int:
    """mkdir NAME in DIR_FD with exactly `mode` (FileExistsError if it exists); returns
    the new directory opened."""
    os.mkdir(name, mode, dir_fd=dir_fd)
    fd = open_dir(name, dir_fd)
    try:
        os.fchmod(fd, mode)  # the umask may have cleared bits; never adds any beyond mode
    except OSError:
        os.close(fd)
        raise
    return fd


def make_dirs(relative: PurePosixPath, mode: int, *, dir_fd: int) -> tuple[int, int]:
    """`mkdir -p` of RELATIVE below DIR_FD, each new directory with exactly `mode`.
    Thread-safe (a directory made meanwhile by another thread is fine); an existing
    component that is not a directory (or is a link) fails with OSError.
    Returns (the innermost directory opened, how many directories this call made)."""
    fd = os.dup(dir_fd)
    made = 0
    try:
        for part in relative.parts:
            try:
                inner = make_dir(part, mode, dir_fd=fd)
                made += 1
            except FileExistsError:
                inner = open_dir(part, fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd, made


def make_root_dirs(target: Path, mode: int) -> list[Path]:
    """`mkdir -p` of the absolute path TARGET (the backup root), each new directory
    with exactly `mode`. Returns the directories made."""
    created: list[Path] = []
    current = Path("/")
    for part in target.parts[1:]:
        current = current / part
        try:
            os.mkdir(current, mode)
            os.chmod(current, mode)
            created.append(current)
        except FileExistsError:
            if not current.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(current)) from None
    return created


def checked_relative(path: str) -> PurePosixPath:
    """A relative object path that stays inside its copy (config already normalised it;
    this is the backend's own guard against writing outside the root)."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts == (".",):
        raise ValueError(f"object path '{path}' must be relative and stay inside the copy")
    return pure


def try_flock(fd: int) -> None:
    """Exclusive flock without waiting; BlockingIOError when another holder has it."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def read_all(fd: int, limit: int = 4096) -> bytes:
    return os.pread(fd, limit, 0)


def replace_content(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def write_durably(name: str, data: bytes, mode: int, *, dir_fd: int) -> None:
    """Replace NAME in DIR_FD atomically: temporary file NAME.tmp, fsync, renameat,
    fsync the directory. A leftover NAME.tmp (ours, from a crash) is unlinked first;
    unlinkat removes a link itself, never its target."""
    temporary = name + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dir_fd)
    fd = create_file(temporary, mode, dir_fd=dir_fd, exclusive=True)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int
FALLOC_FL_KEEP_SIZE: Final = 1


def preallocate(fd: int, size: int, path: Path, *, keep_size: bool = False) -> bool:
    """Reserve SIZE bytes for the file (alloc-size, a hint). True when done.
    keep_size: FALLOC_FL_KEEP_SIZE, the file's size stays what was written.

    fallocate(2) itself, not posix_fallocate(3): where the file system cannot
    preallocate (NFS, SMB) glibc's posix_fallocate falls back to writing a byte per
    block, which on a network share costs more than the hint can save. A failure
    (unsupported, or not enough space for the hint) is logged and ignored: the
    object may still fit, and a real lack of space fails the write itself.
    """
    if _fallocate(fd, FALLOC_FL_KEEP_SIZE if keep_size else 0, 0, size) == 0:
        return True
    code = ctypes.get_errno()
    os.ftruncate(fd, 0)  # drop a partial reservation
    log.warning("alloc-size: cannot preallocate %d bytes for %s: %s", size, path, os.strerror(code))
    return False


_sync_file_range = _libc.sync_file_range
_sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_sync_file_range.restype = ctypes.c_int
SYNC_FILE_RANGE_WRITE: Final = 2


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Start writing the dirty pages of [offset, offset + length) to the disk, without
    waiting for them (sync_file_range(2), SYNC_FILE_RANGE_WRITE). True when started.

    A hint, not a guarantee: the fsync before a commit is what makes the data durable.
    It lets the disk work while the stages still produce, so that fsync only waits for
    the last few MiB, and dirty pages do not pile up in a running server's memory.
    False (logged at debug level) where the call is refused (e.g. a file system or
    kernel without it): the caller stops asking.
    """
    if _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0:
        return True
    log.debug("early write-out unavailable: %s", os.strerror(ctypes.get_errno()))
    return False


EntryKind = Literal[
    "file", "directory", "symbolic link", "FIFO", "socket", "device", "special file", "mount point"
]


@record
class Entry:
    """One name found by `walk`: its path relative to the walked directory, its kind,
    and its size (regular files only)."""

    path: str
    kind: str
    size: int = 0


def walk(dir_fd: int, prefix: str = "") -> Iterator[Entry]:
    """Every name below DIR_FD, depth first, a directory before its content. Links
    are reported, never followed; a directory on another file system (something
    mounted inside the copy) is reported as a "mount point" and not entered."""
    device = os.fstat(dir_fd).st_dev
    with os.scandir(dir_fd) as entries:
        names = [entry.name for entry in entries]
    for name in sorted(names):
        path = prefix + name
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile
            continue
        if not stat.S_ISDIR(info.st_mode):
            size = info.st_size if stat.S_ISREG(info.st_mode) else 0
            yield Entry(path, kind_of(info.st_mode), size)
            continue
        if info.st_dev != device:
            yield Entry(path, "mount point")
            continue
        yield Entry(path, "directory")
        try:
            inner = open_dir(name, dir_fd)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                continue  # replaced meanwhile
            raise
        try:
            yield from walk(inner, path + "/")
        finally:
            os.close(inner)


def tree_size(dir_fd: int, *, skip: frozenset[str]) -> tuple[int, int]:
    """(bytes, number of regular files) below DIR_FD; the top-level names in `skip`
    (palhm's own files: the manifest and its temporary file) are not counted."""
    size = count = 0
    for entry in walk(dir_fd):
        if entry.kind == "file" and entry.path not in skip:
            size += entry.size
            count += 1
    return size, count


def mount_points(dir_fd: int) -> list[str]:
    """Relative paths of the file systems mounted below DIR_FD."""
    return [entry.path for entry in walk(dir_fd) if entry.kind == "mount point"]


def remove_tree(name: str, *, dir_fd: int, opened: int | None = None) -> None:
    """rm -r NAME in DIR_FD with unlinkat/rmdir relative to directory descriptors:
    links are removed, never followed. Refuses (OSError EBUSY, nothing removed) when
    a file system is mounted anywhere inside: rm -r would delete its files.

    opened: NAME already opened by the caller (the staging directory it created);
    its content is removed through that descriptor, whatever NAME points to now.
    """
    inner = os.dup(opened) if opened is not None else open_dir(name, dir_fd)
    try:
        mounted = mount_points(inner)
        if mounted:
            raise OSError(errno.EBUSY, f"a file system is mounted inside it, at {mounted[0]}", name)
        _empty(inner)
    finally:
        os.close(inner)
    os.rmdir(name, dir_fd=dir_fd)


def remove_tree_content(dir_fd: int) -> None:
    """rm -r of everything inside the open directory DIR_FD (mounts refused)."""
    mounted = mount_points(dir_fd)
    if mounted:
        raise OSError(errno.EBUSY, f"a file system is mounted inside it, at {mounted[0]}")
    _empty(dir_fd)


def same_file(name: str, dir_fd: int, fd: int) -> bool:
    """Whether NAME in DIR_FD (not followed) is the file open as FD."""
    try:
        named = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def exists(name: str, dir_fd: int) -> bool:
    """Whether NAME exists in DIR_FD (a dangling link too)."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p] * 2 + [ctypes.c_uint]
    _renameat2.restype = ctypes.c_int
_RENAME_NOREPLACE: Final = 1


def rename_noreplace(old: str, new: str, *, dir_fd: int) -> None:
    """renameat OLD to NEW in DIR_FD, failing with FileExistsError when NEW exists
    (renameat2 RENAME_NOREPLACE; where the file system lacks it, a check then rename:
    a directory in the way still makes rename fail unless it is empty)."""
    if _renameat2 is not None:
        result = _renameat2(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), _RENAME_NOREPLACE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), new)
    if exists(new, dir_fd):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), new)
    os.rename(old, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _empty(dir_fd: int) -> None:
    device = os.fstat(dir_fd).st_dev
    with os.scandir(dir_fd) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
            continue
        if info.st_dev != device:  # mounted since the check: leave it, rmdir fails
            raise OSError(errno.EBUSY, "a file system is mounted there", name)
        inner = open_dir(name, dir_fd)
        try:
            _empty(inner)
        finally:
            os.close(inner)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=dir_fd)
