"""A pipeline whose FIRST stage reads a stream palhm feeds: the restore path.

    result = feed_pipeline(stages, reader, expected=record, context=..., verbosity=...)

`reader` (an object of a copy, read from the backend) is copied in `block_size`
chunks into stage 1's stdin, hashed on the way; stage N's stdout goes to palhm's
stdout or /dev/null by its `vl-stdout` (or to `stdout` when given). The stages run
through execute.py's Supervisor (one process group, stderr drained and
tailed, PR_SET_PDEATHSIG, pidfd waits, cancel, timeouts, root-cause reporting),
so they behave exactly like a backup pipeline's stages.

What is guaranteed when the stored bytes differ from the manifest (size or
checksum): the feeder always holds back the chunk it read last, and only writes it
and closes stage 1's stdin once the whole object was read and matched the
manifest. On a mismatch (or a read error) it sends SIGKILL to the pipeline's whole
process group *before* closing stdin. SIGKILL is queued for every stage at once
and acted on before any of them returns to user space, so no stage -- the last one
included -- ever runs after seeing a clean end of input on bad data. Stages have
seen every byte but the held-back chunk by then: a pipeline that writes as it
reads (a SQL client) may have applied a prefix of the data. Where that matters,
restore into a fresh target (a drill) or use `palhm restore --verify-first`.

Memory: two chunks (the one held back and the one being read), whatever the size.
Threads: one feeder thread per call; the calling thread watches the processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, Final

from palhm.engine.checksum import new_hasher
from palhm.engine.execute import StageResult, Supervisor
from palhm.engine.spawn import data_pipe, flush_stdout
from palhm.errors import BackendError, Cancelled, PalhmError, PipelineError, format_argv
from palhm.manifest import ObjectRecord
from palhm.model import Exec
from palhm.records import record

DEFAULT_BLOCK_SIZE: Final = 1 << 20
# After stage 1 stopped reading, the rest of the object is still read (to say whether
# the stored bytes were damaged too) when at most this much is left.
DRAIN_LIMIT: Final = 256 << 20


class StoredObjectError(PalhmError):
    """The stored object differs from its manifest, or could not be read."""


@record
class FeedResult:
    """A pipeline that read the whole object, which matched the manifest."""

    size: int
    digest: str | None
    stages: tuple[StageResult, ...]


class _Feeder:
    """Copies the object into stage 1's stdin, holding back the last chunk read."""

    def __init__(
        self,
        reader: IO[bytes],
        fd: int,
        expected: ObjectRecord,
        block_size: int,
        cancel: threading.Event | None,
    ) -> None:
        self.reader = reader
        self.fd = fd
        self.expected = expected
        self.block_size = block_size
        self.cancel = cancel
        self.hasher = new_hasher(expected.checksum_algorithm)
        self.size = 0  # bytes read
        self.fed = 0  # bytes written into stage 1
        self.digest: str | None = None
        self.problem: str | None = None  # the object differs or could not be read
        self.broken = False  # stage 1 stopped reading before the end
        self.abandoned = False  # the caller gave up (an exception while watching)
        self.lock = threading.Lock()
        self.pgid: int | None = None  # None once the group may be reaped
        self.thread = threading.Thread(target=self._run, name="palhm-feed", daemon=True)

    def _run(self) -> None:
        try:
            self._copy()
        except BackendError as error:
            self._fail(f"reading failed: {_first_line(error)}")
        except OSError as error:
            self._fail(f"reading failed: {error}")
        except Exception as error:  # a bug must not leave stage 1 waiting for input
            self._fail(f"reading failed: {error!r}")
        finally:
            os.close(self.fd)

    def _copy(self) -> None:
        pending = b""
        while True:
            if self.abandoned or (self.cancel is not None and self.cancel.is_set()):
                self._fail("cancelled")
                return
            if self.broken and self.expected.size - self.size > DRAIN_LIMIT:
                return  # too much left to read just for a diagnosis: `palhm verify` can
            chunk = self.reader.read(self.block_size)
            if not chunk:
                break
            self.size += len(chunk)
            if self.size > self.expected.size:  # longer than stored: no need to read on
                self._fail(
                    f"size differs (manifest {self.expected.size} bytes,"
                    f" read at least {self.size} bytes)"
                )
                return
            if self.hasher is not None:
                self.hasher.update(chunk)
            self._write(pending)
            pending = chunk
        self.digest = self.hasher.hexdigest() if self.hasher is not None else None
        problems = differences(self.expected, self.size, self.digest)
        if problems:
            self._fail("; ".join(problems))
            return
        self._write(pending)  # verified: only now may stage 1 see the end of its input

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.broken:
            try:
                written = os.write(self.fd, view)
            except BrokenPipeError:
                self.broken = True  # keep reading: the checksum still tells what was stored
                return
            view = view[written:]
            self.fed += written

    def _fail(self, problem: str) -> None:
        self.problem = problem
        with self.lock:  # the group id is ours only while a child is unreaped
            if self.pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pgid, signal.SIGKILL)

    def release_group(self) -> None:
        with self.lock:
            self.pgid = None


def differences(record: ObjectRecord, size: int, digest: str | None) -> list[str]:
    """How (size, digest) read back differ from the manifest record ([] if they match)."""
    found: list[str] = []
    if size != record.size:
        found.append(f"size differs (manifest {record.size} bytes, read {size} bytes)")
    if record.checksum is not None and digest != record.checksum:
        found.append(
            f"checksum differs ({record.checksum_algorithm}: manifest {record.checksum},"
            f" read {digest})"
        )
    return found


def feed_pipeline(
    stages: Sequence[Exec],
    reader: IO[bytes],
    *,
    expected: ObjectRecord,
    context: str,
    verbosity: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    cancel: threading.Event | None = None,
    stdout: int | None = None,
) -> FeedResult:
    """Feed `reader` through `stages`, checking it against `expected` as it streams.

    Raises StoredObjectError (the object differs from the manifest or could not be
    read: the pipeline was killed before its input ended), PipelineError naming
    `context` and the stage (a stage failed, or stage 1 stopped reading before the
    end), Cancelled when `cancel` was set.
    """
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{context}: cancelled")
    flush_stdout()
    read_end, write_end = data_pipe()
    feeder = _Feeder(reader, write_end, expected, block_size, cancel)
    with Supervisor(context=context, verbosity=verbosity, cancel=cancel, pipeline=True) as run:
        try:
            _spawn(run, stages, read_end, stdout, verbosity)
        except BaseException:
            os.close(write_end)
            raise
        feeder.pgid = run.pgid
        feeder.thread.start()
        try:
            run.watch(None)
        except BaseException:
            feeder.abandoned = True  # stop reading: nobody will look at the result
            raise
        finally:
            feeder.release_group()  # from now on the group may be reaped
        run.finish(kill_strays=True)
    feeder.thread.join()
    _raise_failure(run, feeder, stages, context)
    return FeedResult(feeder.size, feeder.digest, run.results())


def _spawn(
    run: Supervisor, stages: Sequence[Exec], stdin: int, stdout: int | None, verbosity: int
) -> None:
    """Start the stages connected by pipes; the parent's copies are closed at once."""
    upstream: int | None = stdin
    for index, cmd in enumerate(stages):
        current, upstream = upstream, None
        write_end: int | None = None
        try:
            if index == len(stages) - 1:
                out = stdout
                if out is None and verbosity < cmd.vl_stdout:
                    out = subprocess.DEVNULL
                run.start(cmd, stdin=current, stdout=out)
            else:
                upstream, write_end = data_pipe()
                run.start(cmd, stdin=current, stdout=write_end)
        except BaseException:
            if upstream is not None:
                os.close(upstream)
            raise
        finally:
            if current is not None:
                os.close(current)
            if write_end is not None:
                os.close(write_end)


def _raise_failure(run: Supervisor, feeder: _Feeder, stages: Sequence[Exec], context: str) -> None:
    """The root cause: cancel; the stored object (with any stage that failed on its
    own before the kill); a stage; stage 1 not reading all of its input."""
    if feeder.problem == "cancelled" or run.trigger == "cancel":
        raise Cancelled(f"{context}: cancelled")
    if feeder.problem is not None:
        message = f"{context}, stored object: {feeder.problem}"
        stage_failure = _stage_failure(run)
        if stage_failure is not None:
            message += f"\n  (also: {stage_failure})"
        else:
            message += "; the restore pipeline was killed before its input ended"
        raise StoredObjectError(message)
    run.raise_failure()
    if feeder.broken:
        first = stages[0]
        raise PipelineError(
            run.where(0, first),
            first.argv,
            f"stopped reading its input after at most {feeder.fed} bytes"
            f" (the object has {feeder.expected.size}): the object was not restored",
        )


def _stage_failure(run: Supervisor) -> str | None:
    """A stage that exited on its own with a status outside its `ec`, if any."""
    for ending in run.endings:
        if ending.status is not None and not ending.accepted:
            where = run.where(ending.index, ending.cmd)
            return f"{where}: {format_argv(ending.cmd.argv)} exited with status {ending.status}"
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__
