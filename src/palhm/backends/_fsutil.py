"""File-system primitives of the localfs backend: creation with exact modes, durable
writes, preallocation, tree walks and the clean-up of orphaned writers.

Raise OSError; localfs turns them into BackendError messages naming the path.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final

log = logging.getLogger(__name__)

_CREATE_FLAGS: Final = os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def create_file(path: Path, mode: int, *, exclusive: bool) -> int:
    """Open PATH for writing, creating it with exactly `mode` (see localfs: the mode is
    given to open() and completed by fchmod before any byte is written).

    exclusive: fail with FileExistsError if PATH exists; else an existing file is
    opened read-write as is (its mode untouched).
    """
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_EXCL | _CREATE_FLAGS, mode)
    else:
        try:
            fd = os.open(path, os.O_RDWR | os.O_EXCL | _CREATE_FLAGS, mode)
        except FileExistsError:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, mode)  # the umask may have cleared bits the config asks for
    except OSError:
        os.close(fd)
        raise
    return fd


def make_dir(path: Path, mode: int) -> None:
    """mkdir PATH with exactly `mode` (FileExistsError if it exists)."""
    os.mkdir(path, mode)
    os.chmod(path, mode)  # the umask may have cleared bits; never adds any beyond mode


def make_dirs(base: Path, target: Path, mode: int) -> list[Path]:
    """`mkdir -p` of TARGET below the existing directory BASE, each new directory with
    exactly `mode`. Thread-safe (a directory made meanwhile by another thread is fine).
    Returns the directories this call created."""
    created: list[Path] = []
    current = base
    for part in target.relative_to(base).parts:
        current = current / part
        try:
            make_dir(current, mode)
            created.append(current)
        except FileExistsError:
            if not current.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(current)) from None
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


def write_durably(target: Path, data: bytes, mode: int) -> None:
    """Replace TARGET atomically: temporary file, fsync, rename, fsync the directory."""
    temporary = target.with_name(target.name + ".tmp")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    fd = create_file(temporary, mode, exclusive=True)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, target)
    fsync_dir(target.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def walk_files(directory: Path) -> Iterator[Path]:
    """Regular files below DIRECTORY (symbolic links are not followed)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from walk_files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield Path(entry.path)


def tree_size(directory: Path, *, skip: str) -> tuple[int, int]:
    """(bytes, number of files) below DIRECTORY; top-level files whose name starts with
    `skip` (the manifest and its temporary file) are not counted."""
    size = count = 0
    for path in walk_files(directory):
        if path.parent == directory and path.name.startswith(skip):
            continue
        try:
            size += path.lstat().st_size
        except FileNotFoundError:  # removed meanwhile
            continue
        count += 1
    return size, count


def remove_tree(path: Path) -> None:
    """rm -r PATH without following symbolic links."""
    shutil.rmtree(path)


def stop_writers(directory: Path) -> list[int]:
    """SIGKILL every other process holding a file open below DIRECTORY.

    Those can only be stages of a palhm run that died (SIGKILL, power loss of a
    client on NFS ...) still writing into its incomplete copy. Only these processes
    are killed, never their process groups: upstream stages then end on SIGPIPE.
    """
    victims = sorted(_writers(os.path.realpath(directory) + os.sep))
    for pid in victims:
        log.warning("stopping process %d, still writing into %s", pid, directory)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def _writers(inside: str) -> set[int]:
    me = os.getpid()
    return {
        int(proc.name)
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit() and int(proc.name) != me and _holds_file_in(proc, inside)
    }


def _holds_file_in(proc: Path, inside: str) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:  # gone, or not ours to look at
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(inside):
                return True
        except OSError:  # closed meanwhile
            continue
    return False
