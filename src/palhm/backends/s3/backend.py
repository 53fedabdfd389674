"""The aws-s3 backend (module `aws`): copies as key prefixes in an S3 bucket.

Keys are ROOT/PREFIX/PATH, ROOT being `root` without leading/trailing '/'.

Copy protocol on S3 (doc/design.md#copy-protocol), which has no rename:
- `begin_copy` lists ROOT/PREFIX/ and refuses (CollisionError) if any key is there,
  then writes ROOT/PREFIX/.palhm-manifest.json with the building manifest as the
  copy's first write, conditionally (If-None-Match: *, `conditional-writes`) so that
  two hosts starting the same prefix cannot both win. The manifest's metadata
  carries a run id (x-amz-meta-palhm-run), read back to catch stores that ignore
  If-None-Match; in `auto` a store refusing the condition (400/403/501) is written
  to without it, with a warning.
- Each multipart upload a run starts is recorded in the building manifest
  ("s3-multipart-uploads"), so that rollback and a later clean-up abort exactly
  those, also on stores without ListMultipartUploads.
- `commit` checks the run id, overwrites the manifest with the final one as the
  copy's last write, reads it back and parses it: only then is the copy committed.
- The state is kept in the manifest's metadata (x-amz-meta-palhm-state: building,
  complete or removing) and read with one HEAD per copy, which works even when the
  manifest sits in an archive class. A copy without manifest is a legacy copy (the
  original PALHM's) and is counted. The metadata also names the task
  (x-amz-meta-palhm-task): another task's copy is "other-task". A manifest without
  palhm's metadata is judged by its body as localfs judges one (`judge_manifest`):
  unreadable, not final or another copy's = "damaged" (never counted or removed).
- `rollback` / `remove_copy` first mark a copy "removing" (so a removal cut short
  leaves an incomplete copy, never a counted broken one), abort its multipart
  uploads (the recorded ones; listing uploads is a best-effort extra), delete its
  keys in batches of at most 1,000 (one DeleteObject per key on stores without
  DeleteObjects) and the manifest last.
- The lock is per host (s3_lock), so an incomplete copy that another host started
  less than a day ago is not removed: it may still be in progress.

The manifest stays in STANDARD (small; readable by `list`/`verify` at any time);
`rot-storage-class` moves the objects of a committed copy with server-side copies
onto themselves, multipart (UploadPartCopy) above 5 GiB; a store refusing the move
gives a warning, the copy stays in its class and rotation goes on. On a versioned
bucket, deletions leave noncurrent versions behind: expire them with a lifecycle rule.

Object Lock (`object-lock`, doc/aws.md): before the first write of a copy, palhm
checks that the bucket has Object Lock enabled (GetObjectLockConfiguration) and
refuses to start otherwise. Every object and the final manifest are written with the
lock mode and the copy's retain-until date (its prefix time plus the lock period);
the building manifest is not locked (it is overwritten). The manifest records the
date ("retain-until", and metadata x-amz-meta-palhm-retain-until, read with the
state), so rotation keeps a locked copy without trying to delete it. Deleting without
a version id on such a (versioned) bucket only adds delete markers; palhm never
deletes versions and never asks to bypass a lock.

`delete: delegated`: a store refusing a deletion (AccessDenied) raises
DeleteDeniedError after putting back the manifest of a copy it did not touch, so the
copy stays complete for the host that rotates with delete rights.

Request checksums (`request-checksums`): `crc32` (S3's flexible checksums, verified
on upload and download), `md5` (Content-MD5 on every PUT and part, botocore's
checksums only where an operation requires one: what every S3-compatible store
understands), `off`, or `auto`: crc32 on AWS's own endpoints, md5 elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Set
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final
from urllib.parse import quote, unquote, urlsplit

from palhm import aws, faults
from palhm.backends.base import (
    MANIFEST_NAME,
    REMOVABLE_STATES,
    Backend,
    CopyInfo,
    CopyState,
    CopyWriter,
    ObjectSink,
    judge_manifest,
    warn_damaged,
)
from palhm.backends.s3 import transition as s3_transition
from palhm.backends.s3.lock import hold_lock, lock_path
from palhm.backends.s3.reader import S3BodyReader
from palhm.backends.s3.upload import (
    AWS_LIMITS,
    S3Limits,
    S3ObjectSink,
    UploadBudget,
    UploadTarget,
    check_announced_size,
    ensure_retention,
    lock_args,
    plan_parts,
)
from palhm.backends.throttle import Throttle, ThrottledSink, parse_rate
from palhm.errors import BackendError, CollisionError, DeleteDeniedError
from palhm.manifest import parse_manifest
from palhm.model import ObjectLock
from palhm.prefix import is_prefix, parse_prefix, sort_by_prefix
from palhm.records import record

log = logging.getLogger(__name__)

DELETE_BATCH: Final = 1000  # DeleteObjects accepts at most 1,000 keys (moto accepts more)
STATE_KEY: Final = "palhm-state"  # manifest metadata: building | complete | removing
HOST_KEY: Final = "palhm-host"  # manifest metadata: the host that wrote it
RUN_KEY: Final = "palhm-run"  # manifest metadata: the run that began the copy
TASK_KEY: Final = "palhm-task"  # manifest metadata: its task's id, percent-encoded (ASCII)
RETAIN_KEY: Final = "palhm-retain-until"  # final manifest metadata: Object Lock date
DENIED_CODES: Final = frozenset({"AccessDenied", "403"})
DELETE_MODES: Final = ("normal", "delegated")
UPLOADS_FIELD: Final = "s3-multipart-uploads"  # building manifest: [{key, upload-id}]
CHECKSUM_MODES: Final = ("auto", "crc32", "md5", "off")
CONDITIONAL_MODES: Final = ("auto", "on", "off")
# Answers of a store that does not do conditional writes (or DeleteObjects, or
# ListMultipartUploads) rather than of a real failure: the request is done otherwise.
UNSUPPORTED_CODES: Final = frozenset(
    {"NotImplemented", "501", "MethodNotAllowed", "405", "InvalidArgument", "InvalidRequest",
     "400", "AccessDenied", "403", "NotSupported", "MissingContentMD5", "InvalidDigest"}
)  # fmt: skip
LIST_UPLOADS_UNSUPPORTED: Final = frozenset(
    {"NotImplemented", "501", "MethodNotAllowed", "405", "AccessDenied", "403"}
)
GONE_CODES: Final = frozenset({"NoSuchUpload", "404", "NoSuchKey"})
FOREIGN_BUILD_GRACE: Final = timedelta(days=1)
REMOVING_MARKER: Final = b'{"state": "removing"}\n'
STATE_THREADS: Final = 8  # one HEAD per copy with a manifest, a few at a time
MAX_POOL_CONNECTIONS: Final = 64  # nb-workers objects x parts in flight share one client

# Tests lower these (moto accepts tiny parts when told so).
LIMITS: S3Limits = AWS_LIMITS


@record(frozen=False)
class _Listing:
    """What a listing says about one copy."""

    size: int = 0
    nb_objects: int = 0
    has_manifest: bool = False


class S3Backend(Backend):
    """Copies under s3://BUCKET/ROOT/. Parameters: bucket, root, profile, region,
    endpoint_url, sink_storage_class, rot_storage_class, part_size, equal_parts,
    request_checksums, conditional_writes."""

    name = "aws-s3"

    def __init__(self, params: Mapping[str, Any], *, task_id: str) -> None:
        super().__init__(params, task_id=task_id)
        self.bucket: str = params["bucket"]
        self.root: str = str(params["root"]).strip("/")
        self.part_size: int | None = params.get("part_size")
        self.equal_parts = bool(params.get("equal_parts", False))
        self.sink_storage_class: str | None = params.get("sink_storage_class") or None
        self.rot_storage_class: str | None = params.get("rot_storage_class") or None
        self.request_checksums: str = _choice(params, "request_checksums", CHECKSUM_MODES, task_id)
        self.conditional_writes: str = _choice(
            params, "conditional_writes", CONDITIONAL_MODES, task_id
        )
        self._spec = aws.ClientSpec.from_params(params)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._checksum_mode = "crc32"  # resolved with the client
        self._delete_objects = True  # False once the store refused DeleteObjects
        self._run_id = ""
        _check_part_size(self.part_size, task_id)
        rate = params.get("upload_rate_limit")
        self.upload_rate: float | None = parse_rate(rate) if rate is not None else None
        lock = params.get("object_lock")
        self.object_lock: ObjectLock | None = lock if isinstance(lock, ObjectLock) else None
        self._lock_checked = False
        delete = params.get("delete") or "normal"
        if delete not in DELETE_MODES:
            raise BackendError(
                f"task '{task_id}': backend-param delete is {delete!r}; expected one of"
                f" {', '.join(DELETE_MODES)}"
            )
        self.deletion_delegated = delete == "delegated"

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
        """The boto3 S3 client, made on first use (credentials are resolved then; no
        request is sent)."""
        with self._client_lock:  # made once even when threads ask at the same time
            if self._client is None:
                client = aws.make_client(
                    "s3",
                    self._spec,
                    error=BackendError,
                    where=self.describe(),
                    max_pool_connections=MAX_POOL_CONNECTIONS,
                    adjust=self._checksum_config,
                )
                # Stores that require Content-MD5 on DeleteObjects (botocore sends a CRC32)
                client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
                self._client = client
        return self._client

    def _checksum_config(self, client: Any) -> dict[str, Any]:
        """Resolve `request-checksums` for this client's endpoint; botocore settings."""
        mode = self.request_checksums
        if mode == "auto":
            inherited = getattr(client.meta.config, "request_checksum_calculation", None)
            on_aws = aws.is_aws_endpoint(client.meta.endpoint_url)
            mode = "crc32" if on_aws and inherited != "when_required" else "md5"
        self._checksum_mode = mode
        log.debug("%s: request checksums: %s", self.describe(), mode)
        setting = "when_supported" if mode == "crc32" else "when_required"
        return {"request_checksum_calculation": setting, "response_checksum_validation": setting}

    @property
    def checksum_mode(self) -> str:
        """crc32, md5 or off: `request-checksums` resolved for the endpoint."""
        _ = self.client
        return self._checksum_mode

    @property
    def checksum(self) -> str | None:
        """The flexible checksum algorithm S3 verifies and stores (CRC32), or None."""
        return "CRC32" if self.checksum_mode == "crc32" else None

    def mismatch_hint(self) -> str:
        """The likely cause of a stored size that is not what was sent."""
        if self.checksum_mode == "crc32":
            return (
                "the store probably kept the aws-chunked checksum framing inside the object:"
                " set backend-param request-checksums to md5 (or AWS_REQUEST_CHECKSUM_"
                "CALCULATION=when_required)"
            )
        return "the store truncated or altered the object"

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
                # not a copy (doc/design.md#what-counts-as-a-copy): never counted, never removed
                continue
            listing = found.setdefault(name, _Listing())
            if path == MANIFEST_NAME:
                listing.has_manifest = True
            else:
                listing.size += entry["Size"]
                listing.nb_objects += 1
        with ThreadPoolExecutor(STATE_THREADS, thread_name_prefix="palhm-s3-state") as pool:
            copies = list(pool.map(lambda item: self._copy_info(*item), found.items()))
        warn_damaged(copies, log)
        return sort_by_prefix(copies, lambda copy: copy.prefix)

    def _copy_info(self, prefix: str, listing: _Listing) -> CopyInfo:
        state, task, problem, until = self._state(prefix, listing)
        location = self.location(prefix)
        return CopyInfo(
            prefix, state, listing.size, listing.nb_objects, location, task, problem, until
        )

    def _state(
        self, prefix: str, listing: _Listing
    ) -> tuple[CopyState, str | None, str, datetime | None]:
        """(state, task, problem, retain-until) as localfs judges them: one HEAD when
        the manifest's metadata says enough, its body read otherwise (a manifest
        written by other means, or by a palhm that did not record the task)."""
        if not listing.has_manifest:
            return "legacy", None, "", None
        manifest_key = self.key(prefix, MANIFEST_NAME)
        with self.errors(f"s3://{self.bucket}/{manifest_key}", "reading the state"):
            head = self.client.head_object(Bucket=self.bucket, Key=manifest_key)
        until = _retain_until(head)
        state, task, problem = self._judge(prefix, head)
        return state, task, problem, until

    def _judge(self, prefix: str, head: dict[str, Any]) -> tuple[CopyState, str | None, str]:
        metadata = head.get("Metadata", {})
        state = metadata.get(STATE_KEY)
        task = unquote(metadata[TASK_KEY]) if TASK_KEY in metadata else None
        if state in ("building", "removing"):
            return "incomplete", task, ""
        if state == "complete" and task is not None:
            if not head.get("ContentLength"):
                return "damaged", task, f"{MANIFEST_NAME} is empty"
            return ("complete" if task == self.task_id else "other-task"), task, ""
        data = self.read_manifest(prefix)
        if data is None:
            return "damaged", None, f"{MANIFEST_NAME} disappeared while it was listed"
        return judge_manifest(data, prefix, self.task_id)

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        start = len(self.key(prefix))
        for entry in self.list_keys(self.key(prefix)):
            path = entry["Key"][start:]
            if path != MANIFEST_NAME:
                yield path, entry["Size"]

    # -- copies -------------------------------------------------------------------------

    def retain_until(self, prefix: str) -> datetime | None:
        """The copy's prefix time plus the lock period (None without object-lock)."""
        if self.object_lock is None:
            return None
        start = parse_prefix(prefix)
        if start is None:  # never write a copy unlocked that was meant to be locked
            raise BackendError(f"{self.location(prefix)}: not a dated copy name: cannot lock it")
        return self.object_lock.retain_until(start)

    def check_object_lock(self) -> None:
        """With object-lock: BackendError unless the bucket has Object Lock enabled
        (asked once per backend, before the first write)."""
        if self.object_lock is None or self._lock_checked:
            return
        where = f"s3://{self.bucket}"
        try:
            with self.errors(where, "reading the Object Lock configuration"):
                response = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            problem = "" if enabled == "Enabled" else f"ObjectLockEnabled is {enabled!r}"
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if code == "ObjectLockConfigurationNotFoundError":
                problem = "the bucket was created without Object Lock"
            elif code in UNSUPPORTED_CODES and code not in DENIED_CODES:
                problem = f"the store does not support Object Lock ({exc})"
            elif code not in DENIED_CODES:
                raise
            else:
                raise BackendError(
                    f"{exc} (with object-lock, the key needs"
                    " s3:GetBucketObjectLockConfiguration on the bucket)"
                ) from exc
        if problem:
            raise BackendError(
                f"task '{self.task_id}': backend-param object-lock is set but bucket"
                f" {self.bucket} has no Object Lock: {problem}; nothing was written"
                " (create a bucket with Object Lock enabled: doc/aws.md, Object Lock)"
            )
        self._lock_checked = True

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> S3CopyWriter:
        location = self.location(prefix)
        self.check_object_lock()
        with self.errors(location, "checking for an existing copy"):
            response = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.key(prefix), MaxKeys=1
            )
        if response.get("KeyCount", 0) or response.get("Contents"):
            raise CollisionError(
                f"{location}: a copy named '{prefix}' already exists; nothing was written"
            )
        self._put_first_manifest(prefix, building_manifest)
        return S3CopyWriter(self, prefix, building_manifest)

    def _put_first_manifest(self, prefix: str, manifest: bytes) -> None:
        """The copy's first write, refused by the store if another run wrote it first
        (conditional-writes on/auto), then read back: the run id must be ours."""
        self._run_id = uuid.uuid4().hex
        if self.conditional_writes == "off":
            self.put_manifest(prefix, manifest, state="building")
            self.check_run_id(prefix)
            return
        try:
            self.put_manifest(prefix, manifest, state="building", if_none_match=True)
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise CollisionError(
                    f"{self.location(prefix)}: another run started a copy named '{prefix}'"
                    " at the same time; nothing was written"
                ) from None
            if code not in UNSUPPORTED_CODES or self.conditional_writes == "on":
                if code in UNSUPPORTED_CODES:
                    raise BackendError(
                        f"{exc}; the store refuses conditional writes (If-None-Match):"
                        " set backend-param conditional-writes to auto or off"
                    ) from exc
                raise
            log.warning(
                "%s: the store refused a conditional write (%s); writing without it: two"
                " runs starting the same copy at once are caught only by the run id read back"
                " (set conditional-writes to off to skip the attempt)",
                self.describe(), code,
            )  # fmt: skip
            self.put_manifest(prefix, manifest, state="building")
        else:
            self._probe_conditional_writes(prefix, manifest)
        self.check_run_id(prefix)

    def _probe_conditional_writes(self, prefix: str, manifest: bytes) -> None:
        """A second conditional write of the manifest must be refused; a store that
        accepts it ignores If-None-Match (and would let two runs share a copy)."""
        try:
            self.put_manifest(prefix, manifest, state="building", if_none_match=True)
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return  # refused as it must be
            raise
        if self.conditional_writes == "on":
            self.delete_prefix(prefix, list_uploads=False)  # only our manifest is there
            raise BackendError(
                f"{self.location(prefix)}: the store ignores conditional writes"
                " (If-None-Match: * was accepted on an existing key): set backend-param"
                " conditional-writes to auto or off; nothing was kept"
            )
        log.warning(
            "%s: the store ignores conditional writes (If-None-Match); two runs starting the"
            " same copy at once are caught only by the run id read back",
            self.describe(),
        )

    def check_run_id(self, prefix: str) -> None:
        """CollisionError unless the manifest still carries this run's id."""
        manifest_key = self.key(prefix, MANIFEST_NAME)
        with self.errors(self.location(prefix, MANIFEST_NAME), "reading the manifest back"):
            head = self.client.head_object(Bucket=self.bucket, Key=manifest_key)
        found = head.get("Metadata", {}).get(RUN_KEY)
        if found != self._run_id:
            raise CollisionError(
                f"{self.location(prefix)}: another run (id {found}) wrote the copy named"
                f" '{prefix}' at the same time; this run's objects are removed"
            )

    def put_manifest(
        self,
        prefix: str,
        body: bytes,
        *,
        state: str,
        if_none_match: bool = False,
        lock: bool = True,
    ) -> None:
        """Write ROOT/PREFIX/.palhm-manifest.json with its state in the metadata; a
        final manifest locked (object-lock) unless `lock` is False."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key(prefix, MANIFEST_NAME),
            "Body": body,
            "ContentType": "application/json",
            "Metadata": {
                STATE_KEY: state,
                HOST_KEY: socket.gethostname(),
                RUN_KEY: self._run_id,
                TASK_KEY: quote(self.task_id, safe=""),
            },
        }
        if self.checksum_mode == "md5":
            args["ContentMD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        if if_none_match:
            args["IfNoneMatch"] = "*"
        until = self.retain_until(prefix) if state == "complete" and lock else None
        if self.object_lock is not None and until is not None:
            args.update(lock_args(self.object_lock.mode, until))
            args["Metadata"][RETAIN_KEY] = until.isoformat()
        with self.errors(self.location(prefix, MANIFEST_NAME), "writing the manifest"):
            self.client.put_object(**args)
        if self.object_lock is not None and until is not None:
            with self.errors(self.location(prefix, MANIFEST_NAME), "reading the manifest back"):
                head = self.client.head_object(Bucket=self.bucket, Key=args["Key"])
            ensure_retention(
                self.client, self.bucket, args["Key"], head, self.object_lock.mode, until
            )

    def commit_manifest(self, prefix: str, manifest: bytes) -> None:
        """The copy's last write, then read back and parsed: a copy is committed only
        once its final manifest is known to be readable."""
        self.check_run_id(prefix)
        self.put_manifest(prefix, manifest, state="complete")
        where = self.location(prefix, MANIFEST_NAME)
        stored = self.read_manifest(prefix)
        if stored != manifest:
            got = "no manifest" if stored is None else f"{len(stored)} bytes"
            raise BackendError(
                f"{where}: the manifest read back differs from the one written"
                f" ({got}, {len(manifest)} written): {self.mismatch_hint()}"
            )
        try:
            parse_manifest(stored)
        except ValueError as error:
            raise BackendError(f"{where}: the manifest read back is unreadable: {error}") from None

    def remove_copy(self, copy: CopyInfo) -> None:
        if copy.state not in REMOVABLE_STATES or copy.location != self.location(copy.prefix):
            raise BackendError(f"refusing to remove {copy.location}: not a copy of this task")
        if copy.state == "incomplete":
            self._refuse_foreign_build(copy.prefix)
            self.delete_prefix(copy.prefix)
            return
        # a removal cut short must not leave a counted, broken copy
        final = self.read_manifest(copy.prefix) if copy.state == "complete" else None
        self.put_manifest(copy.prefix, REMOVING_MARKER, state="removing")
        faults.crashpoint("removing-marked")  # test facility (tests/reliability)
        try:
            self.delete_prefix(copy.prefix, list_uploads=False)  # committed: no uploads left
        except DeleteDeniedError as denied:
            if final is not None and denied.untouched:
                # nothing was deleted: the copy is whole, so it is complete again
                self.put_manifest(copy.prefix, final, state="complete", lock=False)
            raise

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

    def delete_prefix(
        self, prefix: str, *, uploads: Iterable[tuple[str, str]] = (), list_uploads: bool = True
    ) -> None:
        """Abort the copy's multipart uploads (`uploads`, those its building manifest
        records and, when `list_uploads`, those a listing finds), delete its keys in
        batches of at most 1,000, the manifest last."""
        known = {*uploads, *self.recorded_uploads(prefix)}
        for key, upload_id in sorted(known):
            self._abort_upload(key, upload_id)
        if list_uploads:
            self.abort_uploads(prefix, skip={upload_id for _, upload_id in known})
        manifest_key = self.key(prefix, MANIFEST_NAME)
        keys = [e["Key"] for e in self.list_keys(self.key(prefix)) if e["Key"] != manifest_key]
        for start in range(0, len(keys), DELETE_BATCH):
            self._delete_batch(prefix, keys[start : start + DELETE_BATCH], first=start == 0)
        self._delete_batch(prefix, [manifest_key], first=not keys)

    def recorded_uploads(self, prefix: str) -> list[tuple[str, str]]:
        """The multipart uploads a building manifest records (none when unreadable)."""
        try:
            document = json.loads(self.read_manifest(prefix) or b"")
        except (ValueError, BackendError) as error:
            log.debug("%s: no recorded uploads: %s", self.location(prefix), error)
            return []
        entries = document.get(UPLOADS_FIELD) if isinstance(document, dict) else None
        return [
            (entry["key"], entry["upload-id"])
            for entry in entries or ()
            if isinstance(entry, dict)
            and isinstance(entry.get("key"), str)
            and isinstance(entry.get("upload-id"), str)
            and entry["key"].startswith(self.key(prefix))  # never another copy's
        ]

    def _delete_batch(self, prefix: str, keys: list[str], *, first: bool) -> None:
        """Delete `keys`; DeleteDeniedError when the store refuses (AccessDenied),
        `untouched` when this is the copy's first batch and none of it went."""
        try:
            self._delete_keys(prefix, keys)
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if isinstance(exc, DeleteDeniedError) or code in DENIED_CODES:
                untouched = first and getattr(exc, "untouched", True)
                raise DeleteDeniedError(str(exc), untouched=untouched) from exc
            raise

    def _delete_keys(self, prefix: str, keys: list[str]) -> None:
        one_gone = False  # the first key went alone (DeleteObjects refused, see below)
        if self._delete_objects:
            try:
                self._delete_objects_call(prefix, keys)
                return
            except DeleteDeniedError as denied:
                if not denied.untouched or not self._deletes_one_by_one(keys[0], denied):
                    raise
                keys, one_gone = keys[1:], True
            except BackendError as exc:
                code = aws.error_code(exc.__cause__) if exc.__cause__ else None
                if code not in UNSUPPORTED_CODES or code in DENIED_CODES:
                    raise
                log.warning(
                    "%s: the store refused DeleteObjects (%s); deleting one key at a time",
                    self.describe(), code,
                )  # fmt: skip
                self._delete_objects = False
        for index, key in enumerate(keys):
            try:
                with self.errors(f"s3://{self.bucket}/{key}", "deleting"):
                    self.client.delete_object(Bucket=self.bucket, Key=key)
            except BackendError as exc:
                code = aws.error_code(exc.__cause__) if exc.__cause__ else None
                if code in DENIED_CODES:
                    untouched = index == 0 and not one_gone
                    raise DeleteDeniedError(str(exc), untouched=untouched) from exc
                raise

    def _deletes_one_by_one(self, key: str, denied: DeleteDeniedError) -> bool:
        """DeleteObjects refused every key: try DeleteObject on the first alone. Some
        stores (moto) authorise DeleteObjects against the bucket rather than each key,
        so a policy allowing s3:DeleteObject on ROOT/* only is refused there: True
        (and one key at a time from now on) when the single delete works; raises
        DeleteDeniedError (nothing deleted) when it is refused too."""
        try:
            with self.errors(f"s3://{self.bucket}/{key}", "deleting"):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if code in DENIED_CODES:
                raise DeleteDeniedError(f"{denied}; {exc}", untouched=True) from exc
            raise
        log.warning(
            "%s: the store refused DeleteObjects (AccessDenied) but deletes one key at a"
            " time; deleting one key at a time",
            self.describe(),
        )
        self._delete_objects = False
        return True

    def _delete_objects_call(self, prefix: str, keys: list[str]) -> None:
        with self.errors(self.location(prefix), "deleting"):
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            message = (
                f"s3://{self.bucket}/{first.get('Key')}: deleting failed: "
                f"{first.get('Code')}: {first.get('Message')} ({len(errors)} key(s) not deleted)"
            )
            if all(error.get("Code") in DENIED_CODES for error in errors):
                raise DeleteDeniedError(message, untouched=len(errors) == len(keys))
            raise BackendError(message)

    def abort_uploads(self, prefix: str, *, skip: Set[str] = frozenset()) -> None:
        """Abort every unfinished multipart upload a listing finds under ROOT/PREFIX/
        (hidden parts cost). Best effort: a store that cannot list them gives a warning."""
        try:
            with self.errors(self.location(prefix), "listing multipart uploads"):
                pages = self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=self.key(prefix)
                )
                found = [
                    (upload["Key"], upload["UploadId"])
                    for page in pages
                    for upload in page.get("Uploads", ())
                ]
        except BackendError as exc:
            code = aws.error_code(exc.__cause__) if exc.__cause__ else None
            if code not in LIST_UPLOADS_UNSUPPORTED:
                raise
            log.warning(
                "%s (the recorded uploads were aborted; uploads of a run that died before"
                " recording them are left to a lifecycle rule)",
                exc,
            )
            return
        for key, upload_id in found:
            if upload_id not in skip:
                self._abort_upload(key, upload_id)

    def _abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one upload; gone already is fine, a refusal is a warning (the keys are
        still deleted; the store keeps the parts until a lifecycle rule expires them)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            code = aws.error_code(exc)
            if code in GONE_CODES:
                return
            if code in LIST_UPLOADS_UNSUPPORTED or code in UNSUPPORTED_CODES:
                log.warning(
                    "s3://%s/%s: aborting multipart upload %s failed: %s",
                    self.bucket, key, upload_id, aws.describe_error(exc),
                )  # fmt: skip
                return
            if aws.is_aws_error(exc):
                raise BackendError(
                    f"s3://{self.bucket}/{key}: aborting multipart upload {upload_id} failed:"
                    f" {aws.describe_error(exc)}"
                ) from exc
            raise

    # -- after commit, reading ----------------------------------------------------------

    def after_commit(self, prefix: str) -> None:
        """Move the new copy's objects to rot-storage-class, if set."""
        if not self.rot_storage_class:
            return
        entries = [
            entry
            for entry in self.list_keys(self.key(prefix))
            if entry["Key"] != self.key(prefix, MANIFEST_NAME)
            and entry.get("StorageClass", "STANDARD") != self.rot_storage_class
        ]
        for done, entry in enumerate(entries):
            try:
                s3_transition.change_storage_class(
                    self, entry["Key"], entry["Size"], self.rot_storage_class
                )
            except BackendError as error:
                # The copy is committed and intact in its class: never block rotation.
                log.warning(
                    "task '%s': %s; the copy stays in its storage class (%d of %d object(s)"
                    " moved); check rot-storage-class against what the store offers",
                    self.task_id, error, done, len(entries),
                )  # fmt: skip
                return
            try:
                self._relock(prefix, entry["Key"])
            except BackendError as error:
                # Moved, but its new version is unlocked: stop before unlocking more.
                log.warning(
                    "task '%s': %s; %s was moved to %s but its new version is not locked"
                    " (the locked version it replaced stays until its date); moving"
                    " stopped after %d of %d object(s)",
                    self.task_id, error, entry["Key"], self.rot_storage_class, done + 1,
                    len(entries),
                )  # fmt: skip
                return

    def _relock(self, prefix: str, key: str) -> None:
        """With object-lock: lock the version a storage-class move wrote (a copy onto
        itself is a new version; the locked one it replaced stays until its date).
        PutObjectRetention, as a locked CopyObject needs a checksum some stores lack."""
        until = self.retain_until(prefix)
        if self.object_lock is None or until is None:
            return
        retention = {"Mode": self.object_lock.mode, "RetainUntilDate": until}
        with self.errors(f"s3://{self.bucket}/{key}", "locking after the move"):
            self.client.put_object_retention(Bucket=self.bucket, Key=key, Retention=retention)

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
    """A copy being uploaded. Objects are streamed by S3ObjectSink; each multipart
    upload started is recorded in the building manifest before its first part."""

    def __init__(self, backend: S3Backend, prefix: str, building_manifest: bytes) -> None:
        self.backend = backend
        self.prefix = prefix
        self._budget = UploadBudget()  # parts in flight of all objects together
        self._building = building_manifest
        self._uploads: dict[str, str] = {}  # upload id -> key, in start order
        self._done: set[str] = set()  # upload ids completed
        self._record_lock = threading.Lock()
        rate = backend.upload_rate
        self._throttle = Throttle(rate) if rate is not None else None  # the whole copy's

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        backend = self.backend
        mode = backend.checksum_mode
        target = UploadTarget(
            client=backend.client,
            bucket=backend.bucket,
            key=backend.key(self.prefix, path),
            storage_class=backend.sink_storage_class,
            checksum=backend.checksum,
            content_md5=mode == "md5",
            on_multipart=self._record_upload,
            mismatch_hint=backend.mismatch_hint(),
            lock_mode=backend.object_lock.mode if backend.object_lock else None,
            retain_until=backend.retain_until(self.prefix),
        )
        schedule = plan_parts(backend.part_size, alloc_size, LIMITS, equal=backend.equal_parts)
        check_announced_size(schedule, alloc_size, target.location)
        sink = _RecordingSink(target, schedule, self._budget, self._done)
        return ThrottledSink(sink, self._throttle) if self._throttle else sink

    def _record_upload(self, key: str, upload_id: str) -> None:
        """Rewrite the building manifest with every upload not yet completed."""
        with self._record_lock:
            self._uploads[upload_id] = key
            pending = [
                {"key": k, "upload-id": u} for u, k in self._uploads.items() if u not in self._done
            ]
            document = json.loads(self._building)
            document[UPLOADS_FIELD] = pending
            body = json.dumps(document, indent=2).encode() + b"\n"
            self.backend.put_manifest(self.prefix, body, state="building")

    def commit(self, manifest: bytes) -> None:
        self.backend.commit_manifest(self.prefix, manifest)

    def rollback(self) -> None:
        with self._record_lock:
            started = [(key, upload_id) for upload_id, key in self._uploads.items()]
        self.backend.delete_prefix(self.prefix, uploads=started)


class _RecordingSink(S3ObjectSink):
    """S3ObjectSink that notes its upload id as completed once the object is stored."""

    def __init__(
        self, target: UploadTarget, schedule: Any, budget: UploadBudget, done: set[str]
    ) -> None:
        super().__init__(target, schedule, budget)
        self._done_ids = done

    def close(self) -> int:
        size = super().close()
        if self.upload_id is not None:
            self._done_ids.add(self.upload_id)
        return size


# Storage classes of stores recognised by their endpoint's host name; any other
# endpoint (Ceph, MinIO, SeaweedFS ... configurable) is not judged.
KNOWN_CLASSES: Final = {
    "AWS S3": frozenset(
        {"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
         "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE"}
    ),
    "Cloudflare R2": frozenset({"STANDARD", "STANDARD_IA"}),
    "Backblaze B2": frozenset({"STANDARD"}),
    "Wasabi": frozenset({"STANDARD"}),
}  # fmt: skip
_STORE_HOSTS: Final = (
    (".r2.cloudflarestorage.com", "Cloudflare R2"),
    (".backblazeb2.com", "Backblaze B2"),
    (".wasabisys.com", "Wasabi"),
)


def store_name(endpoint_url: str | None) -> str | None:
    """The store an endpoint URL names, when palhm can tell (None: unknown)."""
    if aws.is_aws_endpoint(endpoint_url):
        return "AWS S3"
    host = (urlsplit(endpoint_url or "").hostname or "").lower()
    return next((name for suffix, name in _STORE_HOSTS if host.endswith(suffix)), None)


def storage_class_warnings(task_id: str, params: Mapping[str, Any]) -> list[str]:
    """`config check`: storage classes the task's store does not offer, where the store
    is known from its endpoint (endpoint-url, else AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL)."""
    endpoint = (
        params.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    store = store_name(endpoint)
    if store is None:
        return []
    found = []
    for key in ("sink_storage_class", "rot_storage_class"):
        value = params.get(key)
        if value and value not in KNOWN_CLASSES[store]:
            found.append(
                f"task '{task_id}': backend-param {key.replace('_', '-')} {value!r} is not a"
                f" storage class of {store} ({', '.join(sorted(KNOWN_CLASSES[store]))})"
            )
    return found


def _retain_until(head: Mapping[str, Any]) -> datetime | None:
    """A manifest's retain-until date: the store's lock (shown to keys with
    s3:GetObjectRetention), else the date palhm wrote in its metadata."""
    shown = head.get("ObjectLockRetainUntilDate")
    if isinstance(shown, datetime):
        return shown
    written = head.get("Metadata", {}).get(RETAIN_KEY)
    try:
        return datetime.fromisoformat(written) if written else None
    except ValueError:
        return None


def _choice(params: Mapping[str, Any], name: str, allowed: tuple[str, ...], task_id: str) -> str:
    value = params.get(name) or "auto"
    if value not in allowed:
        key = name.replace("_", "-")
        raise BackendError(
            f"task '{task_id}': backend-param {key} is {value!r}; expected one of"
            f" {', '.join(allowed)}"
        )
    return str(value)


def _add_content_md5(request: Any, **_: Any) -> None:
    """botocore hook: Content-MD5 on DeleteObjects, which some stores require (botocore
    sends a CRC32 there since 1.36)."""
    body = request.body
    if isinstance(body, bytes | bytearray) and "Content-MD5" not in request.headers:
        request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def _check_part_size(part_size: int | None, task_id: str) -> None:
    limits = LIMITS
    if part_size is not None and not limits.min_part_size <= part_size <= limits.max_part_size:
        raise BackendError(
            f"task '{task_id}': backend-param part-size {part_size} is outside S3's part size"
            f" range {limits.min_part_size}-{limits.max_part_size} bytes"
        )
