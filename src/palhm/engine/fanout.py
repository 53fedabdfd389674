"""One object's bytes to several destinations at once (doc/backup.md#several-destinations).

A task with several destinations runs each object's pipeline once. The pipeline's
sink is a `FanoutSink`: every chunk palhm reads from the last stage is copied once
into a buffer of a small pool, and each destination's sink is fed those buffers by a
thread of its own, so one destination waiting (a disk flushing, an upload's parts in
flight) does not stop the others. Memory stays bounded (BUFFERS blocks, plus what
each destination's sink buffers anyway: nothing for localfs, a few parts for
aws-s3) and no temporary file is made. When every buffer is still in use the pump
waits: the slowest destination sets the pace. (Feeding the sinks one after the
other from the pump's thread made their waits add up: 1.32-1.38 times the slower
destination alone at 256 MiB, against 1.14-1.19 for queued writers and 0.9-1.1 for
this pool at 512 MiB, on the same loaded machine; bench/README.md.)

`Destinations` is the run's set of destinations and its `require` policy:

- `drop(target, error)` records a destination's failure. Under `require: all`, or
  when no destination is left, it raises the error (named after the destination):
  the object, and so the run, fails. Under `require: any` it returns and the others
  go on; the dropped destination's sinks are aborted at their next chunk, and its
  copy is rolled back by the main thread after the objects are built.
- `FanoutCopy` opens, for each object, a sink on every destination still in the run
  (what `ObjectBuilder` asks of a copy), and discards a failed attempt everywhere.

With a single destination none of this is used: its CopyWriter is handed to the
builder as it is, so the single-destination data path (splice into the object file
when there is no checksum) is exactly the same.

Threads: a FanoutSink is used by one worker thread (the object's), each sink below
it by its writer thread only; `drop` may be called from any worker or from the main
thread (a lock guards the set).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import ClassVar, Final

from palhm.backends.base import Backend, CopyWriter, ObjectSink
from palhm.engine import interrupts
from palhm.errors import BackendError, Cancelled, PalhmError
from palhm.model import BackupTask, Destination, Require
from palhm.records import field, record

log = logging.getLogger(__name__)


class DestinationError(BackendError):
    """A destination failed; `name` is the destination's. The message names the task,
    the destination and its location, and the cause."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.name = name


class EveryDestinationFailed(DestinationError):
    """No destination is left (`require: any`): one line per destination."""

    every_line_an_error = True

    @classmethod
    def of(cls, failed: list[Target]) -> EveryDestinationFailed:
        lines = [t.error.lines()[0] for t in failed if t.error is not None]
        lines[-1] += "; every destination failed: no new copy"
        return cls("\n".join(lines), name="")


@record(frozen=False, eq=False)
class Target:
    """One destination during one run: its backend and, once begun, its copy."""

    destination: Destination
    task: BackupTask  # the task seen through this destination (BackupTask.at)
    backend: Backend
    copy: CopyWriter | None = None
    committed: bool = False
    error: DestinationError | None = None  # why it was dropped
    rotation_error: str | None = None  # rotation failed after its commit

    @property
    def name(self) -> str:
        return self.destination.name

    @property
    def failed(self) -> bool:
        return self.error is not None


@record(frozen=False, eq=False)
class Destinations:
    """The destinations of one run and the policy deciding what a failure means."""

    task_id: str
    targets: list[Target]
    require: Require = "all"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def live(self) -> list[Target]:
        """The destinations still in the run, in config order."""
        with self._lock:
            return [t for t in self.targets if t.error is None]

    def failed(self) -> list[Target]:
        return [t for t in self.targets if t.error is not None]

    def drop(self, target: Target, error: BaseException) -> None:
        """Record that `target` failed with `error`. Raises the named error when the
        run cannot go on without it (require all, or no destination left)."""
        named = self._named(target, error)
        with self._lock:
            first = target.error is None
            if first:
                target.error = named
            left = [t.name for t in self.targets if t.error is None]
        if self.require == "all":
            raise named from error
        if not left:
            raise EveryDestinationFailed.of(self.failed()) from error
        if first:
            log.warning("%s; going on with %s", named.lines()[0], ", ".join(left))

    def _named(self, target: Target, error: BaseException) -> DestinationError:
        if isinstance(error, DestinationError):
            return error
        cause = _one_line(error)
        if cause.startswith(f"task '{self.task_id}'"):
            cause = cause.split(": ", 1)[-1]
        where = target.backend.describe()
        return DestinationError(
            f"task '{self.task_id}', destination '{target.name}' ({where}): {cause}",
            name=target.name,
        )


def _one_line(error: BaseException) -> str:
    if isinstance(error, PalhmError):
        lines = error.lines()
    else:
        lines = str(error).splitlines() or [type(error).__name__]
    return "; ".join(line.strip() for line in lines if line.strip())


class FanoutCopy:
    """What the object builder needs of a copy (open_object, discard_object), over
    every destination still in the run."""

    def __init__(self, destinations: Destinations) -> None:
        self.destinations = destinations

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        """A FanoutSink over a new object PATH on every live destination."""
        sinks: list[tuple[Target, ObjectSink]] = []
        try:
            for target in self.destinations.live():
                assert target.copy is not None
                try:
                    sinks.append((target, target.copy.open_object(path, alloc_size=alloc_size)))
                except (BackendError, OSError) as error:
                    self.destinations.drop(target, error)
        except BaseException:
            for _, sink in sinks:
                _abort(sink)
            raise
        return FanoutSink(self.destinations, sinks)

    def discard_object(self, path: str) -> None:
        """Remove a failed attempt's object on every live destination."""
        for target in self.destinations.live():
            assert target.copy is not None
            try:
                target.copy.discard_object(path)
            except (BackendError, OSError) as error:
                self.destinations.drop(target, error)


class FanoutSink(ObjectSink):
    """Writes each chunk to the sink of every destination (see the module docstring).

    Each destination's sink is fed by a thread of its own (`_Writer`), so a
    destination waiting (an upload's parts in flight, a disk flushing) does not stop
    the others. A chunk is copied once into a buffer of a small pool (the pump reuses
    its own buffer) that every writer reads; the buffer returns to the pool when the
    last writer is done with it. The pool holds BUFFERS buffers: that bounds memory,
    and when it is empty the pump waits, so the slowest destination sets the pace. A
    failing destination is dropped through `Destinations.drop`, which raises when the
    run cannot go on without it.
    """

    discards: ClassVar[bool] = False

    def __init__(self, destinations: Destinations, sinks: list[tuple[Target, ObjectSink]]) -> None:
        self.destinations = destinations
        self.pool = _Pool()
        self.writers = [_Writer(target, sink, self.pool) for target, sink in sinks]
        self.size = 0

    def write(self, data: memoryview) -> None:
        for writer in list(self.writers):
            if writer.error is not None or writer.target.failed:
                self._drop(writer)
        chunk = self.pool.fill(data, readers=len(self.writers))
        for writer in self.writers:
            writer.queue.put(chunk)
        self.size += len(data)

    def close(self) -> int:
        """Finish every destination's object at the same time (an fsync on one, the
        last parts of an upload on another); each must report the bytes given."""
        writers, self.writers = self.writers, []
        for writer in writers:
            writer.queue.put(_CLOSE)
        for writer in writers:
            writer.thread.join()
        for writer in writers:
            problem = writer.error
            if problem is None and writer.stored != self.size:
                problem = BackendError(f"stored {writer.stored} bytes, {self.size} were written")
            if problem is not None:
                self.destinations.drop(writer.target, problem)
        return self.size

    def abort(self) -> None:
        writers, self.writers = self.writers, []
        for writer in writers:
            writer.queue.put(_ABORT)
        for writer in writers:
            writer.thread.join()

    def _drop(self, writer: _Writer) -> None:
        self.writers.remove(writer)
        writer.queue.put(_ABORT)
        writer.thread.join()
        if writer.error is not None:
            self.destinations.drop(writer.target, writer.error)


BUFFERS: Final = 16  # chunks (block-size each) in flight to the destinations at most
_POLL: Final = 0.1  # s between two looks at the stop signal while the pool is empty
_CLOSE: Final = object()  # what a writer's queue holds besides chunks
_ABORT: Final = object()


class _Chunk:
    """One block in a pool buffer, and how many writers have yet to read it."""

    __slots__ = ("buffer", "length", "readers")

    def __init__(self, buffer: bytearray, length: int, readers: int) -> None:
        self.buffer = buffer
        self.length = length
        self.readers = readers


class _Pool:
    """BUFFERS reusable buffers, made as needed: no allocation (and no page faults
    on fresh memory) per chunk once the pool is full."""

    def __init__(self) -> None:
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.made = 0
        self.lock = threading.Lock()

    def fill(self, data: memoryview, *, readers: int) -> _Chunk:
        """A chunk holding a copy of `data`, waiting for a free buffer when all are
        in use (Cancelled when a stop signal arrives meanwhile)."""
        buffer = self._take()
        if len(buffer) < len(data):
            buffer = bytearray(len(data))  # a larger block: this buffer replaces it
        buffer[: len(data)] = data
        return _Chunk(buffer, len(data), readers)

    def release(self, chunk: _Chunk) -> None:
        """A writer is done with `chunk` (written or skipped)."""
        with self.lock:
            chunk.readers -= 1
            last = chunk.readers == 0
        if last:
            self.free.put(chunk.buffer)

    def _take(self) -> bytearray:
        try:
            return self.free.get_nowait()
        except queue.Empty:
            if self.made < BUFFERS:
                self.made += 1
                return bytearray(0)
        while True:
            try:
                return self.free.get(timeout=_POLL)
            except queue.Empty:
                if interrupts.CANCEL.is_set():
                    raise Cancelled("destinations: cancelled") from None


class _Writer:
    """One destination's sink and the thread that feeds it from its queue. After a
    failure the thread keeps taking chunks (releasing them unwritten) so the pump
    never waits on it; the sink is aborted at once."""

    def __init__(self, target: Target, sink: ObjectSink, pool: _Pool) -> None:
        self.target = target
        self.sink = sink
        self.pool = pool
        self.queue: queue.Queue[_Chunk | object] = queue.Queue()  # bounded by the pool
        self.error: BaseException | None = None
        self.stored: int | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"palhm-dest-{target.name}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if isinstance(item, _Chunk):
                if self.error is None:
                    self._write(item)
                self.pool.release(item)
                continue
            if self.error is None and item is _CLOSE:
                self._close()
            elif self.error is None:
                _abort(self.sink)
            return

    def _write(self, chunk: _Chunk) -> None:
        try:
            with memoryview(chunk.buffer)[: chunk.length] as view:
                self.sink.write(view)
        except Exception as error:  # BackendError, OSError, or a bug: the run reports it
            self.error = error
            _abort(self.sink)

    def _close(self) -> None:
        try:
            self.stored = self.sink.close()
        except Exception as error:
            self.error = error
            _abort(self.sink)


def _abort(sink: ObjectSink) -> None:
    try:
        sink.abort()
    except Exception as error:  # the failure being handled is what matters
        log.warning("could not abort an object: %s", error)
