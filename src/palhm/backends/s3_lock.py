"""The aws-s3 backend's per-root lock (SPEC B13): a local fcntl lock file.

S3 has no lock primitive, so palhm locks a file on this host named after a hash of
endpoint, bucket and root. It serialises runs on one host only: two hosts backing up
into the same root are not serialised (their copies still never collide, B11). The
lock file holds who owns the lock, for the LockedError message; the kernel releases
the lock when the process exits, however it exits.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from palhm.errors import LockedError

SYSTEM_LOCK_DIR: Final = Path("/run/lock/palhm")


def lock_dir() -> Path:
    """/run/lock/palhm when usable, else $XDG_RUNTIME_DIR/palhm, else a private /tmp dir."""
    candidates = [SYSTEM_LOCK_DIR]
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(runtime) / "palhm")
    candidates.append(Path("/tmp") / f"palhm-locks-{os.getuid()}")
    for directory in candidates:
        try:
            directory.mkdir(
                mode=0o700 if directory.parent == Path("/tmp") else 0o755, exist_ok=True
            )
        except OSError:
            continue
        if os.access(directory, os.W_OK) and _owned_if_shared(directory):
            return directory
    raise LockedError(f"no usable lock directory among {', '.join(map(str, candidates))}")


def _owned_if_shared(directory: Path) -> bool:
    """A directory in world-writable /tmp must be ours (no lock hijack by another user)."""
    if directory.parent != Path("/tmp"):
        return True
    info = directory.lstat()
    return not directory.is_symlink() and info.st_uid == os.getuid()


def lock_path(identity: str) -> Path:
    """The lock file of a root: `identity` is 'endpoint bucket root'."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return lock_dir() / f"s3-{digest}.lock"


@contextmanager
def hold_lock(path: Path, *, what: str, task_id: str) -> Iterator[None]:
    """Hold the lock file `path` for the block; LockedError at once when another
    process holds it, naming that process (pid, host, task, since)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_note(fd)
            raise LockedError(
                f"{what}: locked by another palhm run ({holder}); lock file {path}"
                " (this lock serialises runs on this host only)"
            ) from None
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        owner = f"pid {os.getpid()} on {socket.gethostname()}, task '{task_id}', since {since}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode() + b"\n", 0)
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays (unlinking would race)


def _holder_note(fd: int) -> str:
    """The holder's note. It is written just after the flock is taken, so a run refused
    in between may read an empty file: retry for up to 0.5 s."""
    for _ in range(10):
        note = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        if note:
            return note
        time.sleep(0.05)
    return "holder unknown"
