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
may exceed it so that every upload progresses), and at most as many bytes of spare
part buffers, kept for reuse once their upload ended.

`equal-parts` (Cloudflare R2 wants every part but the last of one size): no growth,
parts of `first_part_size` (alloc-size / 9,000 when announced), so an object holds at
most 10,000 parts of that size; an announced size beyond that fails before the upload.

Integrity (the `request-checksums` backend-param): every PUT and part carries either
a CRC32 checksum (`ChecksumAlgorithm`, AWS) or a Content-MD5 header computed here
(S3-compatible stores), which the store verifies on arrival. After each object, a
HeadObject must report exactly the bytes streamed: a store that kept a checksum's
aws-chunked framing inside the object, or truncated it, fails the run.

Object Lock (`object-lock`): PutObject and CreateMultipartUpload carry the lock mode
and retain-until date; the HeadObject after the upload must show them, else palhm sets
them with PutObjectRetention (a store that took the headers without applying them, or
a key whose HeadObject omits them: AWS shows them only with s3:GetObjectRetention),
and fails the object if the store refuses that too.

Threads: one worker thread calls write/close/abort; part uploads run on a small
private thread pool; the shared boto3 client is thread-safe.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Final

from palhm import faults
from palhm.aws import translate_errors
from palhm.backends.base import ObjectSink
from palhm.errors import BackendError
from palhm.records import record

log = logging.getLogger(__name__)

KiB: Final = 1 << 10
MiB: Final = 1 << 20
GiB: Final = 1 << 30
TiB: Final = 1 << 40

DEFAULT_PART_SIZE: Final = 8 * MiB
IN_FLIGHT_BUDGET: Final = 64 * MiB
MAX_IN_FLIGHT: Final = 8
COPY_IN_FLIGHT_BUDGET: Final = 128 * MiB  # all objects of a copy together


@record
class S3Limits:
    """S3's multipart limits. Tests use smaller ones (moto accepts tiny parts when
    started with S3_UPLOAD_PART_MIN_SIZE)."""

    min_part_size: int = 5 * MiB
    max_part_size: int = 5 * GiB
    max_parts: int = 10_000
    max_object_size: int = 5 * TiB


AWS_LIMITS: Final = S3Limits()


@record
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
    part_size: int | None,
    alloc_size: int | None,
    limits: S3Limits = AWS_LIMITS,
    *,
    equal: bool = False,
) -> PartSchedule:
    """The schedule of one object from `part-size` and its alloc-size hint; `equal`:
    every part the same size (no growth: at most max_parts x that size)."""
    first = first_part_size(part_size, alloc_size, limits)
    if equal:
        return PartSchedule(first, limits.max_parts, limits.max_parts, limits)
    expected = -(-alloc_size // first) if alloc_size else 0
    return PartSchedule.plan(first, expected_parts=expected, limits=limits)


def check_announced_size(schedule: PartSchedule, alloc_size: int | None, where: str) -> None:
    """Refuse, before anything is uploaded, an object announced larger than it can be."""
    if not alloc_size:
        return
    limits = schedule.limits
    room = min(schedule.capacity(), limits.max_object_size)
    if alloc_size > room:
        raise BackendError(
            f"{where}: upload refused: alloc-size {alloc_size} bytes exceeds what one object"
            f" can hold here ({room} bytes: at most {limits.max_parts} parts, S3 objects up to"
            f" {limits.max_object_size} bytes)"
        )


class UploadBudget:
    """Bytes of parts in flight, shared by the objects of one copy, so that many
    objects uploading at once stay within `limit` (each may still have one part in
    flight, so every upload progresses).

    It also keeps the part buffers whose upload ended (at most `limit` bytes of them)
    for the next part of the same size, of any object of the copy: a part is read
    into memory palhm already has, not into new pages that must be zeroed and faulted
    in (bytearray(n) writes n zeros)."""

    def __init__(self, limit: int = COPY_IN_FLIGHT_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self.changed = threading.Condition()
        self._spare: list[bytearray] = []
        self._spare_bytes = 0

    @property
    def spare_bytes(self) -> int:
        """Bytes of part buffers kept for reuse."""
        return self._spare_bytes

    def part_buffer(self, size: int) -> bytearray:
        """A buffer of exactly `size` bytes (a spare one when there is one; its bytes
        are whatever the last part left there)."""
        with self.changed:
            for index, spare in enumerate(self._spare):
                if len(spare) == size:
                    del self._spare[index]
                    self._spare_bytes -= size
                    return spare
        return bytearray(size)

    def give_back(self, buffer: bytearray) -> None:
        """A part buffer no request uses any more, kept for part_buffer() while the
        spares stay within `limit` bytes."""
        with self.changed:
            if self._spare_bytes + len(buffer) <= self.limit:
                self._spare.append(buffer)
                self._spare_bytes += len(buffer)


def in_flight_parts(part_size: int) -> int:
    """How many parts may upload at once: a memory budget, at least one."""
    return max(1, min(MAX_IN_FLIGHT, IN_FLIGHT_BUDGET // part_size))


@record
class UploadTarget:
    """Where an object goes and the arguments every write request carries.

    `checksum`: the flexible checksum S3 verifies ("CRC32") or None; `content_md5`:
    send Content-MD5 with every PUT and part instead (S3-compatible stores).
    `on_multipart(key, upload_id)` is told each multipart upload as it starts, so that
    a clean-up can abort it without listing uploads.
    """

    client: Any
    bucket: str
    key: str
    storage_class: str | None = None
    checksum: str | None = "CRC32"
    content_md5: bool = False
    on_multipart: Callable[[str, str], None] | None = None
    mismatch_hint: str = ""
    lock_mode: str | None = None  # Object Lock: GOVERNANCE or COMPLIANCE
    retain_until: datetime | None = None

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def put_args(self) -> dict[str, Any]:
        """The object's arguments, shared by PutObject and CreateMultipartUpload."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        args.update(lock_args(self.lock_mode, self.retain_until))
        return args

    def create_args(self) -> dict[str, Any]:
        """CreateMultipartUpload's arguments: the object's, and the checksum its parts
        will carry."""
        args = self.put_args()
        if self.checksum and not self.content_md5:
            args["ChecksumAlgorithm"] = self.checksum
        return args

    def body_args(self, body: bytes | bytearray) -> dict[str, Any]:
        """The integrity argument of one request body (PutObject, UploadPart)."""
        if self.content_md5:
            return {"ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
        if self.checksum:
            return {"ChecksumAlgorithm": self.checksum}
        return {}


class S3ObjectSink(ObjectSink):
    """One object streamed to S3: a PutObject if it fits the first part, else a
    multipart upload with growing parts (see the module docstring).

    The part being filled is `_buffer[:_filled]`, `_buffer` being a whole part from
    its first byte on. palhm reads the pipe straight into it (read_buffer() / took():
    the bytes are copied once, by the read, and hashed where they lie); write()
    copies into it, for the callers that hold the bytes elsewhere (several
    destinations, a rate limit). A full part's buffer goes to the upload as it is and
    back to the budget's spares when the upload ends; the object's last part, which
    usually ends inside its buffer, is copied out and the buffer kept at once, so the
    next object of the copy starts on it."""

    reads_into = True

    def __init__(
        self, target: UploadTarget, schedule: PartSchedule, budget: UploadBudget | None = None
    ) -> None:
        self._target = target
        self._budget = budget or UploadBudget()
        self._schedule = schedule
        self._buffer = bytearray()
        self._filled = 0
        self._size = 0
        self._upload_id: str | None = None
        self._parts: dict[int, dict[str, Any]] = {}
        self._part_sizes: list[int] = []
        self._futures: list[Future[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = 0  # guarded by self._budget.changed
        self._finished = False

    @property
    def upload_id(self) -> str | None:
        """The multipart upload's id, None for a single PutObject."""
        return self._upload_id

    @property
    def part_sizes(self) -> list[int]:
        """Sizes of the parts sent so far ([size] for a single PutObject)."""
        return list(self._part_sizes)

    def _part(self) -> bytearray:
        """The buffer of the part being filled: a whole part from the start (a spare
        one when there is one), so it never grows or moves."""
        if not self._buffer:
            self._buffer = self._budget.part_buffer(self._schedule.size(len(self._part_sizes) + 1))
        return self._buffer

    def write(self, data: memoryview) -> None:
        view = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        while view:
            part = self._part()
            room = len(part) - self._filled
            chunk, view = view[:room], view[room:]
            end = self._filled + len(chunk)
            part[self._filled : end] = chunk
            self._filled = end
            if end == len(part):
                self._send_part()
        self._size += data.nbytes

    def read_buffer(self, size: int) -> memoryview:
        part = self._part()
        return memoryview(part)[self._filled : min(len(part), self._filled + size)]

    def took(self, count: int) -> None:
        self._filled += count
        self._size += count
        if self._filled == len(self._buffer):
            self._send_part()

    def _take_body(self) -> tuple[bytearray, bool]:
        """The part's bytes to upload, and whether they are a whole part buffer (to be
        given back once uploaded). The object's last part usually ends inside its
        buffer: those bytes are copied out (at most one part per object) and the
        buffer is kept for another part at once."""
        body, filled = self._buffer, self._filled
        self._buffer, self._filled = bytearray(), 0
        if filled == len(body):
            return body, bool(body)
        last = body[:filled]
        self._budget.give_back(body)
        return last, False

    def close(self) -> int:
        try:
            if self._upload_id is None:
                self._put_single()
            else:
                self._complete()
            self._check_stored_size()
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
        self._buffer, self._filled = bytearray(), 0

    # -- single PutObject -------------------------------------------------------------

    def _put_single(self) -> None:
        body, _ = self._take_body()
        target = self._target
        with _failure(target.location, "upload"):
            target.client.put_object(Body=body, **target.put_args(), **target.body_args(body))
        self._part_sizes.append(len(body))

    def _check_stored_size(self) -> None:
        """The store must hold exactly the bytes streamed: a 200 alone proves nothing
        (a store that does not understand aws-chunked bodies stores the framing)."""
        target = self._target
        with _failure(target.location, "upload (checking the stored size)"):
            head = target.client.head_object(Bucket=target.bucket, Key=target.key)
        stored = head.get("ContentLength")
        if stored != self._size:
            hint = f": {target.mismatch_hint}" if target.mismatch_hint else ""
            raise BackendError(
                f"{target.location}: upload failed: the store holds {stored} bytes but"
                f" palhm sent {self._size}{hint}"
            )
        if target.lock_mode and target.retain_until:
            ensure_retention(
                target.client, target.bucket, target.key, head, target.lock_mode,
                target.retain_until,
            )  # fmt: skip

    # -- multipart ----------------------------------------------------------------------

    def _send_part(self) -> None:
        """Hand the full buffer to the pool; blocks while too many parts are in flight."""
        part_number = len(self._part_sizes) + 1
        if part_number > self._schedule.limits.max_parts:
            raise BackendError(
                f"{self._target.location}: upload failed: the object exceeds S3's limit of"
                f" {self._schedule.limits.max_parts} parts"
                f" ({self._schedule.capacity()} bytes with these part sizes; give the object"
                " an alloc-size, or a larger part-size)"
            )
        if self._upload_id is None:
            self._start_multipart()
        body, spare = self._take_body()
        self._part_sizes.append(len(body))
        self._wait_for_room(len(body))
        self._raise_failed()
        future = self._executor().submit(self._upload_part, part_number, body)
        future.add_done_callback(functools.partial(self._part_done, body, spare))
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

    def _part_done(self, body: bytearray, spare: bool, _: Future[None]) -> None:
        with self._budget.changed:
            self._in_flight -= 1
            self._budget.used -= len(body)
            self._budget.changed.notify_all()
        if spare:
            self._budget.give_back(body)

    def _start_multipart(self) -> None:
        args = self._target.create_args()
        with _failure(self._target.location, "upload"):
            response = self._target.client.create_multipart_upload(**args)
        self._upload_id = response["UploadId"]
        if self._target.on_multipart is not None:
            self._target.on_multipart(self._target.key, self._upload_id)

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
            **self._target.body_args(body),
        }
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
        if self._filled:
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


def lock_args(mode: str | None, retain_until: datetime | None) -> dict[str, Any]:
    """The Object Lock arguments of PutObject / CreateMultipartUpload (none without)."""
    if not mode or retain_until is None:
        return {}
    return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": retain_until}


def ensure_retention(
    client: Any, bucket: str, key: str, head: dict[str, Any], mode: str, retain_until: datetime
) -> None:
    """Make sure s3://BUCKET/KEY is locked in `mode` until at least `retain_until`:
    `head` (its HeadObject) shows the lock, else PutObjectRetention sets it. Raises
    BackendError when the store refuses: an object palhm promised to lock is not."""
    shown = head.get("ObjectLockRetainUntilDate")
    if head.get("ObjectLockMode") == mode and shown is not None and shown >= retain_until:
        return
    log.debug("s3://%s/%s: no retention shown after the upload; setting it", bucket, key)
    retention = {"Mode": mode, "RetainUntilDate": retain_until}
    action = "setting the Object Lock retention (the store did not apply the upload's)"
    with _failure(f"s3://{bucket}/{key}", action):
        client.put_object_retention(Bucket=bucket, Key=key, Retention=retention)


def _failure(location: str, action: str) -> AbstractContextManager[None]:
    """An AWS failure inside becomes BackendError 'LOCATION: ACTION failed: CODE: message'."""
    return translate_errors(BackendError, f"{location}: {action} failed")
