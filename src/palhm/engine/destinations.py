"""One backup run to several destinations (doc/backup.md#several-destinations).

    run_destinations(task, *, modules, nb_workers, verbosity) -> BackupResult

A task with one destination is handed to backup.run_backup unchanged. With several:

1. Each destination is locked and cleaned of incomplete copies, in config order.
2. One PREFIX from the run's start; a copy is begun on each destination (its own
   copy transaction: building manifest first, as doc/design.md#copy-protocol says).
3. The objects are built once (backup.ObjectBuilder) into a fanout.FanoutCopy: each
   object's pipeline runs once and its bytes go to every destination.
4. The same final manifest commits the copy on each destination, one after another.
5. Each destination is rotated with its own retention (backup.rotate).

Failures (`require`, fanout.Destinations): a pipeline failure, a signal, or under
`require: all` any destination's failure, rolls back the new copy on every
destination (copies already committed on some are removed again) and raises. Under
`require: any` a failing destination is dropped: its new copy is rolled back, the
others go on, and after the others committed and rotated the run raises
DestinationsFailed (exit 1, one error line per failed destination saying which
destinations hold the new copy). Every destination failing is a failed run.

A crash between two commits leaves the copy committed on the first destinations
only: each destination's copy is complete or not counted, and `palhm replicate`
fills the gap.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from palhm.backends.base import Backend
from palhm.engine import interrupts
from palhm.engine.backup import (
    BackupResult,
    DestinationOutcome,
    ObjectBuilder,
    final_manifest,
    find_baseline,
    make_backend,
    phase_before_commit,
    phase_committed,
    phase_copy_begun,
    phase_lock_acquired,
    rotate,
    run_backup,
    suspect_error,
    task_lock,
)
from palhm.engine.checksum import new_hasher
from palhm.engine.fanout import Destinations, FanoutCopy, Target
from palhm.engine.rotating import remove_incomplete
from palhm.engine.rotation import RotationPlan
from palhm.errors import BackendError, LockedError, PalhmError, RotationError
from palhm.manifest import Manifest, building_manifest, encode_manifest
from palhm.model import BackupTask
from palhm.prefix import make_prefix
from palhm.records import replace

log = logging.getLogger(__name__)


class DestinationsFailed(PalhmError):
    """The run committed its copy on some destinations, not on all (`require: any`),
    or a rotation failed on some: one error line per failed destination. `result` is
    the run's result (the copy exists)."""

    every_line_an_error = True

    def __init__(self, lines: list[str], result: BackupResult) -> None:
        super().__init__("\n".join(lines))
        self.result = result


def run_destinations(
    task: BackupTask,
    *,
    modules: frozenset[str] | set[str] = frozenset(),
    nb_workers: int = 0,
    verbosity: int = 3,
) -> BackupResult:
    """Make one copy of `task` on each of its destinations (module docstring).

    Raises what run_backup raises (the failing destination named) or
    DestinationsFailed."""
    group = Destinations(task.id, _targets(task, modules), task.require)
    try:
        if len(group.targets) == 1:
            return run_backup(task, modules=modules, nb_workers=nb_workers, verbosity=verbosity)
        new_hasher(task.checksum)  # loaded before the pipelines: see run_backup
        interrupts.check()
        with contextlib.ExitStack() as locks:
            _prepare(group, locks)
            prefix, manifest = _make_copies(group, task, nb_workers, verbosity)
            return _after_commit(group, task, prefix, manifest)
    except PalhmError as error:
        if getattr(error, "result", None) is None:  # no destination holds a new copy
            error.destinations = _failed_outcomes(group, error)
        raise


def _targets(task: BackupTask, modules: frozenset[str] | set[str]) -> list[Target]:
    targets = []
    for destination in task.all_destinations():
        seen = task.at(destination)
        targets.append(Target(destination, seen, make_backend(seen, modules)))
    return targets


def _prepare(group: Destinations, locks: contextlib.ExitStack) -> None:
    """Lock each destination and remove its incomplete copies; a destination that
    cannot be locked or listed is dropped (or fails the run: group.drop)."""
    for target in group.live():
        try:
            locks.enter_context(task_lock(target.backend, target.task))
            remove_incomplete(target.backend, target.task)
        except (BackendError, LockedError, OSError) as error:
            group.drop(target, error)
    phase_lock_acquired()


def _make_copies(
    group: Destinations, task: BackupTask, nb_workers: int, verbosity: int
) -> tuple[str, Manifest]:
    """Begin a copy on each live destination, build the objects once, commit the
    copy on each. Everything of the new copy is removed again on any failure."""
    first = group.live()[0]
    baseline = find_baseline(first.backend, first.task) if task.max_shrink is not None else None
    interrupts.check()
    start = datetime.now(UTC)
    prefix = make_prefix(task.prefix, start)
    with _transactions(group, prefix):
        _begin(group, encode_manifest(building_manifest(task.id, prefix, start)), prefix)
        builder = ObjectBuilder(task, FanoutCopy(group), nb_workers=nb_workers, verbosity=verbosity)
        records = builder.run()
        manifest = final_manifest(task, prefix, start, records, baseline)
        phase_before_commit()
        interrupts.check()  # a signal after the last object still means "no copy"
        _commit(group, manifest)
    phase_committed()
    return prefix, manifest


def _begin(group: Destinations, building: bytes, prefix: str) -> None:
    for target in group.live():
        try:
            target.copy = target.backend.begin_copy(prefix, building_manifest=building)
        except (BackendError, OSError) as error:
            group.drop(target, error)
    phase_copy_begun()


def _commit(group: Destinations, manifest: Manifest) -> None:
    """The same manifest on every destination, but for the Object Lock date each
    destination's own settings give (None where it has none)."""
    for target in group.live():
        assert target.copy is not None
        until = target.backend.retain_until(manifest.prefix)
        try:
            target.copy.commit(encode_manifest(replace(manifest, retain_until=until)))
        except (BackendError, OSError) as error:
            group.drop(target, error)
            continue
        target.committed = True
        log.info(
            "task '%s': copy committed on destination '%s' (%s)",
            group.task_id, target.name, target.backend.describe(),
        )  # fmt: skip


@contextlib.contextmanager
def _transactions(group: Destinations, prefix: str) -> Iterator[None]:
    """Roll back what the run wrote: on any failure, the copy on every destination;
    on success, the copies of the destinations dropped on the way."""
    try:
        yield
    except BaseException:
        for target in group.targets:
            _undo(target, prefix)
        raise
    for target in group.failed():
        _undo(target, prefix)


def _undo(target: Target, prefix: str) -> None:
    """Remove this run's copy from one destination (a rollback, or the removal of a
    copy already committed there). A failure is logged: the next run cleans up."""
    try:
        if target.committed:
            log.warning("destination '%s': removing the new copy %s again", target.name, prefix)
            _remove_committed(target.backend, prefix)
            target.committed = False
        elif target.copy is not None:
            log.info("rolling back copy %s/%s", target.backend.describe(), prefix)
            target.copy.rollback()
    except Exception as error:
        log.error("%s (the next run removes it)", error)


def _remove_committed(backend: Backend, prefix: str) -> None:
    for info in backend.list_copies():
        if info.prefix == prefix:
            backend.remove_copy(info)


def _after_commit(
    group: Destinations, task: BackupTask, prefix: str, manifest: Manifest
) -> BackupResult:
    """Rotate each destination holding the copy; the result, or DestinationsFailed."""
    holders = [t for t in group.targets if t.committed]
    location = f"{holders[0].backend.describe()}/{prefix}"
    log.info(
        "task '%s': copy %s committed on %s: %d object(s), %d bytes",
        task.id, prefix, ", ".join(t.name for t in holders), len(manifest.objects), manifest.size,
    )  # fmt: skip
    if manifest.suspect:
        raise suspect_error(task, location, manifest, _outcomes(group, {}))
    plans: dict[str, RotationPlan] = {}
    for target in holders:
        try:
            plans[target.name] = rotate(target.backend, target.task, current=prefix)
        except RotationError as error:
            cause = str(error).removeprefix(f"task '{task.id}': ")
            target.rotation_error = f"destination '{target.name}': {cause}"
    plan = next(iter(plans.values()), RotationPlan((), ()))
    result = BackupResult(task.id, prefix, location, manifest, plan, _outcomes(group, plans))
    lines = _failure_lines(group, prefix)
    if lines:
        raise DestinationsFailed(lines, result)
    return result


def _failure_lines(group: Destinations, prefix: str) -> list[str]:
    """One line per failed destination (and per failed rotation)."""
    holders = ", ".join(t.name for t in group.targets if t.committed)
    lines = [
        f"{target.error.lines()[0]}; the new copy {prefix} is on {holders} only"
        for target in group.failed()
        if target.error is not None
    ]
    lines.extend(
        f"task '{group.task_id}', {t.rotation_error}" for t in group.targets if t.rotation_error
    )
    return lines


def _outcomes(
    group: Destinations, plans: dict[str, RotationPlan]
) -> tuple[DestinationOutcome, ...]:
    """What happened on each destination of a run that committed its copy."""
    outcomes = []
    for target in group.targets:
        backend, where = target.destination.backend, target.backend.describe()
        if target.committed:
            plan = plans.get(target.name)
            kept = len(plan.keep) if plan is not None else None
            outcomes.append(DestinationOutcome(target.name, backend, where, "ok", None, kept))
        else:
            cause = target.error.lines()[0] if target.error is not None else "not committed"
            outcomes.append(DestinationOutcome(target.name, backend, where, "failed", cause))
    return tuple(outcomes)


def _failed_outcomes(group: Destinations, error: PalhmError) -> tuple[DestinationOutcome, ...]:
    """Every destination failed: with its own error, or with the run's."""
    run_cause = error.lines()[0]
    return tuple(
        DestinationOutcome(
            target.name,
            target.destination.backend,
            target.backend.describe(),
            "failed",
            target.error.lines()[0] if target.error is not None else run_cause,
        )
        for target in group.targets
    )
