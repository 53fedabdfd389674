"""Operations on the copies of a backup task (doc/operations.md): `list`, `verify`, `get`.

All three only read: they take no lock, so they can run while a backup of the same
task is in progress (that copy shows as incomplete and is never chosen as `latest`).

`latest` names the newest copy of the task that has a manifest -- complete, or
damaged, in which case `verify` and `get` fail saying so instead of quietly using an
older one (for `get`, the newest legacy copy when there is none: copies made by the
original PALHM can be restored too). A copy dated in the future (made while the
clock was ahead) is never `latest`: palhm warns about it. Copies whose manifest
names another task sharing the root are that task's: never listed, counted or
chosen here, only mentioned. An unknown prefix or object path is a usage error
(exit 2); a copy that differs from its manifest, or cannot be verified, is a
`VerifyError` (exit 1).

Every object is read as a regular file, without following links (backend), and at
most one byte more than its manifest records: a file that grows without end, or
a FIFO or device put in its place, never hangs or exhausts palhm.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from palhm.backends import backend_class
from palhm.backends.base import Backend, CopyInfo
from palhm.engine.checksum import new_hasher
from palhm.engine.progress import human_duration, human_size
from palhm.engine.rotation import locked_reason
from palhm.errors import BackendError, PalhmError, UsageError
from palhm.manifest import Manifest, ObjectRecord, parse_manifest
from palhm.model import BackupTask, Config
from palhm.prefix import parse_prefix

log = logging.getLogger(__name__)

LATEST: Final = "latest"
DEFAULT_BLOCK_SIZE: Final = 1 << 20
_SHOWN_CHOICES: Final = 5  # prefixes or paths listed in an error message


class VerifyError(PalhmError):
    """A copy differs from its manifest (missing object, size or checksum differs), or
    cannot be verified (legacy or incomplete copy, damaged manifest)."""


# --------------------------------------------------------------------------- common


def backup_task(config: Config, task_id: str) -> BackupTask:
    """The backup task `task_id` (known to exist). UsageError if it is a routine."""
    task = config.tasks[task_id]
    if not isinstance(task, BackupTask):
        backups = sorted(t.id for t in config.tasks.values() if isinstance(t, BackupTask))
        raise UsageError(
            f"task '{task_id}' is a routine, not a backup task"
            f" (backup tasks: {', '.join(backups) or 'none'})"
        )
    return task


def at_destination(task: BackupTask, name: str | None) -> BackupTask:
    """The task seen through its destination `name` (None: the first one), as every
    operation on copies uses it. UsageError listing the names for an unknown one."""
    destinations = task.all_destinations()
    if name is None:
        return task if len(destinations) == 1 else task.at(destinations[0])
    for destination in destinations:
        if destination.name == name:
            return task if len(destinations) == 1 else task.at(destination)
    names = ", ".join(d.name for d in destinations)
    raise UsageError(f"task '{task.id}' has no destination '{name}' (destinations: {names})")


def open_backend(config: Config, task: BackupTask) -> Backend:
    """The task's backend, bound to its `backend-param`."""
    cls = backend_class(task.backend, config.modules)
    return cls(task.backend_param, task_id=task.id)


def existing_backend(config: Config, task: BackupTask) -> Backend:
    """open_backend for list, verify and get: a local root that does not exist is an
    error, so that an unmounted disk does not read as "no copies"."""
    backend = open_backend(config, task)
    root = getattr(backend, "root", None)
    if isinstance(root, Path) and not root.is_dir():
        where = "is the disk mounted?" if root.is_absolute() else f"relative to {Path.cwd()}"
        raise BackendError(f"task '{task.id}': the backup root {root} does not exist ({where})")
    return backend


def block_size(task: BackupTask) -> int:
    size = task.backend_param.get("block_size")
    return size if isinstance(size, int) and size > 0 else DEFAULT_BLOCK_SIZE


def resolve_copy(
    backend: Backend, task: BackupTask, prefix: str, *, legacy_latest: bool
) -> CopyInfo:
    """The copy named by `prefix`, or by `latest` (newest complete copy; with
    `legacy_latest`, the newest legacy copy when there is no complete one)."""
    copies = own_copies(backend, task)
    if prefix == LATEST:
        return _latest(copies, backend, task, legacy_latest=legacy_latest)
    for copy in copies:
        if copy.prefix == prefix:
            return copy
    newest = [c.prefix for c in copies[-_SHOWN_CHOICES:]]
    known = ", ".join(newest) if newest else "none"
    raise UsageError(
        f"task '{task.id}': no copy '{prefix}' in {backend.describe()} (newest copies: {known})"
    )


def own_copies(backend: Backend, task: BackupTask) -> list[CopyInfo]:
    """The task's copies under its root (oldest first); copies of other tasks sharing
    the root are left out, with a warning (doc/reliability.md, threat model)."""
    copies = backend.list_copies()
    others = sorted({str(c.task) for c in copies if c.state == "other-task"})
    if others:
        log.warning(
            "task '%s': %s also holds copies of task(s) %s: they are never listed, counted"
            " or rotated by this task (give each task a root of its own)",
            task.id, backend.describe(), ", ".join(f"'{t}'" for t in others),
        )  # fmt: skip
    return [c for c in copies if c.state != "other-task"]


def in_the_future(copy: CopyInfo, now: datetime) -> bool:
    """Whether the copy's prefix is later than `now` (made while the clock was ahead)."""
    when = parse_prefix(copy.prefix)
    return when is not None and when > now


def _latest(
    copies: Sequence[CopyInfo], backend: Backend, task: BackupTask, *, legacy_latest: bool
) -> CopyInfo:
    now = datetime.now(UTC)
    future = [c.prefix for c in copies if c.state != "incomplete" and in_the_future(c, now)]
    if future:
        log.warning(
            "task '%s': %s dated in the future (the clock was ahead when they were made):"
            " not taken for 'latest'",
            task.id, ", ".join(future),
        )  # fmt: skip
    copies = [c for c in copies if c.prefix not in future]
    states = (("complete", "damaged"), ("legacy",)) if legacy_latest else (("complete", "damaged"),)
    for state in states:
        found = [c for c in copies if c.state in state]
        if found:
            return found[-1]
    if any(c.state == "legacy" for c in copies):
        raise VerifyError(
            f"task '{task.id}': no complete copy in {backend.describe()}"
            " (only legacy copies without a manifest, which cannot be verified)"
        )
    raise VerifyError(f"task '{task.id}': no copies in {backend.describe()}")


def load_manifest(backend: Backend, task: BackupTask, copy: CopyInfo) -> Manifest:
    """The final manifest of a complete copy. VerifyError if missing or damaged."""
    where = f"task '{task.id}': copy {copy.prefix}"
    if copy.state == "damaged":
        raise VerifyError(f"{where} is damaged: {copy.problem}")
    data = backend.read_manifest(copy.prefix)
    if data is None:
        raise VerifyError(f"{where} has no manifest")
    try:
        manifest = parse_manifest(data)
    except ValueError as error:
        raise VerifyError(f"{where}: damaged manifest: {error}") from None
    if manifest.state != "complete":
        raise VerifyError(f"{where} is still being built (manifest state '{manifest.state}')")
    return manifest


def _age(copy: CopyInfo, now: datetime) -> float | None:
    when = parse_prefix(copy.prefix)
    return (now - when).total_seconds() if when is not None else None


def _shown_age(age: float | None) -> str:
    if age is None:
        return "?"
    if age < 0:
        return f"in {human_duration(-age)} (future)"
    return human_duration(age)


def _shown(path: str) -> str:
    """An object path as one line of output: control characters escaped, so a name
    cannot forge lines of a report."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


# --------------------------------------------------------------------------- list


def list_all_text(config: Config, task: BackupTask, *, as_json: bool) -> str:
    """`palhm list TASK` of a task with several destinations: each destination's copies
    under a heading (JSON: a list of {name, backend, location, copies})."""
    parts: list[Any] = []
    for destination in task.all_destinations():
        seen = task.at(destination)
        if as_json:
            backend = existing_backend(config, seen)
            copies = json.loads(list_text(config, seen, as_json=True))
            parts.append(
                {
                    "name": destination.name,
                    "backend": destination.backend,
                    "location": backend.describe(),
                    "copies": copies,
                }
            )
        else:
            heading = f"destination '{destination.name}' ({destination.backend}):"
            parts.append(heading + "\n" + list_text(config, seen, as_json=False))
    if as_json:
        return json.dumps(parts, indent=2) + "\n"
    return "\n".join(parts)


def list_text(config: Config, task: BackupTask, *, as_json: bool) -> str:
    """The copies under the task's root, oldest first (text table, or a JSON list)."""
    backend = existing_backend(config, task)
    copies = own_copies(backend, task)
    now = datetime.now(UTC)
    marks = copy_marks(backend, copies)
    if as_json:
        return json.dumps([_copy_json(c, now, marks) for c in copies], indent=2) + "\n"
    if not copies:
        return f"task '{task.id}': no copies in {backend.describe()}\n"
    return _copy_table(task, backend, copies, now, marks)


def copy_marks(backend: Backend, copies: Sequence[CopyInfo]) -> dict[str, list[str]]:
    """prefix -> its marks: `pinned`, `suspect`, `locked` (Object Lock retention not
    yet expired; doc/operations.md)."""
    from palhm.engine.pins import read_pins
    from palhm.engine.rotating import suspect_copies

    pins, suspect = read_pins(backend), suspect_copies(backend, copies)
    now = datetime.now(UTC)
    return {
        c.prefix: [
            mark
            for mark, on in (
                ("pinned", c.prefix in pins),
                ("suspect", c.prefix in suspect),
                ("locked", c.locked(now)),
            )
            if on
        ]
        for c in copies
    }


def _copy_json(copy: CopyInfo, now: datetime, marks: dict[str, list[str]]) -> dict[str, Any]:
    age = _age(copy, now)
    return {
        "marks": marks.get(copy.prefix, []),
        "prefix": copy.prefix,
        "state": copy.state,
        "objects": copy.nb_objects,
        "size": copy.size,
        "size-human": human_size(copy.size),
        "age-seconds": round(age) if age is not None else None,
        "location": copy.location,
        "problem": copy.problem or None,
        "retain-until": _utc(copy.retain_until) if copy.retain_until else None,
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _copy_table(
    task: BackupTask,
    backend: Backend,
    copies: Sequence[CopyInfo],
    now: datetime,
    marks: dict[str, list[str]],
) -> str:
    counted = [c for c in copies if c.counted]
    rows = [("PREFIX", "STATE", "OBJECTS", "SIZE", "AGE")]
    for copy in copies:
        age = _age(copy, now)
        rows.append(
            (
                copy.prefix,
                ",".join([copy.state, *marks.get(copy.prefix, [])]),
                str(copy.nb_objects),
                human_size(copy.size),
                _shown_age(age),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"task '{task.id}': copies in {backend.describe()}, oldest first"]
    for row in rows:
        left = f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}"
        right = f"{row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}"
        lines.append(f"{left}  {right}")
    total = sum(c.size for c in counted)
    lines.extend(f"damaged: {c.prefix}: {c.problem}" for c in copies if c.state == "damaged")
    lines.extend(
        f"{locked_reason(c.retain_until)}: {c.prefix} (rotation keeps it)"
        for c in counted
        if c.retain_until is not None and c.locked(now)
    )
    future = [c.prefix for c in counted if in_the_future(c, now)]
    if future:
        lines.append(
            f"dated in the future (the clock was ahead): {', '.join(future)}; never"
            " taken for 'latest', never counted by rotation"
        )
    lines.append(
        f"{_count(len(counted), 'counted copy', 'counted copies')}, {human_size(total)}"
        f" ({total} bytes)"
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- pin


def pin(config: Config, task: BackupTask, prefix: str, *, pinned: bool) -> str:
    """Pin (rotation never removes it) or unpin one complete or legacy copy, under the
    root's lock so a running rotation never misses a pin. The line to print."""
    from palhm.engine.pins import set_pin

    backend = open_backend(config, task)
    with backend.lock():
        copy = resolve_copy(backend, task, prefix, legacy_latest=True)
        if not copy.counted:
            raise UsageError(f"task '{task.id}': copy {copy.prefix} is incomplete")
        changed = set_pin(backend, copy.prefix, pinned=pinned)
    word = "pinned" if pinned else "unpinned"
    already = "" if changed else " (it already was)"
    return f"task '{task.id}': copy {copy.prefix} {word}{already}\n"


# --------------------------------------------------------------------------- verify


def verify(config: Config, task: BackupTask, prefix: str) -> str:
    """Re-read every object of a copy and compare size and checksum with its manifest.

    Returns the report on success. Raises VerifyError listing every difference
    (missing object, size differs, checksum differs, object not in the manifest),
    or saying why the copy cannot be verified; UsageError for an unknown prefix.
    """
    tally: list[int] = []  # bytes read, one entry per object read
    try:
        report = _verify(config, task, prefix, tally)
    except UsageError:
        raise  # a mistyped prefix says nothing about the copies
    except BaseException:
        _verify_metrics(config, task, success=False, tally=tally)
        raise
    _verify_metrics(config, task, success=True, tally=tally)
    return report


def _verify_metrics(config: Config, task: BackupTask, *, success: bool, tally: list[int]) -> None:
    """Write the verify series to the metrics textfile, if the config names one."""
    import logging
    import time

    from palhm.notify.metrics import VerifyMetrics, update_textfile

    if config.metrics_textfile is None:
        return
    run = VerifyMetrics(task.id, time.time(), success, len(tally), sum(tally))
    try:
        update_textfile(config.metrics_textfile, run)
    except OSError as error:
        logging.getLogger(__name__).warning(
            "task '%s': cannot write metrics to %s: %s", task.id, config.metrics_textfile, error
        )


def _verify(config: Config, task: BackupTask, prefix: str, tally: list[int]) -> str:
    backend = existing_backend(config, task)
    copy = resolve_copy(backend, task, prefix, legacy_latest=False)
    if copy.state not in ("complete", "damaged"):
        raise VerifyError(_unverifiable(task, copy))
    manifest = load_manifest(backend, task, copy)
    problems: list[str] = []
    for record in manifest.objects:
        problems.extend(_check_object(backend, task, copy.prefix, record, tally=tally))
    problems.extend(_extra_objects(backend, copy.prefix, manifest))
    head = f"task '{task.id}': copy {copy.prefix} in {backend.describe()}"
    if problems:
        lines = [f"{head}: {len(problems)} problem(s) found:"]
        raise VerifyError("\n".join(lines + ["  " + p for p in problems]))
    return _verify_report(head, manifest)


def _unverifiable(task: BackupTask, copy: CopyInfo) -> str:
    if copy.state == "legacy":
        return (
            f"task '{task.id}': copy {copy.prefix} has no manifest (made by the original"
            " PALHM): there is nothing to verify it against"
        )
    return (
        f"task '{task.id}': copy {copy.prefix} is incomplete (a run in progress or an"
        " interrupted one): it cannot be verified"
    )


def _check_object(
    backend: Backend,
    task: BackupTask,
    prefix: str,
    record: ObjectRecord,
    *,
    tally: list[int] | None = None,
) -> list[str]:
    """The differences between a stored object and its manifest record ([] if none);
    the bytes read are appended to `tally`."""
    try:
        with backend.open_object_reader(prefix, record.path) as reader:
            size, digest = _read_all(
                reader, record.checksum_algorithm, block_size(task), limit=record.size + 1
            )
        if tally is not None:
            tally.append(size)
    except BackendError as error:
        if "InvalidObjectState" in str(error):  # S3: archived (GLACIER, DEEP_ARCHIVE)
            shown = _shown(record.path)
            return [f"archived object: {shown} (restore it from its storage class to verify)"]
        return [f"missing object: {_shown(record.path)} ({_first_line(error)})"]
    except ValueError as error:  # unknown checksum algorithm in the manifest
        return [f"cannot check {_shown(record.path)}: {error}"]
    except OSError as error:  # read error (EIO) on a damaged medium
        return [f"cannot read {_shown(record.path)}: {error.strerror or error}"]
    return _differences(record, size, digest)


def _differences(record: ObjectRecord, size: int, digest: str | None) -> list[str]:
    found: list[str] = []
    if size > record.size:
        found.append(
            f"size differs: {_shown(record.path)} (manifest {record.size} bytes, stored"
            " more: reading stopped there)"
        )
        return found
    if size != record.size:
        found.append(
            f"size differs: {_shown(record.path)} (manifest {record.size} bytes,"
            f" stored {size} bytes)"
        )
    if record.checksum is not None and digest != record.checksum:
        found.append(
            f"checksum differs: {_shown(record.path)} ({record.checksum_algorithm}: manifest"
            f" {record.checksum}, stored {digest})"
        )
    return found


def _read_all(
    reader: IO[bytes],
    algorithm: str,
    chunk: int,
    *,
    out: BinaryIO | None = None,
    limit: int | None = None,
) -> tuple[int, str | None]:
    """Read a stream to its end (or `limit` bytes) in bounded memory, copying it to
    `out` if given: (size, hex digest or None)."""
    hasher = new_hasher(algorithm)
    size = 0
    while data := reader.read(chunk if limit is None else min(chunk, limit - size)):
        if out is not None:
            _write_out(out, data)
        size += len(data)
        if hasher is not None:
            hasher.update(data)
    return size, hasher.hexdigest() if hasher is not None else None


class OutputError(PalhmError):
    """The object could not be written where `get` sends it (full disk, closed fd)."""


def _write_out(out: BinaryIO, data: bytes) -> None:
    try:
        out.write(data)
    except BrokenPipeError:
        raise  # the reader stopped early (`| head`): the CLI ends quietly
    except OSError as error:
        reason = error.strerror or "standard output is closed or not writable"
        raise OutputError(f"cannot write the object out: {reason}") from None


def _extra_objects(backend: Backend, prefix: str, manifest: Manifest) -> list[str]:
    """What the copy holds besides its manifest's objects: files, and anything that is
    no regular file (a link, FIFO, device, mounted file system), wherever it is."""
    known = {record.path for record in manifest.objects}
    parents = {p for r in manifest.objects for p in _parents(r.path)}
    try:
        stored = list(backend.iter_entries(prefix))
    except NotImplementedError:  # optional in the backend contract
        return []
    except BackendError as error:
        return [f"cannot list the copy: {_first_line(error)}"]
    found: list[str] = []
    for path, kind in stored:
        if kind == "file" and path not in known:
            found.append(f"object not in the manifest: {_shown(path)}")
        elif kind == "directory" and path not in parents:
            found.append(f"directory not in the manifest: {_shown(path)}")
        elif kind not in ("file", "directory"):
            found.append(f"not a regular file: {_shown(path)} (a {kind})")
    return found


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _verify_report(head: str, manifest: Manifest) -> str:
    algorithms = sorted({r.checksum_algorithm for r in manifest.objects}) or ["none"]
    how = "size only" if algorithms == ["none"] else f"size and {', '.join(algorithms)}"
    lines = [
        f"{head}: OK, {_count(len(manifest.objects), 'object', 'objects')},"
        f" {human_size(manifest.size)}"
        f" ({manifest.size} bytes) match the manifest ({how})"
    ]
    width = max((len(r.path) for r in manifest.objects), default=0)
    lines.extend(f"  ok  {_shown(r.path):<{width}}  {r.size:>14} bytes" for r in manifest.objects)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- get


def get_object(config: Config, task: BackupTask, prefix: str, path: str, out: BinaryIO) -> None:
    """Stream object PATH of a copy (`latest` or a prefix) to `out` in bounded memory.

    For a complete copy the data is checked against the manifest while it streams;
    a difference raises VerifyError after the last byte (so `set -o pipefail` in the
    restore pipeline catches a damaged object). UsageError for an unknown prefix or path.
    """
    backend = existing_backend(config, task)
    copy = resolve_copy(backend, task, prefix, legacy_latest=True)
    if copy.state == "incomplete":
        raise UsageError(f"task '{task.id}': copy {copy.prefix} is incomplete")
    wanted = _normalise(path)
    record = None
    if copy.state != "legacy":
        record = _find_record(load_manifest(backend, task, copy), task, copy, wanted)
    algorithm = record.checksum_algorithm if record is not None else "none"
    limit = record.size + 1 if record is not None else None
    try:
        with backend.open_object_reader(copy.prefix, wanted) as reader:
            size, digest = _read_all(reader, algorithm, block_size(task), out=out, limit=limit)
        _flush_out(out)
    except BackendError as error:
        raise BackendError(f"task '{task.id}': copy {copy.prefix}: {error}") from None
    if record is not None and (problems := _differences(record, size, digest)):
        raise VerifyError(
            f"task '{task.id}': copy {copy.prefix}: the object written differs from the"
            f" manifest: {'; '.join(problems)}"
        )


def _flush_out(out: BinaryIO) -> None:
    try:
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        reason = error.strerror or "standard output is closed or not writable"
        raise OutputError(f"cannot write the object out: {reason}") from None


def _normalise(path: str) -> str:
    clean = posixpath.normpath(path.strip("/"))
    if clean in ("", ".") or clean.split("/")[0] == "..":
        raise UsageError(f"'{path}' is not an object path")
    return clean


def _find_record(manifest: Manifest, task: BackupTask, copy: CopyInfo, path: str) -> ObjectRecord:
    for record in manifest.objects:
        if record.path == path:
            return record
    paths = [r.path for r in manifest.objects]
    shown = ", ".join(paths[:_SHOWN_CHOICES]) + (", ..." if len(paths) > _SHOWN_CHOICES else "")
    raise UsageError(
        f"task '{task.id}': no object '{path}' in copy {copy.prefix} (objects: {shown or 'none'})"
    )


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__
