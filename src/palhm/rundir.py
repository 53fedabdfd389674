"""palhm's private run-time directory: S3 lock files and records of running runs.

Only the user palhm runs as may write there (doc/reliability.md, threat model):
another user who could create or replace a file in it could block every run (a
lock file held open), remove locks, redirect root's writes through a symbolic
link, or forge a run record naming processes for palhm to kill.

- root: /run/palhm (0700). /run is writable by root only, so nobody else can
  create it first; the shipped palhm@.service declares it (RuntimeDirectory=palhm,
  RuntimeDirectoryPreserve=yes), so a timer run and a manual run use the same
  directory and exclude each other. Not /run/lock: that is world-writable.
- any other user: $XDG_RUNTIME_DIR/palhm (the user's own, 0700 by systemd-logind),
  else /tmp/palhm-UID.

The directory is used only when it is a real directory (not a link) owned by the
current user and writable by nobody else; anything else is refused, never fixed
up or followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

SYSTEM_RUN_DIR: Final = Path("/run/palhm")


class RunDirError(OSError):
    """No private run-time directory can be used; the message says why."""


def run_dir() -> Path:
    """The private run-time directory, created (0700) if missing. RunDirError when
    none is usable."""
    reasons: list[str] = []
    for directory in _candidates():
        try:
            _ensure_private(directory)
        except OSError as error:
            reasons.append(f"{directory}: {error.strerror or error}")
            continue
        return directory
    raise RunDirError("no private run-time directory for palhm: " + "; ".join(reasons))


def _candidates() -> list[Path]:
    if os.geteuid() == 0:
        return [SYSTEM_RUN_DIR]
    found = []
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(runtime) / "palhm")
    found.append(Path("/tmp") / f"palhm-{os.geteuid()}")
    return found


def _ensure_private(directory: Path) -> None:
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise RunDirError(0, "exists and is not a directory (a link?): not used")
    if info.st_uid != os.geteuid():
        raise RunDirError(0, f"owned by uid {info.st_uid}, not by palhm's user: not used")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RunDirError(0, f"writable by other users (mode {stat.S_IMODE(info.st_mode):04o})")


def private_subdir(name: str) -> Path:
    """run_dir()/NAME, created 0700 and checked like run_dir itself."""
    directory = run_dir() / name
    _ensure_private(directory)
    return directory
