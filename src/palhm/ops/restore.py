"""`palhm restore TASK PREFIX|latest [PATH...]`: undo a copy, object by object.

Only complete copies are restored (their manifest says what each object must be).
Each selected object is streamed from the backend into its `restore` pipeline and
checked against the manifest while it streams (feed.py states the guarantee on a
mismatch). Objects go one at a time, in object-group dependency order (a group's
objects after those of every group it depends on; config order within a group);
the first failure stops the restore and names what was and was not restored.

`--to DIR` writes the selected objects that have no restore pipeline as files
under DIR (created 0700; files 0600, written under a temporary name and renamed
only once they matched the manifest; an existing file is never overwritten).
Without `--to`, naming such an object is a usage error and, when no PATH is
named, such objects are skipped and listed. `--verify-first` reads each object
once to check it before anything is fed to its restore pipeline.

Errors: UsageError (exit 2, nothing run) for an unknown prefix or path, an
incomplete or legacy copy, a file that exists under DIR; StoredObjectError,
PipelineError, BackendError (exit 1) at run time.
"""

from __future__ import annotations

import contextlib
import graphlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import IO, Final

from palhm import records
from palhm.backends.base import Backend, CopyInfo
from palhm.engine.checksum import new_hasher
from palhm.engine.graph import group_dependencies
from palhm.engine.progress import human_size
from palhm.errors import BackendError, PalhmError, UsageError, format_argv
from palhm.manifest import Manifest, ObjectRecord
from palhm.model import DEFAULT_GROUP, BackupObject, BackupTask, Config, Exec
from palhm.ops import operations
from palhm.ops.feed import StoredObjectError, differences, feed_pipeline
from palhm.records import record

log = logging.getLogger(__name__)

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


@record
class Step:
    """One object to restore: through `stages`, or (no stages) as a file / checked only."""

    record: ObjectRecord
    group: str
    stages: tuple[Exec, ...]


@record
class Plan:
    task: BackupTask
    copy: CopyInfo
    location: str
    steps: tuple[Step, ...]
    skipped: tuple[str, ...]  # objects without a restore pipeline, no --to


# --------------------------------------------------------------------------- planning


def open_copy(config: Config, task: BackupTask, prefix: str) -> tuple[Backend, CopyInfo, Manifest]:
    """The backend, the complete copy named by `prefix` (or `latest`), its manifest."""
    backend = operations.open_backend(config, task)
    copy = operations.resolve_copy(backend, task, prefix, legacy_latest=False)
    if copy.state == "legacy":
        raise UsageError(
            f"task '{task.id}': copy {copy.prefix} has no manifest (made by the original"
            " PALHM): restore its objects with 'palhm get'"
        )
    if copy.state != "complete":
        raise UsageError(
            f"task '{task.id}': copy {copy.prefix} is incomplete (a run in progress or an"
            " interrupted one): it cannot be restored"
        )
    return backend, copy, operations.load_manifest(backend, task, copy)


def restore_order(
    task: BackupTask, records: Sequence[ObjectRecord]
) -> list[tuple[str, ObjectRecord]]:
    """(group, record) in dependency order: groups topologically (ties by config
    order), objects in config order within a group; objects the config no longer
    names are in the group `default`, after the named ones."""
    by_path = {obj.path: obj for obj in task.objects}
    deps = group_dependencies(task.groups, task.objects)
    rank = {path: i for i, path in enumerate(by_path)}
    sorter = graphlib.TopologicalSorter(deps)
    sorter.prepare()
    declared = list(deps)
    ordered: list[tuple[str, ObjectRecord]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=declared.index)
        for group in ready:
            members = [r for r in records if _group(by_path.get(r.path)) == group]
            members.sort(key=lambda r: rank.get(r.path, len(rank)))
            ordered.extend((group, r) for r in members)
            sorter.done(group)
    return ordered


def _group(obj: BackupObject | None) -> str:
    return obj.group if obj is not None else DEFAULT_GROUP


def select(
    manifest: Manifest, task: BackupTask, copy: CopyInfo, paths: Sequence[str]
) -> list[ObjectRecord]:
    """The manifest records named by `paths` (all when empty). UsageError if unknown."""
    if not paths:
        return list(manifest.objects)
    chosen: list[ObjectRecord] = []
    for path in paths:
        wanted = operations._normalise(path)
        record = operations._find_record(manifest, task, copy, wanted)
        if record not in chosen:
            chosen.append(record)
    return chosen


def plan_restore(
    config: Config, task: BackupTask, prefix: str, paths: Sequence[str], *, to_dir: Path | None
) -> tuple[Backend, Plan]:
    """What `palhm restore` will do; UsageError (nothing run) for any problem found."""
    backend, copy, manifest = open_copy(config, task, prefix)
    by_path = {obj.path: obj for obj in task.objects}
    steps: list[Step] = []
    skipped: list[str] = []
    missing_pipeline: list[str] = []
    for group, entry in restore_order(task, select(manifest, task, copy, paths)):
        obj = by_path.get(entry.path)
        stages = obj.restore if obj is not None else ()
        if stages or to_dir is not None:
            steps.append(Step(entry, group, stages))
        elif paths:
            missing_pipeline.append(entry.path)
        else:
            skipped.append(entry.path)
    if missing_pipeline:
        raise UsageError(
            f"task '{task.id}': no restore pipeline for {', '.join(missing_pipeline)}:"
            " use --to DIR to write it as a file, or 'palhm get'"
        )
    if to_dir is not None:
        _check_targets(to_dir, steps)
    return backend, Plan(task, copy, backend.describe(), tuple(steps), tuple(skipped))


def _check_targets(to_dir: Path, steps: Sequence[Step]) -> None:
    if to_dir.exists() and not to_dir.is_dir():
        raise UsageError(f"--to {to_dir}: not a directory")
    existing = [str(to_dir / s.record.path) for s in steps if not s.stages]
    existing = [name for name in existing if os.path.lexists(name)]
    if existing:
        raise UsageError(f"--to: would overwrite {', '.join(existing)} (remove it first)")


def plan_text(plan: Plan, to_dir: Path | None) -> str:
    """What `restore --dry-run` prints: the copy, and each object in order with argv."""
    total = sum(s.record.size for s in plan.steps)
    lines = [
        f"task '{plan.task.id}': restore copy {plan.copy.prefix} from {plan.location}:"
        f" {len(plan.steps)} object(s), {human_size(total)}, in this order"
    ]
    for number, step in enumerate(plan.steps, 1):
        record = step.record
        lines.append(
            f"  {number}. {record.path} (group '{step.group}', {human_size(record.size)},"
            f" {record.checksum_algorithm})"
        )
        if step.stages:
            lines.append("       | " + " | ".join(format_argv(s.argv) for s in step.stages))
        else:
            lines.append(f"       > {to_dir / record.path if to_dir else '?'}")
    for path in plan.skipped:
        lines.append(f"  skipped: {path} (no restore pipeline; --to DIR writes it as a file)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running


def run_restore(
    backend: Backend,
    plan: Plan,
    *,
    to_dir: Path | None,
    verbosity: int,
    verify_first: bool = False,
    cancel: threading.Event | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Restore every step in order; returns one report line per object.

    The first failure raises (see the module doc), with the objects already
    restored and those not restored named in the message. `env` is added to every
    stage's environment (drills).
    """
    done: list[str] = []
    for index, step in enumerate(plan.steps):
        try:
            done.append(
                restore_step(
                    backend,
                    plan,
                    step,
                    to_dir=to_dir,
                    verbosity=verbosity,
                    verify_first=verify_first,
                    cancel=cancel,
                    env=env,
                )
            )
        except PalhmError as error:
            rest = [s.record.path for s in plan.steps[index + 1 :]]
            raise _with_progress(error, [s.record.path for s in plan.steps[:index]], rest) from None
    return done


def _with_progress(error: PalhmError, restored: list[str], left: list[str]) -> PalhmError:
    note = f"restored before the failure: {', '.join(restored) or 'none'}"
    if left:
        note += f"; not restored: {', '.join(left)}"
    error.args = (f"{error}\n{note}",)
    return error


def context_of(plan: Plan, step: Step) -> str:
    return f"task '{plan.task.id}', copy {plan.copy.prefix}, object '{step.record.path}', restore"


def restore_step(
    backend: Backend,
    plan: Plan,
    step: Step,
    *,
    to_dir: Path | None,
    verbosity: int,
    verify_first: bool = False,
    cancel: threading.Event | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Restore one object; returns its report line. Raises on failure."""
    record, context = step.record, context_of(plan, step)
    if verify_first:
        _verify(backend, plan, step, context)
    block = operations.block_size(plan.task)
    stages = tuple(with_env(s, env) for s in step.stages)
    with _reader(backend, plan, step, context) as reader:
        if stages:
            feed_pipeline(
                stages,
                reader,
                expected=record,
                context=context,
                verbosity=verbosity,
                block_size=block,
                cancel=cancel,
            )
            how = "through " + " | ".join(s.label for s in stages)
        elif to_dir is not None:
            target = write_file(reader, record, to_dir, block, context)
            how = f"to {target}"
        else:
            check_stream(reader, record, block, context)
            how = "read and checked only"
    log.info("%s: done (%s)", context, how)
    return f"ok  {record.path}  {record.size} bytes  {how}"


def with_env(command: Exec, env: dict[str, str] | None) -> Exec:
    """`command` with `env` added over its own variables."""
    if not env:
        return command
    return records.replace(command, env=MappingProxyType({**command.env, **env}))


@contextlib.contextmanager
def _reader(backend: Backend, plan: Plan, step: Step, context: str) -> Iterator[IO[bytes]]:
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(
                backend.open_object_reader(plan.copy.prefix, step.record.path)
            )
        except BackendError as error:
            raise StoredObjectError(f"{context}, stored object: {error}") from None
        yield reader


def _verify(backend: Backend, plan: Plan, step: Step, context: str) -> None:
    with _reader(backend, plan, step, context) as reader:
        check_stream(reader, step.record, operations.block_size(plan.task), context)


def check_stream(reader: IO[bytes], record: ObjectRecord, block: int, context: str) -> None:
    """Read the whole object and compare it with the manifest (StoredObjectError)."""
    size, digest = _copy(reader, record, block, None, context)
    _compare(record, size, digest, context)


def _copy(
    reader: IO[bytes], record: ObjectRecord, block: int, out: IO[bytes] | None, context: str
) -> tuple[int, str | None]:
    hasher = new_hasher(record.checksum_algorithm)
    size = 0
    try:
        while data := reader.read(block):
            size += len(data)
            if hasher is not None:
                hasher.update(data)
            if out is not None:
                out.write(data)
    except BackendError as error:
        raise StoredObjectError(f"{context}, stored object: reading failed: {error}") from None
    return size, hasher.hexdigest() if hasher is not None else None


def _compare(record: ObjectRecord, size: int, digest: str | None, context: str) -> None:
    if problems := differences(record, size, digest):
        raise StoredObjectError(f"{context}, stored object: {'; '.join(problems)}")


def _make_dirs(top: Path, leaf: Path) -> None:
    """Create `top` and every directory down to `leaf`, each with DIR_MODE at creation
    (pathlib gives intermediate directories the umask's mode)."""
    top.parent.mkdir(parents=True, exist_ok=True)
    for directory in [top, *reversed(leaf.relative_to(top).parents[:-1]), leaf]:
        path = top / directory if directory != top else top
        path.mkdir(mode=DIR_MODE, exist_ok=True)


def write_file(
    reader: IO[bytes], record: ObjectRecord, to_dir: Path, block: int, context: str
) -> Path:
    """Write the object under `to_dir` (temporary name, renamed once it matched)."""
    target = to_dir / record.path
    _make_dirs(to_dir, target.parent)
    temp = target.with_name(f".{target.name}.palhm-partial")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        raise BackendError(f"{context}: cannot create {temp}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _copy(reader, record, block, out, context)
            _compare(record, size, digest, context)
            out.flush()
            os.fsync(out.fileno())
        if os.path.lexists(target):
            raise BackendError(f"{context}: {target} appeared meanwhile: not overwritten")
        os.rename(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)  # ours: created above with O_EXCL
        raise
    return target


def report_text(plan: Plan, lines: Sequence[str]) -> str:
    """What a successful restore prints."""
    head = f"task '{plan.task.id}': copy {plan.copy.prefix} restored from {plan.location}"
    out = [head, *("  " + line for line in lines)]
    out.extend(f"  skipped: {path} (no restore pipeline)" for path in plan.skipped)
    return "\n".join(out) + "\n"
