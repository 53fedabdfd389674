"""The aws-s3 backend (module `aws`): copies as key prefixes in an S3 bucket.

Keys are ROOT/PREFIX/PATH, ROOT being `root` without leading/trailing '/'.

Copy protocol on S3 (SPEC C2, B11), which has no rename:
- `begin_copy` lists ROOT/PREFIX/ and refuses (CollisionError) if any key is there,
  then writes ROOT/PREFIX/.palhm-manifest.json with the building manifest as the
  copy's first write, conditionally (If-None-Match: *) so that two hosts starting
  the same prefix cannot both win; stores without conditional writes are tolerated.
- `commit` overwrites the manifest with the final one as the copy's last write.
- The state is kept in the manifest's metadata (x-amz-meta-palhm-state: building,
  complete or removing) and read with one HEAD per copy, which works even when the
  manifest sits in an archive class. A copy without manifest is a legacy copy (the
  original PALHM's) and is counted.
- `rollback` / `remove_copy` first mark a copy "removing" (so a removal cut short
  leaves an incomplete copy, never a counted broken one), abort its multipart
  uploads, delete its keys in batches of at most 1,000 and the manifest last.
- The lock is per host (s3_lock), so an incomplete copy that another host started
  less than a day ago is not removed: it may still be in progress.

The manifest stays in STANDARD (small; readable by `list`/`verify` at any time);
`rot-storage-class` moves the objects of a committed copy with server-side copies
onto themselves, multipart (UploadPartCopy) above 5 GiB. On a versioned bucket,
deletions leave noncurrent versions behind: expire them with a lifecycle rule.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final

from palhm import aws, faults
from palhm.backends import s3_transition
from palhm.backends.base import (
    MANIFEST_NAME,
    Backend,
    CopyInfo,
    CopyState,
    CopyWriter,
    ObjectSink,
)
from palhm.backends.s3_lock import hold_lock, lock_path
from palhm.backends.s3_reader import S3BodyReader
from palhm.backends.s3_upload import (
    AWS_LIMITS,
    S3Limits,
    S3ObjectSink,
    UploadBudget,
    UploadTarget,
    plan_parts,
)
from palhm.errors import BackendError, CollisionError
from palhm.prefix import is_prefix, sort_by_prefix
from palhm.throttle import Throttle, ThrottledSink, parse_rate

log = logging.getLogger(__name__)

DELETE_BATCH: Final = 1000  # DeleteObjects accepts at most 1,000 keys (moto accepts more)
STATE_KEY: Final = "palhm-state"  # manifest metadata: building | complete | removing
HOST_KEY: Final = "palhm-host"  # manifest metadata: the host that wrote it
FOREIGN_BUILD_GRACE: Final = timedelta(days=1)
REMOVING_MARKER: Final = b'{"state": "removing"}\n'
STATE_THREADS: Final = 8  # one HEAD per copy with a manifest, a few at a time
MAX_POOL_CONNECTIONS: Final = 64  # nb-workers objects x parts in flight share one client

# Tests lower these (moto accepts tiny parts when told so).
LIMITS: S3Limits = AWS_LIMITS


@dataclass(slots=True)
class _Listing:
    """What a listing says about one copy."""

    size: int = 0
    nb_objects: int = 0
    has_manifest: bool = False


class S3Backend(Backend):
    """Copies under s3://BUCKET/ROOT/. Parameters: bucket, root, profile, region,
    endpoint_url, sink_storage_class, rot_storage_class, part_size."""

    name = "aws-s3"

    def __init__(self, params: Mapping[str, Any], *, task_id: str) -> None:
        super().__init__(params, task_id=task_id)
        self.bucket: str = params["bucket"]
        self.root: str = str(params["root"]).strip("/")
        self.part_size: int | None = params.get("part_size")
        self.sink_storage_class: str | None = params.get("sink_storage_class") or None
        self.rot_storage_class: str | None = params.get("rot_storage_class") or None
        self._spec = aws.ClientSpec.from_params(params)
        self._client: Any = None
        self._client_lock = threading.Lock()
        _check_part_size(self.part_size, task_id)
        rate = params.get("upload_rate_limit")
        self.upload_rate: float | None = parse_rate(rate) if rate is not None else None

    # -- names --------------------------------------------------------------------------

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.root}" if self.root else f"s3://{self.bucket}"

    def key(self, prefix: str, path: str = "") -> str:
        """ROOT/PREFIX/PATH (ROOT/PREFIX/ when path is empty)."""
        return f"{self.root}/{prefix}/{path}" if self.root else f"{prefix}/{path}"

    def location(self, prefix: str, path: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(prefix, path)}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use (no network until a request)."""
        with self._client_lock:  # made once even when threads ask at the same time
            if self._client is None:
                self._client = aws.make_client(
                    "s3",
                    self._spec,
                    error=BackendError,
                    where=self.describe(),
                    max_pool_connections=MAX_POOL_CONNECTIONS,
                )
        return self._client

    @property
    def checksum(self) -> str | None:
        """The checksum algorithm S3 verifies and stores (CRC32), or None when botocore
        is told to send checksums only when required
        (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, for stores that reject them)."""
        setting = getattr(self.client.meta.config, "request_checksum_calculation", None)
        return None if setting == "when_required" else "CRC32"

    def errors(self, where: str, action: str) -> AbstractContextManager[None]:
        """AWS failures in the block -> BackendError 'WHERE: ACTION failed: CODE: message'."""
        return aws.translate_errors(BackendError, f"{where}: {action} failed")

    # -- lock ---------------------------------------------------------------------------

    def lock(self) -> AbstractContextManager[None]:
        endpoint = self.client.meta.endpoint_url
        path = lock_path(f"{endpoint} {self.bucket} {self.root}")
        return hold_lock(path, what=self.describe(), task_id=self.task_id)

    # -- listing ------------------------------------------------------------------------

    def list_keys(self, key_prefix: str, *, action: str = "listing") -> Iterator[dict[str, Any]]:
        """Every object under `key_prefix` (paginated: any number of keys)."""
        where = f"s3://{self.bucket}/{key_prefix}"
        with self.errors(where, action):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key_prefix
            )
            for page in pages:
                yield from page.get("Contents", ())

    def list_copies(self) -> list[CopyInfo]:
        root_prefix = f"{self.root}/" if self.root else ""
        found: dict[str, _Listing] = {}
        for entry in self.list_keys(root_prefix):
            name, slash, path = entry["Key"][len(root_prefix) :].partition("/")
            if not slash or not path or not is_prefix(name):
                continue  # not a copy (B6): never counted, never removed
            listing = found.setdefault(name, _Listing())
            if path == MANIFEST_NAME:
                listing.has_manifest = True
            else:
                listing.size += entry["Size"]
                listing.nb_objects += 1
        with ThreadPoolExecutor(STATE_THREADS, thread_name_prefix="palhm-s3-state") as pool:
            states = pool.map(lambda item: self._state(*item), found.items())
            copies = [
                CopyInfo(name, state, listing.size, listing.nb_objects, self.location(name))
                for (name, listing), state in zip(found.items(), states, strict=True)
            ]
        return sort_by_prefix(copies, lambda copy: copy.prefix)

    def _state(self, prefix: str, listing: _Listing) -> CopyState:
        if not listing.has_manifest:
            return "legacy"
        manifest_key = self.key(prefix, MANIFEST_NAME)
        with self.errors(f"s3://{self.bucket}/{manifest_key}", "reading the state"):
            head = self.client.head_object(Bucket=self.bucket, Key=manifest_key)
        state = head.get("Metadata", {}).get(STATE_KEY)
        if state is None:  # manifest written by other means: read its own "state"
            state = _manifest_state(self.read_manifest(prefix))
        return "complete" if state == "complete" else "incomplete"

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        start = len(self.key(prefix))
        for entry in self.list_keys(self.key(prefix)):
            path = entry["Key"][start:]
            if path != MANIFEST_NAME:
                yield path, entry["Size"]

    # -- copies -------------------------------------------------------------------------

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> S3CopyWriter:
        location = self.location(prefix)
        with self.errors(location, "checking for an existing copy"):
            response = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.key(prefix), MaxKeys=1
            )
        if response.get("KeyCount", 0) or response.get("Contents"):
            raise CollisionError(
                f"{location}: a copy named '{prefix}' already exists; nothing was written"
            )
        self._put_first_manifest(prefix, building_manifest)
        return S3CopyWriter(self, prefix)

    def _put_first_manifest(self, prefix: str, manifest: bytes) -> None:
        """The copy's first write, refused by S3 if another run wrote it first."""
        try:
            self.put_manifest(prefix, manifest, state="building", if_none_match=True)
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise CollisionError(
                    f"{self.location(prefix)}: another run started a copy named '{prefix}'"
                    " at the same time; nothing was written"
                ) from None
            if code not in ("NotImplemented", "501"):
                raise
            log.debug("%s: store without conditional writes", self.describe())
            self.put_manifest(prefix, manifest, state="building")

    def put_manifest(
        self, prefix: str, body: bytes, *, state: str, if_none_match: bool = False
    ) -> None:
        """Write ROOT/PREFIX/.palhm-manifest.json with its state in the metadata."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key(prefix, MANIFEST_NAME),
            "Body": body,
            "ContentType": "application/json",
            "Metadata": {STATE_KEY: state, HOST_KEY: socket.gethostname()},
        }
        if if_none_match:
            args["IfNoneMatch"] = "*"
        with self.errors(self.location(prefix, MANIFEST_NAME), "writing the manifest"):
            self.client.put_object(**args)

    def remove_copy(self, copy: CopyInfo) -> None:
        if copy.state == "incomplete":
            self._refuse_foreign_build(copy.prefix)
        else:  # a removal cut short must not leave a counted, broken copy
            self.put_manifest(copy.prefix, REMOVING_MARKER, state="removing")
            faults.crashpoint("removing-marked")  # test facility (tests/reliability)
        self.delete_prefix(copy.prefix)

    def _refuse_foreign_build(self, prefix: str) -> None:
        """The lock is per host: a copy another host started recently may still be
        being built, so it is left alone (BackendError) until FOREIGN_BUILD_GRACE."""
        manifest_key = self.key(prefix, MANIFEST_NAME)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=manifest_key)
        except Exception as exc:  # no manifest any more: nothing to protect
            if aws.error_code(exc) in ("404", "NoSuchKey"):
                return
            raise BackendError(f"{self.location(prefix)}: {aws.describe_error(exc)}") from exc
        metadata = head.get("Metadata", {})
        host, since = metadata.get(HOST_KEY), head["LastModified"]
        recent = datetime.now(UTC) - since < FOREIGN_BUILD_GRACE
        if metadata.get(STATE_KEY) == "building" and host != socket.gethostname() and recent:
            raise BackendError(
                f"{self.location(prefix)}: incomplete copy started by host {host} at"
                f" {since.isoformat(timespec='seconds')} may still be in progress; not removed"
                f" (it is removed {FOREIGN_BUILD_GRACE.days} day(s) after its start)"
            )

    def delete_prefix(self, prefix: str) -> None:
        """Abort the multipart uploads under ROOT/PREFIX/, delete its keys in batches of
        at most 1,000, the manifest last."""
        self.abort_uploads(prefix)
        manifest_key = self.key(prefix, MANIFEST_NAME)
        keys = [e["Key"] for e in self.list_keys(self.key(prefix)) if e["Key"] != manifest_key]
        for start in range(0, len(keys), DELETE_BATCH):
            self._delete_batch(prefix, keys[start : start + DELETE_BATCH])
        self._delete_batch(prefix, [manifest_key])

    def _delete_batch(self, prefix: str, keys: list[str]) -> None:
        with self.errors(self.location(prefix), "deleting"):
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise BackendError(
                f"s3://{self.bucket}/{first.get('Key')}: deleting failed: "
                f"{first.get('Code')}: {first.get('Message')} ({len(errors)} key(s) not deleted)"
            )

    def abort_uploads(self, prefix: str) -> None:
        """Abort every unfinished multipart upload under ROOT/PREFIX/ (hidden parts cost)."""
        with self.errors(self.location(prefix), "aborting multipart uploads"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.key(prefix)
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    self._abort_upload(upload["Key"], upload["UploadId"])

    def _abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if aws.error_code(exc) != "NoSuchUpload":  # already gone: fine
                raise

    # -- after commit, reading ----------------------------------------------------------

    def after_commit(self, prefix: str) -> None:
        """Move the new copy's objects to rot-storage-class, if set."""
        if not self.rot_storage_class:
            return
        for entry in self.list_keys(self.key(prefix)):
            if entry["Key"] == self.key(prefix, MANIFEST_NAME):
                continue
            if entry.get("StorageClass", "STANDARD") == self.rot_storage_class:
                continue
            s3_transition.change_storage_class(
                self, entry["Key"], entry["Size"], self.rot_storage_class
            )

    def read_note(self, name: str) -> bytes | None:
        key = f"{self.root}/{name}" if self.root else name
        try:
            with self.errors(f"s3://{self.bucket}/{key}", "reading"):
                body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except BackendError as exc:
            if exc.__cause__ is not None and aws.error_code(exc.__cause__) in ("NoSuchKey", "404"):
                return None
            raise
        return body

    def write_note(self, name: str, data: bytes) -> None:
        key = f"{self.root}/{name}" if self.root else name
        with self.errors(f"s3://{self.bucket}/{key}", "writing"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read_manifest(self, prefix: str) -> bytes | None:
        key = self.key(prefix, MANIFEST_NAME)
        try:
            with self.errors(self.location(prefix, MANIFEST_NAME), "reading the manifest"):
                body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except BackendError as exc:
            if exc.__cause__ is not None and aws.error_code(exc.__cause__) in ("NoSuchKey", "404"):
                return None
            raise
        return body

    @contextmanager
    def open_object_reader(self, prefix: str, path: str) -> Iterator[IO[bytes]]:
        location = self.location(prefix, path)
        with self.errors(location, "reading"):
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(prefix, path))
        reader = S3BodyReader(response["Body"], location)
        try:
            yield reader.as_io()
        finally:
            reader.close()


class S3CopyWriter(CopyWriter):
    """A copy being uploaded. Objects are streamed by S3ObjectSink."""

    def __init__(self, backend: S3Backend, prefix: str) -> None:
        self.backend = backend
        self.prefix = prefix
        self._budget = UploadBudget()  # parts in flight of all objects together
        rate = backend.upload_rate
        self._throttle = Throttle(rate) if rate is not None else None  # the whole copy's

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        backend = self.backend
        target = UploadTarget(
            client=backend.client,
            bucket=backend.bucket,
            key=backend.key(self.prefix, path),
            storage_class=backend.sink_storage_class,
            checksum=backend.checksum,
        )
        schedule = plan_parts(backend.part_size, alloc_size, LIMITS)
        sink = S3ObjectSink(target, schedule, self._budget)
        return ThrottledSink(sink, self._throttle) if self._throttle else sink

    def commit(self, manifest: bytes) -> None:
        self.backend.put_manifest(self.prefix, manifest, state="complete")

    def rollback(self) -> None:
        self.backend.delete_prefix(self.prefix)


def _manifest_state(manifest: bytes | None) -> str:
    """The state a manifest without palhm metadata declares. In doubt "complete": a
    copy wrongly taken for incomplete would be deleted by the next run."""
    try:
        document = json.loads(manifest or b"")
    except ValueError:
        return "complete"
    state = document.get("state") if isinstance(document, dict) else None
    return state if state in ("building", "removing") else "complete"


def _check_part_size(part_size: int | None, task_id: str) -> None:
    limits = LIMITS
    if part_size is not None and not limits.min_part_size <= part_size <= limits.max_part_size:
        raise BackendError(
            f"task '{task_id}': backend-param part-size {part_size} is outside S3's part size"
            f" range {limits.min_part_size}-{limits.max_part_size} bytes"
        )
