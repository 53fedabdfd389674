"""What a killed palhm run left running: record process groups, stop them next time.

Every stage of a pipeline (and every command) runs in a process group palhm
creates for it (group.py), and its direct children get the parent-death signal.
Their own children do not: after `kill -9` of palhm, the `sleep` inside a stage's
`sh -c '... sleep 600 ...'` keeps running, and may keep writing. So:

- `palhm run` keeps a record of itself, run_dir()/runs/PID-START.json: its pid,
  the start time of its process (field 22 of /proc/PID/stat, clock ticks since
  boot), the boot id, and each live process group with its leader's start time.
  group.py adds a group when it creates one and removes it once every process
  of the group is reaped.
- At its start, `palhm run` reads the other records. A record whose owner is gone
  (no process PID, or one with another start time) belongs to a dead run: every
  process still in one of its groups is sent SIGKILL, and the record is removed.
  Records from before a reboot are only removed.

Never a reused PID: a process is killed only when its process group is a recorded
one, the group's leader is either gone or still the recorded process (same start
time), and the process itself started no earlier than that leader. A group id
cannot be handed out again while any process of the group is alive, so such a
process is the dead run's. The records are in palhm's private run directory,
which no other user can write (rundir.py): nobody can forge a record to make
palhm kill their choice of process.

A run ends every group on every exit path (execute.py and group.py kill and reap the group
whatever way a pipeline or command ends); the record only matters when palhm
itself cannot do so (SIGKILL, OOM killer, power loss of a VM snapshot ...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from palhm.rundir import private_subdir

log = logging.getLogger(__name__)

RUNS: Final = "runs"
_STOP_ROUNDS: Final = 5  # a dying group may still fork: look again a few times


class _Record:
    """This process's record file and the groups in it."""

    def __init__(self, path: Path, pid: int, start: int, boot: str) -> None:
        self.path = path
        self.pid = pid
        self.start = start
        self.boot = boot
        self.groups: dict[int, int] = {}  # pgid -> leader start time
        self.lock = threading.Lock()

    def save(self) -> None:
        document = {
            "pid": self.pid,
            "start": self.start,
            "boot": self.boot,
            "groups": [[pgid, start] for pgid, start in sorted(self.groups.items())],
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with open(fd, "w", encoding="utf-8") as file:
            json.dump(document, file)
        os.replace(temporary, self.path)


_active: _Record | None = None


@contextlib.contextmanager
def run_record() -> Iterator[None]:
    """For the whole of one `palhm run`: stop what dead runs left, keep this run's
    record, remove it at the end. Without a private run directory (rundir.py) the
    mechanism is off, with a warning: runs still work."""
    global _active
    try:
        directory = private_subdir(RUNS)
        stop_dead_runs(directory)
        me, boot = os.getpid(), boot_id()
        start = start_time(me)
        record = _Record(directory / f"{me}-{start}.json", me, start or 0, boot)
        record.save()
    except OSError as error:
        log.warning("cannot keep a record of this run's processes: %s", error)
        yield
        return
    _active = record
    try:
        yield
    finally:
        _active = None
        with contextlib.suppress(OSError):
            record.path.unlink()


def register_group(pgid: int) -> None:
    """group.py: process group PGID was just created (its leader is alive)."""
    record = _active
    if record is None:
        return
    start = start_time(pgid)
    if start is None:
        return
    with record.lock:
        record.groups[pgid] = start
        _save_quietly(record)


def release_group(pgid: int) -> None:
    """group.py: every process of group PGID is gone (killed and reaped)."""
    record = _active
    if record is None:
        return
    with record.lock:
        if record.groups.pop(pgid, None) is not None:
            _save_quietly(record)


def _save_quietly(record: _Record) -> None:
    try:
        record.save()
    except OSError as error:
        log.warning("cannot update %s: %s", record.path, error.strerror or error)


# --------------------------------------------------------------------------- clean-up


def stop_dead_runs(directory: Path) -> list[int]:
    """SIGKILL what runs that died left in their recorded groups; the pids killed."""
    boot = boot_id()
    killed: list[int] = []
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_bytes())
            pid, start = int(document["pid"]), int(document["start"])
            groups = [(int(g), int(s)) for g, s in document["groups"]]
            same_boot = document["boot"] == boot
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring the unreadable run record %s", path)
            continue
        if same_boot and start_time(pid) == start:
            continue  # a live run
        if same_boot:
            for pgid, leader_start in groups:
                killed.extend(_stop_group(pgid, leader_start, pid))
        with contextlib.suppress(OSError):
            path.unlink()
    return killed


def _stop_group(pgid: int, leader_start: int, owner: int) -> list[int]:
    killed: list[int] = []
    for _ in range(_STOP_ROUNDS):
        victims = group_members(pgid, leader_start)
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.extend(v for v in victims if v not in killed)
    if killed:
        log.warning(
            "stopped %d process(es) a palhm run that died (pid %d) left running: %s",
            len(killed), owner, ", ".join(map(str, killed)),
        )  # fmt: skip
    return killed


def group_members(pgid: int, leader_start: int) -> list[int]:
    """Live processes of the recorded group PGID (see the module doc for the rule)."""
    leader = start_time(pgid)
    if leader is not None and leader != leader_start:
        return []  # the group id now belongs to a new process
    members: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        if int(fields[2]) == pgid and int(fields[19]) >= leader_start:
            members.append(int(entry.name))
    return members


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3... of /proc/PID/stat (state, ppid, pgrp, ...), None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw.rsplit(b")", 1)[1].decode().split()


def start_time(pid: int) -> int | None:
    """When process PID started (clock ticks since boot), None if there is none."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
