"""Moving an object to another storage class in place (aws-s3 `rot-storage-class`).

S3 changes the class of an object only by copying it: CopyObject onto itself
(metadata kept, MetadataDirective COPY) up to 5 GiB, the single-copy limit (the
original PALHM failed above it); a multipart copy (UploadPartCopy of byte ranges,
guarded by the source's ETag) above. Everything happens inside S3: no data passes
through this host.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

from palhm import aws
from palhm.backends.s3.upload import GiB, MiB
from palhm.errors import BackendError

log = logging.getLogger(__name__)


class Bucket(Protocol):
    """What a move needs of the backend: its client, bucket, checksum setting and error
    translation. The S3 backend is one; this module never imports it (no cycle)."""

    bucket: str

    @property
    def checksum(self) -> str | None: ...

    @property
    def client(self) -> Any: ...

    def errors(self, where: str, action: str) -> AbstractContextManager[None]: ...


# Module constants so tests can take the multipart branch with small objects.
MULTIPART_COPY_THRESHOLD: int = 5 * GiB  # CopyObject's limit
COPY_PART_SIZE: int = 512 * MiB
MAX_COPY_PARTS: Final = 10_000
MAX_COPY_PART_SIZE: Final = 5 * GiB
COPY_THREADS: Final = 4
# Headers a copy with MetadataDirective REPLACE would otherwise drop.
KEPT_HEADERS: Final = (
    "ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl",
)  # fmt: skip


def change_storage_class(backend: Bucket, key: str, size: int, storage_class: str) -> None:
    """Rewrite s3://BUCKET/KEY in `storage_class`. Raises BackendError naming the key."""
    log.debug("s3://%s/%s: moving to %s", backend.bucket, key, storage_class)
    if size <= MULTIPART_COPY_THRESHOLD:
        _copy_in_place(backend, key, storage_class)
    else:
        _multipart_copy(backend, key, size, storage_class)


def _copy_in_place(backend: Bucket, key: str, storage_class: str) -> None:
    args: dict[str, Any] = {
        "Bucket": backend.bucket,
        "Key": key,
        "CopySource": {"Bucket": backend.bucket, "Key": key},
        "StorageClass": storage_class,
    }
    if backend.checksum:  # a fresh full-object checksum (a multipart one is per part)
        args["ChecksumAlgorithm"] = backend.checksum
    where = f"s3://{backend.bucket}/{key}"
    try:
        with backend.errors(where, f"moving to {storage_class}"):
            backend.client.copy_object(**args, MetadataDirective="COPY")
    except BackendError as error:
        if error.__cause__ is None or aws.error_code(error.__cause__) != "InvalidRequest":
            raise
        # Some stores (SeaweedFS, s3rver) refuse a copy onto itself unless the metadata
        # is replaced: replace it by itself, guarded by the ETag read with it.
        with backend.errors(where, f"moving to {storage_class}"):
            head = backend.client.head_object(Bucket=backend.bucket, Key=key)
            kept = {name: head[name] for name in KEPT_HEADERS if head.get(name)}
            backend.client.copy_object(
                **args,
                **kept,
                MetadataDirective="REPLACE",
                Metadata=head.get("Metadata", {}),
                CopySourceIfMatch=head["ETag"],
            )


def copy_ranges(size: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges of a multipart copy: COPY_PART_SIZE, or larger when needed
    to stay within 10,000 parts."""
    part = min(max(COPY_PART_SIZE, -(-size // MAX_COPY_PARTS)), MAX_COPY_PART_SIZE)
    return [(start, min(start + part, size) - 1) for start in range(0, size, part)]


def _multipart_copy(backend: Bucket, key: str, size: int, storage_class: str) -> None:
    where = f"s3://{backend.bucket}/{key}"
    with backend.errors(where, f"moving to {storage_class}"):
        head = backend.client.head_object(Bucket=backend.bucket, Key=key)
        create: dict[str, Any] = {
            "Bucket": backend.bucket,
            "Key": key,
            "StorageClass": storage_class,
            "Metadata": head.get("Metadata", {}),
        }
        if head.get("ContentType"):
            create["ContentType"] = head["ContentType"]
        if backend.checksum:
            create["ChecksumAlgorithm"] = backend.checksum
        upload_id = backend.client.create_multipart_upload(**create)["UploadId"]
    try:
        parts = _copy_parts(backend, key, upload_id, head["ETag"], size)
        with backend.errors(where, f"moving to {storage_class} (completing the copy)"):
            backend.client.complete_multipart_upload(
                Bucket=backend.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
    except BaseException:
        _abort_quietly(backend, key, upload_id)
        raise


def _copy_parts(
    backend: Bucket, key: str, upload_id: str, etag: str, size: int
) -> list[dict[str, Any]]:
    """UploadPartCopy of every range, a few at a time; the ETag guard makes S3 refuse
    if the object changed meanwhile."""

    def copy_part(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
        number, (first, last) = numbered
        with backend.errors(f"s3://{backend.bucket}/{key}", f"copying part {number}"):
            response = backend.client.upload_part_copy(
                Bucket=backend.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": backend.bucket, "Key": key},
                CopySourceRange=f"bytes={first}-{last}",
                CopySourceIfMatch=etag,
            )
        result = response["CopyPartResult"]
        part = {"PartNumber": number, "ETag": result["ETag"]}
        checksum_key = f"Checksum{backend.checksum}"
        if backend.checksum and result.get(checksum_key):
            part[checksum_key] = result[checksum_key]
        return part

    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="palhm-s3-copy") as pool:
        return list(pool.map(copy_part, enumerate(copy_ranges(size), start=1)))


def _abort_quietly(backend: Bucket, key: str, upload_id: str) -> None:
    try:
        backend.client.abort_multipart_upload(Bucket=backend.bucket, Key=key, UploadId=upload_id)
    except Exception as exc:  # the original failure is what the user must see
        log.warning("s3://%s/%s: aborting the copy upload failed: %s", backend.bucket, key, exc)
