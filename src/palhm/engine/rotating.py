"""Rotation of one backend: list the copies, plan (rotation.py, pure), remove.

    rotate_task(backend, task, *, current=None, dry_run=False) -> RotationPlan

Called after a backup commits (engine/backup.py, `current` = the new copy) and by
`palhm rotate TASK` (rotation alone, from a host with delete rights: `current` is
then the newest counted copy, which is always kept). It takes no lock and does no
after-commit work: the caller holds the root's lock. With several destinations, it is
called once per backend.

Copies are removed oldest first. A locked copy (S3 Object Lock, retain-until in the
future) is never tried. A deletion the store refuses (DeleteDeniedError) on a backend
with `delete: delegated` is logged and left to the rotation host; every other
failure stops rotation (going on would remove newer copies while an older one stays)
and is a RotationError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from palhm import faults
from palhm.backends.base import Backend, CopyInfo
from palhm.engine import interrupts
from palhm.engine.pins import read_pins
from palhm.engine.rotation import (
    FUTURE,
    Decision,
    RotationPlan,
    locked_over_limits,
    plan_rotation,
)
from palhm.errors import BackendError, DeleteDeniedError, RotationError
from palhm.manifest import parse_manifest
from palhm.model import BackupTask
from palhm.prefix import parse_prefix

log = logging.getLogger(__name__)

DELEGATED = "deletion left to the rotation host (delete: delegated)"


def rotate_task(
    backend: Backend,
    task: BackupTask,
    *,
    current: str | None = None,
    dry_run: bool = False,
    delegate: bool | None = None,
) -> RotationPlan:
    """Plan the rotation of `task`'s copies on `backend` and carry it out (not with
    `dry_run`). Returns the plan as done: copies whose deletion was delegated move
    to `keep` with the reason DELEGATED. `delegate`: whether a refused deletion is
    left to another host (default: the backend's `delete: delegated`); `palhm
    rotate`, the rotation host itself, passes False.

    Raises RotationError (saying the copy `current` is safe when given) or
    Interrupted (between two removals).
    """
    safe = f"; the new copy {current} is safe" if current else ""
    try:
        copies = backend.list_copies()
        plan = _plan(backend, task, copies, current)
    except BackendError as error:
        raise RotationError(f"task '{task.id}': {error}{safe}") from error
    _report(task, backend, copies, plan)
    if dry_run:
        return plan
    if delegate is None:
        delegate = backend.deletion_delegated
    delegated: list[Decision] = []
    for doomed in plan.remove:
        interrupts.check()  # stop rotating on a signal: the new copy is committed
        log.info("removing copy %s (%s)", doomed.copy.location, doomed.reasons[0])
        faults.crashpoint("before-removal")  # test facility (tests/reliability)
        try:
            backend.remove_copy(doomed.copy)
        except DeleteDeniedError as error:
            if not delegate:
                raise RotationError(
                    f"task '{task.id}': rotation failed: {error} ({_denied_hint(current)}){safe}"
                ) from error
            log.info("task '%s': copy %s: %s", task.id, doomed.copy.location, DELEGATED)
            delegated.append(Decision(doomed.copy, (DELEGATED,)))
        except BackendError as error:
            raise RotationError(f"task '{task.id}': rotation failed: {error}{safe}") from error
        faults.crashpoint("after-removal")  # test facility (tests/reliability)
    if not delegated:
        return plan
    gone = {d.copy.prefix for d in delegated}
    return RotationPlan(
        plan.keep + tuple(delegated), tuple(d for d in plan.remove if d.copy.prefix not in gone)
    )


def _denied_hint(current: str | None) -> str:
    if current is None:  # palhm rotate: this host is meant to delete
        return "this host's key may not delete: give it s3:DeleteObject (doc/aws.md)"
    return (
        "this host's key may not delete: set backend-param delete to delegated and run"
        " `palhm rotate` on a host that may"
    )


def remove_incomplete(
    backend: Backend, task: BackupTask, *, dry_run: bool = False, delegate: bool | None = None
) -> list[str]:
    """Remove copies left incomplete by runs that died (the caller holds the lock: no
    run of this host is building one; the S3 backend leaves another host's recent
    one alone). A failure is logged, never raised: it does not stop a backup or a
    rotation (a refusal only at info level where `delegate`, as in rotate_task).
    Returns the locations removed (with `dry_run`: that would be)."""
    removed = []
    for copy in backend.list_copies():
        if copy.state != "incomplete":
            continue
        if dry_run:
            removed.append(copy.location)
            continue
        log.warning("task '%s': removing incomplete copy %s", task.id, copy.location)
        faults.crashpoint("incomplete-removal")  # test facility (tests/reliability)
        try:
            backend.remove_copy(copy)
            removed.append(copy.location)
        except DeleteDeniedError as error:
            if not (backend.deletion_delegated if delegate is None else delegate):
                log.error("task '%s': %s", task.id, error)
            else:
                log.info("task '%s': %s: %s", task.id, copy.location, DELEGATED)
        except BackendError as error:
            log.error("task '%s': %s", task.id, error)
        faults.crashpoint("incomplete-removed")  # test facility (tests/reliability)
    return removed


def _plan(
    backend: Backend, task: BackupTask, copies: list[CopyInfo], current: str | None
) -> RotationPlan:
    now = datetime.now().astimezone()
    if current is None:
        current = newest_copy(copies, now)
    return plan_rotation(
        copies,
        task.retention,
        current=current or "",
        now=now,
        suspect=suspect_copies(backend, copies),
        pinned=read_pins(backend),
    )


def newest_copy(copies: list[CopyInfo], now: datetime) -> str | None:
    """The newest counted copy not dated in the future: what rotation alone keeps as
    if it were the current copy (so it never leaves a task without a copy)."""
    dated = [(parse_prefix(c.prefix), c.prefix) for c in copies if c.counted]
    past = [(when, prefix) for when, prefix in dated if when is not None and when <= now]
    return max(past)[1] if past else None


def _report(task: BackupTask, backend: Backend, copies: list[CopyInfo], plan: RotationPlan) -> None:
    """Debug lines for each kept copy; warnings for what needs a person."""
    for kept in plan.keep:
        log.debug("keeping copy %s: %s", kept.copy.location, ", ".join(kept.reasons))
        if kept.reasons == (FUTURE,):  # the clock was ahead when it was made
            log.warning("task '%s': copy %s is %s", task.id, kept.copy.location, FUTURE)
    for other in sorted({str(c.task) for c in copies if c.state == "other-task"}):
        log.warning("task '%s': the root also holds copies of task '%s'", task.id, other)
    for excess in locked_over_limits(copies, task.retention, now=datetime.now().astimezone()):
        log.warning(
            "task '%s': %s: the copies locked in %s alone exceed it; they stay until their"
            " locks expire (check object-lock period against the retention rules)",
            task.id, excess, backend.describe(),
        )  # fmt: skip


def suspect_copies(backend: Backend, copies: Sequence[CopyInfo]) -> frozenset[str]:
    """Prefixes of the complete copies whose manifest marks them suspect (an unreadable
    manifest is not a mark: rotation treats that copy as before)."""
    found = set()
    for info in copies:
        if info.state != "complete":
            continue
        try:
            data = backend.read_manifest(info.prefix)
            if data is not None and parse_manifest(data).suspect:
                found.add(info.prefix)
        except (BackendError, ValueError):
            continue
    return frozenset(found)
