"""`palhm replicate TASK [--from A] [--to B] [--all] [-n]` (doc/backup.md#replicate).

Copies complete copies that destination A holds and destination B lacks, e.g. after
B was unreachable for a few runs of a task with `require: any`. Default: from the
task's first destination to every other one, the newest copy each one lacks; `--all`
every copy it lacks, oldest first.

Each copy is written on B with the copy protocol of a run (doc/design.md#copy-protocol),
under B's lock: B's incomplete copies are removed, a building manifest first, then
each object streamed from A's reader into B's writer in blocks (bounded memory, no
temporary file) while its size and checksum are checked against A's manifest, and
A's final manifest, byte for byte, last (with B's own Object Lock date instead of
A's when they differ). An object that differs from A's manifest
(damaged on A, or changed while read) rolls B's new copy back and fails with the
object named; what B held before is never touched. Only complete copies are copied:
legacy copies (no manifest) cannot be checked and are left alone.

B is then rotated with its own retention, as after a run (aws-s3's
`rot-storage-class` move included): a replicated copy counts like any other, and B's
limits hold after replicate as after a run. The newest copy replicated is kept like a
run's new copy; older ones replicated with `--all` may be removed at once by B's own
limits (nb-copy-limit ...), as a run would have removed them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final

from palhm.backends.base import Backend, CopyWriter
from palhm.engine import interrupts
from palhm.engine.backup import copy_transaction, rotate, task_lock
from palhm.engine.checksum import new_hasher
from palhm.engine.progress import human_size
from palhm.engine.rotating import remove_incomplete
from palhm.errors import BackendError, PalhmError, UsageError
from palhm.manifest import (
    Manifest,
    ObjectRecord,
    building_manifest,
    encode_manifest,
    parse_manifest,
)
from palhm.model import BackupTask, Config, Destination
from palhm.ops.feed import differences
from palhm.ops.operations import block_size, existing_backend, open_backend, own_copies
from palhm.records import record, replace

log = logging.getLogger(__name__)

_NO_CHECK: Final = "none"


class ReplicateError(PalhmError):
    """A copy could not be replicated (the target's new copy is rolled back)."""


@record
class _Side:
    """One destination of the task: its name, the task seen through it, its backend."""

    destination: Destination
    task: BackupTask
    backend: Backend

    @property
    def name(self) -> str:
        return self.destination.name


def replicate(
    config: Config,
    task: BackupTask,
    *,
    source: str | None = None,
    target: str | None = None,
    every_copy: bool = False,
    dry_run: bool = False,
) -> str:
    """Replicate missing copies (module docstring); the report's text. Raises
    UsageError (unknown destination, one destination only), ReplicateError, the
    backend's errors, or Interrupted."""
    origin, targets = _sides(config, task, source, target)
    complete = [c.prefix for c in own_copies(origin.backend, origin.task) if c.state == "complete"]
    lines: list[str] = []
    for side in targets:
        lines.extend(_fill(origin, side, complete, every_copy=every_copy, dry_run=dry_run))
    return "".join(f"{line}\n" for line in lines)


def _sides(
    config: Config, task: BackupTask, source: str | None, target: str | None
) -> tuple[_Side, list[_Side]]:
    destinations = task.all_destinations()
    if len(destinations) < 2:
        raise UsageError(f"task '{task.id}' has one destination: nothing to replicate")
    names = [d.name for d in destinations]
    for wanted in (source, target):
        if wanted is not None and wanted not in names:
            raise UsageError(
                f"task '{task.id}' has no destination '{wanted}' (destinations: {', '.join(names)})"
            )
    for destination in destinations:
        if destination.backend == "null" and destination.name in (source, target):
            raise UsageError(
                f"task '{task.id}': destination '{destination.name}' is null: it keeps no copies"
            )
    origin_name = source or names[0]
    if target == origin_name:
        raise UsageError(f"task '{task.id}': --from and --to are both '{origin_name}'")
    others = [d.name for d in destinations if d.name != origin_name and d.backend != "null"]
    chosen = [target] if target is not None else others
    by_name = {d.name: d for d in destinations}
    origin = by_name[origin_name]
    origin_side = _Side(origin, task.at(origin), existing_backend(config, task.at(origin)))
    sides = [_side(config, task, by_name[name]) for name in chosen]
    return origin_side, sides


def _side(config: Config, task: BackupTask, destination: Destination) -> _Side:
    seen = task.at(destination)
    return _Side(destination, seen, open_backend(config, seen))


def _fill(
    origin: _Side, side: _Side, complete: list[str], *, every_copy: bool, dry_run: bool
) -> Iterator[str]:
    """Copy what `side` lacks of `complete` (prefixes on origin), under its lock."""
    where = f"task '{origin.task.id}': {origin.name} -> {side.name}"
    if dry_run:
        missing = _missing(side, complete, every_copy=every_copy)
        yield from (f"{where}: would copy {prefix}" for prefix in missing)
        if not missing:
            yield f"{where}: nothing to copy"
        return
    with task_lock(side.backend, side.task):
        remove_incomplete(side.backend, side.task)
        missing = _missing(side, complete, every_copy=every_copy)
        if not missing:
            yield f"{where}: nothing to copy"
            return
        for prefix in missing:
            interrupts.check()
            size = _copy(origin, side, prefix)
            yield f"{where}: copied {prefix} ({human_size(size)})"
            if prefix != missing[-1]:  # rotate() below does it for the newest
                _after_commit(side, prefix)
        plan = rotate(side.backend, side.task, current=missing[-1])
        for doomed in plan.remove:
            yield f"{where}: rotation removed {doomed.copy.prefix} ({doomed.reasons[0]})"


def _after_commit(side: _Side, prefix: str) -> None:
    try:
        side.backend.after_commit(prefix)
    except BackendError as error:
        log.warning("task '%s', destination '%s': %s", side.task.id, side.name, error)


def _missing(side: _Side, complete: list[str], *, every_copy: bool) -> list[str]:
    """The origin's complete copies `side` has under no state at all (oldest first);
    only the newest of them unless `every_copy`."""
    present = {c.prefix for c in side.backend.list_copies() if c.state != "incomplete"}
    missing = [prefix for prefix in complete if prefix not in present]
    return missing if every_copy else missing[-1:]


def _copy(origin: _Side, side: _Side, prefix: str) -> int:
    """One copy from origin to side with the copy protocol; its size in bytes."""
    data = origin.backend.read_manifest(prefix)
    if data is None:
        raise ReplicateError(f"task '{origin.task.id}': copy {prefix} has no manifest")
    manifest = parse_manifest(data)
    building = encode_manifest(building_manifest(manifest.task, prefix, manifest.start))
    log.info("task '%s': copying %s from %s to %s", origin.task.id, prefix, origin.name, side.name)
    with copy_transaction(side.backend, prefix, building_manifest=building) as copy:
        for record in manifest.objects:
            interrupts.check()
            _copy_object(origin, side, copy, manifest, record)
        interrupts.check()
        until = side.backend.retain_until(prefix)  # Object Lock: the target's own date
        if until != manifest.retain_until:
            data = encode_manifest(replace(manifest, retain_until=until))
        copy.commit(data)  # else the source's own final manifest, byte for byte
    return manifest.size


def _copy_object(
    origin: _Side, side: _Side, copy: CopyWriter, manifest: Manifest, record: ObjectRecord
) -> None:
    """Stream one object, checking it against the origin's manifest on the way."""
    context = (
        f"task '{origin.task.id}': replicating copy {manifest.prefix} from '{origin.name}'"
        f" to '{side.name}', object '{record.path}'"
    )
    algorithm = record.checksum_algorithm if record.checksum is not None else _NO_CHECK
    hasher = new_hasher(algorithm) if algorithm != _NO_CHECK else None
    sink = copy.open_object(record.path, alloc_size=record.size)
    size = 0
    try:
        with origin.backend.open_object_reader(manifest.prefix, record.path) as reader:
            # at most one byte more than recorded: a longer object differs, whatever it is
            while chunk := reader.read(min(block_size(origin.task), record.size + 1 - size)):
                if hasher is not None:
                    hasher.update(chunk)
                sink.write(memoryview(chunk))
                size += len(chunk)
                if size > record.size:
                    break
        digest = hasher.hexdigest() if hasher is not None else None
        problems = differences(record, size, digest)
        if problems:
            raise ReplicateError(
                f"{context}: differs from the manifest of '{origin.name}': {'; '.join(problems)};"
                f" the new copy on '{side.name}' is rolled back"
            )
        stored = sink.close()
    except (BackendError, OSError) as error:
        sink.abort()
        raise ReplicateError(
            f"{context}: {error}; the new copy on '{side.name}' is rolled back"
        ) from error
    except BaseException:
        sink.abort()
        raise
    if stored != size:
        raise BackendError(f"{context}: {side.name} reports {stored} bytes stored, {size} written")
