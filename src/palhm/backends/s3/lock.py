"""The aws-s3 backend's per-root lock (doc/design.md#locking): a local fcntl lock file.

S3 has no lock primitive, so palhm locks a file on this host named after a hash of
endpoint, bucket and root, in palhm's private run directory (rundir.py: /run/palhm
for root, which the shipped systemd unit declares, so timer and manual runs share
it). It serialises runs on one host only: two hosts backing up into the same root
are not serialised (their copies still never collide: doc/design.md#copy-names-prefixes). The
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
from palhm.rundir import private_subdir

LOCKS: Final = "locks"


def lock_dir() -> Path:
    """run_dir()/locks: only palhm's user can write there (rundir.py). A lock in a
    world-writable directory such as /run/lock could be created first by another
    user (every S3 run then fails, "holder unknown"), removed, or replaced by a link."""
    try:
        return private_subdir(LOCKS)
    except OSError as error:
        raise LockedError(str(error)) from None


def lock_path(identity: str) -> Path:
    """The lock file of a root: `identity` is 'endpoint bucket root'."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return lock_dir() / f"s3-{digest}.lock"


@contextmanager
def hold_lock(path: Path, *, what: str, task_id: str) -> Iterator[None]:
    """Hold the lock file `path` for the block; LockedError at once when another
    process holds it, naming that process (pid, host, task, since)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
