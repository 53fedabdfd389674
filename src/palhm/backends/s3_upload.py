"""Streaming upload of an object of unknown size to S3 (the aws-s3 backend's sink).

The pipeline's output arrives in chunks; its length is unknown until the end. The
sink buffers up to one part: a stream that ends inside the first part becomes one
PutObject, a longer one a multipart upload whose part size grows with the stream.

Part sizes (`PartSchedule`): S3 allows at most 10,000 parts of 5 MiB to 5 GiB (the
last may be smaller) and objects up to 5 TiB. A fixed 8 MiB part would cap objects
at 78 GiB (the original PALHM's failure above ~80 GiB); a fixed 525 MiB part would
make every small upload buffer 525 MiB. So the size starts small and doubles every
`step` parts, `step` being the largest multiple of 100 parts that still fits 5 TiB:

    capacity = sum over parts i = 1..10,000 of min(5 GiB, first * 2**((i-1) // step))

    first = 8 MiB (default): step = 1,000 -> 8 MiB * 1,000 * (2**10 - 1) = 7.8 TiB >= 5 TiB;
        the largest part is 8 MiB * 2**9 = 4 GiB; a 10 GiB object ends on 16 MiB parts.
    first = 5 MiB (S3's minimum): step = 1,000 would hold only 4.9 TiB, so step = 900.
    first >= 525 MiB: no growth needed (525 MiB * 10,000 >= 5 TiB).

`alloc-size` raises the first part to alloc_size / 9,000 (rounded up to MiB) and
holds that size for the parts the announced size needs (`hold`), growing fast after
them so that an object larger than announced still fits 5 TiB: alloc-size 1 TiB
gives 8,963 parts of 117 MiB, then doubling every 60 parts.

Memory: one part being filled plus at most `in_flight_parts(size)` parts uploading
(up to 8, fewer once parts are big: about 64 MiB of buffers while parts are small,
two parts once a part alone exceeds that), whatever the object size. The objects of
one copy share a budget of 128 MiB in flight (`UploadBudget`; one part per object
may exceed it so that every upload progresses).

Checksums (SPEC C8): parts and single puts carry a CRC32 checksum that S3 verifies
on arrival (`ChecksumAlgorithm`), unless botocore's request_checksum_calculation is
"when_required" (AWS_REQUEST_CHECKSUM_CALCULATION), for stores that reject them.

Threads: one worker thread calls write/close/abort; part uploads run on a small
private thread pool; the shared boto3 client is thread-safe.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from palhm import faults
from palhm.aws import translate_errors
from palhm.backends.base import ObjectSink
from palhm.errors import BackendError

log = logging.getLogger(__name__)

KiB: Final = 1 << 10
MiB: Final = 1 << 20
GiB: Final = 1 << 30
TiB: Final = 1 << 40

DEFAULT_PART_SIZE: Final = 8 * MiB
IN_FLIGHT_BUDGET: Final = 64 * MiB
MAX_IN_FLIGHT: Final = 8
COPY_IN_FLIGHT_BUDGET: Final = 128 * MiB  # all objects of a copy together


@dataclass(frozen=True, slots=True)
class S3Limits:
    """S3's multipart limits. Tests use smaller ones (moto accepts tiny parts when
    started with S3_UPLOAD_PART_MIN_SIZE)."""

    min_part_size: int = 5 * MiB
    max_part_size: int = 5 * GiB
    max_parts: int = 10_000
    max_object_size: int = 5 * TiB


AWS_LIMITS: Final = S3Limits()


@dataclass(frozen=True, slots=True)
class PartSchedule:
    """Parts 1..hold are `first` bytes; after them the size doubles every `step` parts,
    capped at max_part_size: part i > hold is `first * 2**(1 + (i - hold - 1) // step)`."""

    first: int
    hold: int
    step: int
    limits: S3Limits = AWS_LIMITS

    @classmethod
    def plan(
        cls, first: int, *, expected_parts: int = 0, limits: S3Limits = AWS_LIMITS
    ) -> PartSchedule:
        """The slowest-growing schedule from `first` that still fits max_object_size.

        Without a hint, growth starts after one step (hold == step). With an alloc-size
        hint, `first` is held for the `expected_parts` the object should need, as long
        as a larger object than announced still fits.
        """
        first = min(max(first, limits.min_part_size), limits.max_part_size)
        step = _largest(lambda n: cls(first, n, n, limits).fits(), limits.max_parts)
        natural = cls(first, _round(step), _round(step), limits)
        if expected_parts <= natural.hold:
            return natural
        wanted = min(expected_parts, limits.max_parts)
        hold = _largest(lambda n: cls(first, n, 1, limits).fits(), wanted)
        step = _largest(lambda n: cls(first, hold, n, limits).fits(), limits.max_parts)
        return cls(first, hold, _round(step), limits)

    def size(self, part_number: int) -> int:
        """Size in bytes of part `part_number` (1-based; the last part may be shorter)."""
        if part_number <= self.hold:
            return self.first
        doublings = 1 + (part_number - self.hold - 1) // self.step
        if doublings >= 63 or self.first << doublings >= self.limits.max_part_size:
            return self.limits.max_part_size
        return self.first << doublings

    def capacity(self, nb_parts: int | None = None) -> int:
        """Bytes held by the first `nb_parts` parts (default: all max_parts)."""
        end = self.limits.max_parts if nb_parts is None else nb_parts
        total = min(end, self.hold) * self.first
        part_number = self.hold + 1
        while part_number <= end:  # one group of `step` equal parts per turn
            count = min(end - part_number + 1, self.step)
            total += count * self.size(part_number)
            part_number += count
        return total

    def fits(self) -> bool:
        return self.capacity() >= self.limits.max_object_size


def _largest(ok: Callable[[int], bool], high: int) -> int:
    """The largest n in 1..high with ok(n), for ok true up to some n then false; 1 if none."""
    low = 1
    while low < high:
        middle = (low + high + 1) // 2
        if ok(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _round(step: int) -> int:
    """Round a step down to a multiple of 100 parts: readable schedules, and a shorter
    step only adds capacity."""
    return step - step % 100 if step >= 100 else step


def first_part_size(
    part_size: int | None, alloc_size: int | None, limits: S3Limits = AWS_LIMITS
) -> int:
    """The first part's size from the `part-size` parameter and an object's alloc-size."""
    first = part_size or DEFAULT_PART_SIZE
    if alloc_size:
        align = min(MiB, limits.min_part_size)
        share = -(-alloc_size // (limits.max_parts * 9 // 10))  # 9,000 parts: 10% spare
        first = max(first, -(-share // align) * align)
    return min(max(first, limits.min_part_size), limits.max_part_size)


def plan_parts(
    part_size: int | None, alloc_size: int | None, limits: S3Limits = AWS_LIMITS
) -> PartSchedule:
    """The schedule of one object from `part-size` and its alloc-size hint."""
    first = first_part_size(part_size, alloc_size, limits)
    expected = -(-alloc_size // first) if alloc_size else 0
    return PartSchedule.plan(first, expected_parts=expected, limits=limits)


class UploadBudget:
    """Bytes of parts in flight, shared by the objects of one copy, so that many
    objects uploading at once stay within `limit` (each may still have one part in
    flight, so every upload progresses)."""

    def __init__(self, limit: int = COPY_IN_FLIGHT_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self.changed = threading.Condition()


def in_flight_parts(part_size: int) -> int:
    """How many parts may upload at once: a memory budget, at least one."""
    return max(1, min(MAX_IN_FLIGHT, IN_FLIGHT_BUDGET // part_size))


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where an object goes and the arguments every write request carries."""

    client: Any
    bucket: str
    key: str
    storage_class: str | None = None
    checksum: str | None = "CRC32"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def put_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.checksum:
            args["ChecksumAlgorithm"] = self.checksum
        return args


class S3ObjectSink(ObjectSink):
    """One object streamed to S3: a PutObject if it fits the first part, else a
    multipart upload with growing parts (see the module docstring)."""

    def __init__(
        self, target: UploadTarget, schedule: PartSchedule, budget: UploadBudget | None = None
    ) -> None:
        self._target = target
        self._budget = budget or UploadBudget()
        self._schedule = schedule
        self._buffer = bytearray()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: dict[int, dict[str, Any]] = {}
        self._part_sizes: list[int] = []
        self._futures: list[Future[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = 0  # guarded by self._budget.changed
        self._finished = False

    @property
    def part_sizes(self) -> list[int]:
        """Sizes of the parts sent so far ([size] for a single PutObject)."""
        return list(self._part_sizes)

    def write(self, data: memoryview) -> None:
        view = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        while view:
            room = self._schedule.size(len(self._part_sizes) + 1) - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self._schedule.size(len(self._part_sizes) + 1):
                self._send_part()
        self._size += data.nbytes

    def close(self) -> int:
        try:
            if self._upload_id is None:
                self._put_single()
            else:
                self._complete()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        log.debug(
            "%s: %d bytes in %d part(s)", self._target.location, self._size, len(self._part_sizes)
        )
        return self._size

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._drain(cancel=True)
        if self._upload_id is not None:
            try:
                self._target.client.abort_multipart_upload(
                    Bucket=self._target.bucket, Key=self._target.key, UploadId=self._upload_id
                )
            except Exception as exc:  # rollback aborts whatever remains under the prefix
                log.debug("%s: abort of the upload failed: %s", self._target.location, exc)
        self._buffer = bytearray()

    # -- single PutObject -------------------------------------------------------------

    def _put_single(self) -> None:
        body, self._buffer = self._buffer, bytearray()
        with _failure(self._target.location, "upload"):
            self._target.client.put_object(Body=body, **self._target.put_args())
        self._part_sizes.append(len(body))

    # -- multipart ----------------------------------------------------------------------

    def _send_part(self) -> None:
        """Hand the full buffer to the pool; blocks while too many parts are in flight."""
        part_number = len(self._part_sizes) + 1
        if part_number > self._schedule.limits.max_parts:
            raise BackendError(
                f"{self._target.location}: upload failed: the object exceeds S3's limit of"
                f" {self._schedule.limits.max_parts} parts"
                f" ({self._schedule.capacity()} bytes)"
            )
        if self._upload_id is None:
            self._start_multipart()
        body, self._buffer = self._buffer, bytearray()
        self._part_sizes.append(len(body))
        self._wait_for_room(len(body))
        self._raise_failed()
        future = self._executor().submit(self._upload_part, part_number, body)
        future.add_done_callback(functools.partial(self._part_done, len(body)))
        self._futures.append(future)

    def _wait_for_room(self, part_size: int) -> None:
        """Block the writer (and so the pipeline) while this object has enough parts in
        flight, or the copy's budget is spent and this object has one in flight."""
        budget = self._budget
        with budget.changed:
            while self._in_flight >= in_flight_parts(part_size) or (
                self._in_flight and budget.used + part_size > budget.limit
            ):
                budget.changed.wait()
            self._in_flight += 1
            budget.used += part_size

    def _part_done(self, part_size: int, _: Future[None]) -> None:
        with self._budget.changed:
            self._in_flight -= 1
            self._budget.used -= part_size
            self._budget.changed.notify_all()

    def _start_multipart(self) -> None:
        args = self._target.put_args()
        with _failure(self._target.location, "upload"):
            response = self._target.client.create_multipart_upload(**args)
        self._upload_id = response["UploadId"]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=in_flight_parts(self._schedule.first),  # parts only grow
                thread_name_prefix="palhm-s3-part",
            )
        return self._pool

    def _upload_part(self, part_number: int, body: bytearray) -> None:
        args: dict[str, Any] = {
            "Bucket": self._target.bucket,
            "Key": self._target.key,
            "UploadId": self._upload_id,
            "PartNumber": part_number,
            "Body": body,
        }
        if self._target.checksum:
            args["ChecksumAlgorithm"] = self._target.checksum
        with _failure(self._target.location, f"upload of part {part_number}"):
            response = self._target.client.upload_part(**args)
        part = {"PartNumber": part_number, "ETag": response["ETag"]}
        checksum_key = f"Checksum{self._target.checksum}" if self._target.checksum else ""
        if checksum_key and response.get(checksum_key):
            part[checksum_key] = response[checksum_key]
        self._parts[part_number] = part
        faults.crashpoint("part-uploaded")  # test facility (tests/reliability)

    def _raise_failed(self) -> None:
        """Re-raise the first failed part upload in the writer's thread."""
        for future in self._futures:
            error = future.exception() if future.done() else None
            if error is not None:
                raise error
        self._futures = [f for f in self._futures if not f.done()]

    def _complete(self) -> None:
        if self._buffer:
            self._send_part()
        self._drain(cancel=False)
        parts = [self._parts[n] for n in sorted(self._parts)]
        with _failure(self._target.location, "upload (completing the multipart upload)"):
            self._target.client.complete_multipart_upload(
                Bucket=self._target.bucket,
                Key=self._target.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )

    def _drain(self, *, cancel: bool) -> None:
        """Wait for the part uploads (cancelling queued ones if asked); raise the first
        failure unless cancelling."""
        if self._pool is None:
            return
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        if not cancel:
            self._raise_failed()


def _failure(location: str, action: str) -> AbstractContextManager[None]:
    """An AWS failure inside becomes BackendError 'LOCATION: ACTION failed: CODE: message'."""
    return translate_errors(BackendError, f"{location}: {action} failed")
