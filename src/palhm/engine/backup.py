"""One backup run: lock, clean up, build one copy through the object DAG, commit, rotate.

    run_backup(task, *, modules, nb_workers, verbosity) -> BackupResult

Steps (doc/design.md#backups-objects-and-groups, #copy-protocol, #locking, #signals,
#rotation-order):
1. Lock the backend root (LockedError at once if another run has it).
2. Remove incomplete copies left by crashed runs (only palhm's own staging names).
3. PREFIX from the run's start time. If a copy of that name exists the run fails
   with CollisionError before writing anything: copies are never shared or
   overwritten, and palhm does not invent another name for a copy (a suffix would
   break the "PREFIX is the start time" rule others sort and script by).
4. `copy_transaction`: objects are built by a pool of at most nb-workers threads in
   object-group order; each runs its pipeline into a sink of the copy, hashing as the
   data streams. On the first failure, or SIGINT/SIGTERM: nothing new starts, the
   running pipelines are killed, the copy is rolled back, and the root error (or
   Interrupted, after the clean-up) is raised. On success the manifest is committed
   last.
5. Rotation (only after commit, never undoing it): old copies removed oldest first;
   a failure there is a RotationError saying the new copy is safe.

Threads: run_backup is called from the main thread, which only schedules and waits
with short timeouts so that Python signal handlers run promptly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

from palhm import faults
from palhm.backends import backend_class
from palhm.backends.base import Backend, CopyWriter, ObjectSink
from palhm.engine import interrupts
from palhm.engine.checksum import new_hasher
from palhm.engine.execute import PipelineResult, run_pipeline
from palhm.engine.fanout import DestinationError
from palhm.engine.graph import GroupSchedule
from palhm.engine.guards import SuspectCopyError, previous_sizes, suspect_reasons
from palhm.engine.progress import ProgressBoard, open_board
from palhm.engine.rotating import remove_incomplete, rotate_task
from palhm.engine.rotation import RotationPlan
from palhm.errors import (
    RESOURCE_ERRNOS,
    BackendError,
    Cancelled,
    DeleteDeniedError,
    LockedError,
    PipelineError,
    ResourceError,
    RotationError,
)
from palhm.manifest import (
    Manifest,
    ObjectRecord,
    StageRecord,
    building_manifest,
    encode_manifest,
    parse_manifest,
)
from palhm.model import DEFAULT_VL, BackupObject, BackupTask
from palhm.prefix import make_prefix
from palhm.records import record, replace

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE: Final = 1 << 20  # aws-s3; localfs has `block-size` (128 KiB by default)
POLL_INTERVAL: Final = 0.1  # s: longest the main thread waits before looking at signals
LOCK_POLL: Final = 1.0  # s between two tries to take a held lock (lock-wait)
RETRY_DELAY_MAX: Final = 3600.0  # s: an object's doubling retry delay stops growing here


@record
class DestinationOutcome:
    """What one run did on one destination: `status` "ok" (the new copy is committed
    there) or "failed" (`error`: why; nothing of the new copy is left there)."""

    name: str
    backend: str
    location: str
    status: Literal["ok", "failed"]
    error: str | None = None
    copies_kept: int | None = None


@record
class BackupResult:
    """A committed copy: where it is, its manifest, and what rotation removed.
    `location` and `rotation` are those of the first destination holding the copy;
    `destinations` says what happened on each destination."""

    task: str
    prefix: str
    location: str
    manifest: Manifest
    rotation: RotationPlan
    destinations: tuple[DestinationOutcome, ...] = ()

    @property
    def size(self) -> int:
        return self.manifest.size

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(d.copy.prefix for d in self.rotation.remove)


def run_backup(
    task: BackupTask,
    *,
    modules: frozenset[str] | set[str] = frozenset(),
    nb_workers: int = 0,
    verbosity: int = DEFAULT_VL,
) -> BackupResult:
    """Make one copy of `task` and rotate old ones. See the module docstring.

    Raises LockedError, CollisionError, PipelineError, BackendError (nothing of the new
    copy remains), RotationError (the new copy is committed) or Interrupted.

    A task with several destinations goes through
    palhm.engine.destinations.run_destinations, never here.
    """
    if len(task.destinations) > 1:
        raise ValueError(f"task '{task.id}' has several destinations: use run_destinations")
    backend = make_backend(task, modules)
    # Load the hash module now: imported lazily by a worker, it needs file descriptors
    # at the moment the pipelines hold most of them (`ulimit -n` near the need).
    new_hasher(task.checksum)
    interrupts.check()
    with errors_name_task(task), _lock(backend, task):
        phase_lock_acquired()
        remove_incomplete(backend, task)
        baseline = find_baseline(backend, task) if task.max_shrink is not None else None
        interrupts.check()
        start = datetime.now(UTC)
        prefix = make_prefix(task.prefix, start)
        building = encode_manifest(building_manifest(task.id, prefix, start))
        with copy_transaction(backend, prefix, building_manifest=building) as copy:
            records = ObjectBuilder(task, copy, nb_workers=nb_workers, verbosity=verbosity).run()
            manifest = final_manifest(task, prefix, start, records, baseline)
            manifest = replace(manifest, retain_until=backend.retain_until(prefix))
            phase_before_commit()
            interrupts.check()  # a signal after the last object still means "no copy"
            copy.commit(encode_manifest(manifest))
        phase_committed()
        location = f"{backend.describe()}/{prefix}"
        log.info(
            "task '%s': copy %s committed: %d object(s), %d bytes",
            task.id, location, len(records), manifest.size,
        )  # fmt: skip
        name = task.all_destinations()[0].name
        if manifest.suspect:
            outcome = DestinationOutcome(name, task.backend, location, "ok")
            raise suspect_error(task, location, manifest, (outcome,))
        plan = rotate(backend, task, current=prefix)
    outcome = DestinationOutcome(name, task.backend, location, "ok", copies_kept=len(plan.keep))
    return BackupResult(task.id, prefix, location, manifest, plan, (outcome,))


# Crash points of a run (test facility, tests/reliability), each placed once and
# called from the single- and the several-destination run alike.


def phase_lock_acquired() -> None:
    faults.crashpoint("lock-acquired")


def phase_copy_begun() -> None:
    faults.crashpoint("copy-begun")


def phase_before_commit() -> None:
    faults.crashpoint("before-commit")


def phase_committed() -> None:
    faults.crashpoint("committed")


def final_manifest(
    task: BackupTask,
    prefix: str,
    start: datetime,
    records: tuple[ObjectRecord, ...],
    baseline: Manifest | None,
) -> Manifest:
    """The manifest that commits a copy, suspect marks included (guards.py); the
    caller sets the destination's own `retain_until` (Object Lock)."""
    suspect = suspect_reasons(
        task,
        records,
        previous_sizes(baseline),
        previous_prefix=baseline.prefix if baseline else None,
    )
    return Manifest(
        task.id,
        prefix,
        start,
        datetime.now(UTC),
        records,
        host=os.uname().nodename,
        suspect=suspect,
    )


def suspect_error(
    task: BackupTask,
    location: str,
    manifest: Manifest,
    outcomes: tuple[DestinationOutcome, ...] = (),
) -> SuspectCopyError:
    """The copy is committed but looks wrong: no rotation, and the run fails."""
    for reason in manifest.suspect:
        log.error("task '%s': copy %s is suspect: %s", task.id, manifest.prefix, reason)
    no_plan = RotationPlan((), ())
    result = BackupResult(task.id, manifest.prefix, location, manifest, no_plan, outcomes)
    lines = [
        f"task '{task.id}': copy {location} is suspect: kept and marked in its manifest;"
        " rotation skipped, no older copy removed"
    ]
    lines.extend(f"  {reason}" for reason in manifest.suspect)
    return SuspectCopyError("\n".join(lines), result)


def find_baseline(backend: Backend, task: BackupTask) -> Manifest | None:
    """The manifest of the newest complete, non-suspect copy: what max-shrink compares
    with. None when there is none (a copy whose manifest cannot be read is skipped)."""
    for info in reversed(backend.list_copies()):
        if info.state != "complete":
            continue
        try:
            data = backend.read_manifest(info.prefix)
            manifest = parse_manifest(data) if data is not None else None
        except (BackendError, ValueError) as error:
            log.warning(
                "task '%s': cannot read the manifest of %s: %s", task.id, info.prefix, error
            )
            continue
        if manifest is not None and manifest.state == "complete" and not manifest.suspect:
            return manifest
    return None


def task_lock(backend: Backend, task: BackupTask) -> contextlib.AbstractContextManager[None]:
    """The root's lock for a whole operation (`palhm rotate`), waiting up to the task's
    `lock-wait` as a backup run does."""
    return _lock(backend, task)


@contextlib.contextmanager
def _lock(backend: Backend, task: BackupTask) -> Iterator[None]:
    """backend.lock(), trying again for up to `lock-wait` seconds while another run
    holds it (a signal ends the wait: Interrupted)."""
    with contextlib.ExitStack() as stack:
        _acquire(stack, backend, task)
        yield


def _acquire(stack: contextlib.ExitStack, backend: Backend, task: BackupTask) -> None:
    deadline = time.monotonic() + task.lock_wait
    announced = False
    while True:
        try:
            stack.enter_context(backend.lock())
            return
        except LockedError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if not announced:
                log.info("task '%s': %s; waiting up to %g s", task.id, error, task.lock_wait)
                announced = True
        if interrupts.CANCEL.wait(min(LOCK_POLL, left)):
            interrupts.check()


def make_backend(task: BackupTask, modules: frozenset[str] | set[str]) -> Backend:
    """The task's (first destination's) backend, bound to its parameters."""
    try:
        cls = backend_class(task.backend, modules)
    except KeyError:
        raise BackendError(f"task '{task.id}': backend '{task.backend}' is not available") from None
    return cls(task.backend_param, task_id=task.id)


@contextlib.contextmanager
def copy_transaction(
    backend: Backend, prefix: str, *, building_manifest: bytes
) -> Iterator[CopyWriter]:
    """Begin a copy; roll it back if the body raises anything (BaseException too).

    The body commits the copy as its last statement. A failing rollback is logged and
    the original error raised: the next run removes what was left.
    """
    copy = backend.begin_copy(prefix, building_manifest=building_manifest)
    phase_copy_begun()
    try:
        yield copy
    except BaseException:
        log.info("rolling back copy %s/%s", backend.describe(), prefix)
        try:
            copy.rollback()
        except DeleteDeniedError as error:
            if not backend.deletion_delegated:
                log.error("%s (the next run removes it)", error)
            else:  # a write-only host: its incomplete copy waits for `palhm rotate`
                log.warning("%s (left to the rotation host: delete: delegated)", error)
        except Exception as error:
            log.error("%s (the next run removes it)", error)
        raise


def rotate(backend: Backend, task: BackupTask, *, current: str) -> RotationPlan:
    """After-commit work: backend.after_commit, then rotation (engine/rotating.py).

    Raises RotationError (the new copy stays committed) or Interrupted (rotation is
    skipped when a signal arrived).
    """
    try:
        backend.after_commit(current)
    except BackendError as error:
        raise RotationError(f"task '{task.id}': {error}; the new copy {current} is safe") from error
    interrupts.check()
    return rotate_task(backend, task, current=current)


@contextlib.contextmanager
def errors_name_task(task: BackupTask) -> Iterator[None]:
    """Prefix backend and lock errors with the task, as every palhm message names it."""
    try:
        yield
    except (BackendError, LockedError) as error:
        if str(error).startswith("task '"):
            raise
        raise type(error)(f"task '{task.id}': {error}") from error


def worker_count(nb_workers: int) -> int | None:
    """Pool size for `nb-workers`: 0 = CPUs usable by this process, negative = the
    ThreadPoolExecutor default (None), positive = that many (doc/design.md#configuration)."""
    if nb_workers == 0:
        return len(os.sched_getaffinity(0))
    return nb_workers if nb_workers > 0 else None


class ObjectOpener(Protocol):
    """What the builder needs of a copy: a CopyWriter, or a FanoutCopy over several."""

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink: ...

    def discard_object(self, path: str) -> None: ...


class ObjectBuilder:
    """Builds every object of one copy: the scheduler loop of one run."""

    def __init__(
        self, task: BackupTask, copy: ObjectOpener, *, nb_workers: int, verbosity: int
    ) -> None:
        self.task = task
        self.copy = copy
        self.workers = worker_count(nb_workers)
        self.verbosity = verbosity
        self.block_size = int(task.backend_param.get("block_size", DEFAULT_BLOCK_SIZE))
        self.cancel = threading.Event()  # this run's own: set on failure or signal
        self.schedule = GroupSchedule(task.groups, task.objects)
        self.running: dict[Future[ObjectRecord], BackupObject] = {}
        self.records: list[ObjectRecord] = []
        self.failure: BaseException | None = None
        self.board = ProgressBoard(sys.stderr, enabled=False)  # the live one is set by run()

    def run(self) -> tuple[ObjectRecord, ...]:
        """Build all objects; raise the root failure after every worker stopped."""
        with (
            open_board(self.verbosity) as self.board,
            ThreadPoolExecutor(self.workers, thread_name_prefix="palhm-object") as pool,
        ):
            try:
                self._submit_ready(pool)
                while self.running:
                    self._wait_some()
                    self._submit_ready(pool)
            except BaseException as error:  # KeyboardInterrupt without palhm's handlers
                self._fail(error)
                raise
            finally:
                self._drain()
        self._raise_failure()
        order = {obj.path: index for index, obj in enumerate(self.task.objects)}
        return tuple(sorted(self.records, key=lambda r: order[r.path]))

    def _submit_ready(self, pool: ThreadPoolExecutor) -> None:
        self._notice_signal()
        if self.cancel.is_set():
            return
        for obj in self.schedule.ready():
            self.running[pool.submit(self._build, obj)] = obj

    def _wait_some(self) -> None:
        done, _ = wait(self.running, timeout=POLL_INTERVAL, return_when=FIRST_COMPLETED)
        self._notice_signal()
        for future in done:
            self._collect(future)

    def _collect(self, future: Future[ObjectRecord]) -> None:
        obj = self.running.pop(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._fail(error)
            return
        self.records.append(future.result())
        self.schedule.finished(obj)

    def _fail(self, error: BaseException) -> None:
        """Keep the first root error; a Cancelled is only ever a consequence."""
        if self.failure is None or (
            isinstance(self.failure, Cancelled) and not isinstance(error, Cancelled)
        ):
            self.failure = error
        self._cancel_all()

    def _notice_signal(self) -> None:
        if interrupts.CANCEL.is_set() or interrupts.received_signal() is not None:
            self._cancel_all()

    def _cancel_all(self) -> None:
        if not self.cancel.is_set():
            self.cancel.set()  # running pipelines see it and kill their processes
            for future in self.running:
                future.cancel()  # queued objects never start

    def _drain(self) -> None:
        """Wait (in short steps, so signal handlers run) for every started object."""
        while self.running:
            done, _ = wait(self.running, timeout=POLL_INTERVAL)
            for future in done:
                self._collect(future)

    def _raise_failure(self) -> None:
        interrupts.check()  # a signal is the reason when one arrived
        if self.failure is not None:
            raise self.failure
        if self.cancel.is_set() or not self.schedule.complete:
            raise Cancelled(f"task '{self.task.id}': cancelled before every object was built")

    def _build(self, obj: BackupObject) -> ObjectRecord:
        """Worker thread: run one object's pipeline into its sink."""
        context = f"task '{self.task.id}', object '{obj.path}'"
        if self.cancel.is_set():
            raise Cancelled(f"{context}: cancelled")
        start = datetime.now(UTC)
        progress = None
        if self.board.enabled:  # else no callback at all: nothing to draw
            self.board.start(obj.path)
            progress = self.board.reporter(obj.path)
        try:
            result, attempts = self._attempts(obj, context, progress)
            faults.crashpoint("object-closed")  # test facility (tests/reliability)
        except BackendError as error:
            if str(error).startswith(context) or isinstance(error, DestinationError):
                raise  # named already (a destination's names task and destination)
            raise type(error)(f"{context}: {error}") from error
        except OSError as error:
            if error.errno not in RESOURCE_ERRNOS:
                raise
            raise ResourceError(context, error) from error
        finally:
            self.board.finish(obj.path)
        return _record(obj, self.task.checksum, result, start, attempts)

    def _attempts(
        self, obj: BackupObject, context: str, progress: Callable[[int], None] | None
    ) -> tuple[PipelineResult, int]:
        """Run the object's pipeline, again from scratch (new processes, a new sink)
        after a failure while `retries` allow: (result, attempts made)."""
        delay = obj.retry_delay
        for attempt in range(1, obj.retries + 2):
            try:
                return self._run_pipeline(obj, context, progress), attempt
            except (PipelineError, BackendError) as error:
                if attempt > obj.retries or self.cancel.is_set():
                    raise
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                log.warning(
                    "%s: attempt %d of %d failed: %s; retrying in %g s",
                    context, attempt, obj.retries + 1, first, delay,
                )  # fmt: skip
                self.copy.discard_object(obj.path)
                if self.cancel.wait(delay):
                    raise
                delay = min(delay * 2, RETRY_DELAY_MAX)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _run_pipeline(
        self, obj: BackupObject, context: str, progress: Callable[[int], None] | None
    ) -> PipelineResult:
        sink = self.copy.open_object(obj.path, alloc_size=obj.alloc_size)
        faults.crashpoint("object-opened")  # test facility (tests/reliability)
        return run_pipeline(
            obj.pipeline,
            sink,
            context=context,
            verbosity=self.verbosity,
            hasher=new_hasher(self.task.checksum),
            block_size=self.block_size,
            cancel=self.cancel,
            progress=progress,
        )


def _record(
    obj: BackupObject, algorithm: str, result: PipelineResult, start: datetime, attempts: int = 1
) -> ObjectRecord:
    stages = tuple(StageRecord(s.argv, s.status, s.signal) for s in result.stages)
    return ObjectRecord(
        obj.path,
        result.size,
        algorithm,
        result.digest,
        start,
        datetime.now(UTC),
        stages,
        attempts=attempts,
    )
