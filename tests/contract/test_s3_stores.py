"""The aws-s3 contract on real S3-compatible stores, through the CLI as a user runs it.

Every case runs on moto, SeaweedFS and Ceph RGW, each over HTTP and over HTTPS (a
self-signed certificate given through AWS_CA_BUNDLE), with palhm's default settings:
a single-PUT object and a multipart object backed up, verified, read back byte for
byte and rotated; a failed run and a run killed mid-upload leave no keys and no
uploads behind; a storage class the store lacks never blocks rotation. s3rver, the
degraded store (no ListMultipartUploads, AbortMultipartUpload refused, If-None-Match
ignored, aws-chunked framing kept inside objects over HTTPS), must never get a silent
bad copy: a clear error or a warning for what it cannot do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import MANIFEST_NAME
from palhm.manifest import parse_manifest
from tests.helpers import descendants, run_palhm, wait_for, write_config
from tests.services.s3stores import S3Store, store_by_name

pytestmark = pytest.mark.services

MiB = 1 << 20
ROOT = "palhm/host1"
SMALL = 100_000  # one PutObject
BIG = 11 * MiB  # three parts of 5 MiB


def config(
    store: S3Store, bucket: str, objects: list[dict[str, Any]], **params: Any
) -> dict[str, Any]:
    return {
        "modules": ["aws"],
        "tasks": [
            {
                "id": "backup",
                "type": "backup",
                "backend": "aws-s3",
                "backend-param": {
                    "bucket": bucket,
                    "root": f"/{ROOT}/",
                    "endpoint-url": store.endpoint_url,
                    "region": "us-east-1",
                    "part-size": 5 * MiB,
                    # several runs a second: copies must not collide
                    "prefix": {"type": "iso8601", "timespec": "microseconds"},
                    **params,
                },
                "objects": objects,
            }
        ],
    }


def cat(path: str, source: Path) -> dict[str, Any]:
    return {"path": path, "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}]}


def python_object(path: str, code: str) -> dict[str, Any]:
    return {
        "path": path,
        "pipeline": [{"type": "exec-inline", "argv": [sys.executable, "-c", code]}],
    }


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    files = {"small.bin": os.urandom(SMALL), "big.bin": os.urandom(BIG)}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(content)
    return paths


def palhm(store: S3Store, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_palhm(["-f", str(cfg), *args], env=store.env, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def palhm_bytes(store: S3Store, cfg: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "palhm", "-f", str(cfg), *args],
        env={**os.environ, **store.env},
        capture_output=True,
        timeout=300,
        check=False,
    )


def listing(store: S3Store, bucket: str) -> dict[str, dict[str, Any]]:
    """prefix -> {path: listing entry} of everything under ROOT."""
    found: dict[str, dict[str, Any]] = {}
    client = store.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ROOT):
        for entry in page.get("Contents", ()):
            prefix, _, path = entry["Key"][len(ROOT) + 1 :].partition("/")
            found.setdefault(prefix, {})[path] = entry
    return found


def uploads(store: S3Store, bucket: str) -> list[Any]:
    return list(store.client().list_multipart_uploads(Bucket=bucket).get("Uploads", ()))


def assert_no_uploads(store: S3Store, bucket: str) -> None:
    if store.lists_uploads:
        assert uploads(store, bucket) == []


def manifest_of(store: S3Store, bucket: str, prefix: str) -> bytes:
    key = f"{ROOT}/{prefix}/{MANIFEST_NAME}"
    body: bytes = store.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


# --------------------------------------------------------------------------- full stores


def test_backup_verify_get_and_rotation(
    store_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    store, bucket = store_bucket
    objects = [cat(name, path) for name, path in data.items()]
    cfg = write_config(
        tmp_path / "palhm.json", config(store, bucket, objects, **{"nb-copy-limit": 2})
    )

    first = palhm(store, cfg, "run", "backup")
    assert first.returncode == 0, first.stderr
    ((prefix, entries),) = listing(store, bucket).items()
    assert {path: entry["Size"] for path, entry in entries.items() if path != MANIFEST_NAME} == {
        "small.bin": SMALL,
        "big.bin": BIG,
    }
    assert "-" in entries["big.bin"]["ETag"]  # a multipart upload ...
    assert "-" not in entries["small.bin"]["ETag"]  # ... and a single PUT
    manifest = parse_manifest(manifest_of(store, bucket, prefix))
    assert manifest.state == "complete"
    assert_no_uploads(store, bucket)

    verified = palhm(store, cfg, "verify", "backup")
    assert verified.returncode == 0, verified.stderr
    for name, path in data.items():
        got = palhm_bytes(store, cfg, "get", "backup", "latest", name)
        assert got.returncode == 0, got.stderr
        assert got.stdout == path.read_bytes()

    for _ in range(2):
        again = palhm(store, cfg, "run", "backup")
        assert again.returncode == 0, again.stderr
    copies = listing(store, bucket)
    assert len(copies) == 2 and prefix not in copies  # the oldest went first
    assert_no_uploads(store, bucket)


def test_failed_run_leaves_no_keys_and_no_uploads(
    store_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    store, bucket = store_bucket
    failing = python_object(
        "dump.sql",  # a multipart upload under way, then the dump fails
        "import os, sys; sys.stdout.buffer.write(os.urandom(12 << 20)); sys.exit(3)",
    )
    objects = [cat("big.bin", data["big.bin"]), failing]
    cfg = write_config(tmp_path / "palhm.json", config(store, bucket, objects))
    result = palhm(store, cfg, "run", "backup")
    assert result.returncode != 0
    assert "dump.sql" in result.stderr
    assert listing(store, bucket) == {}
    assert_no_uploads(store, bucket)


def test_run_killed_mid_upload_is_cleaned_up_by_the_next_run(
    store_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    killed_then_cleaned_up(*store_bucket, data, tmp_path)


def test_degraded_store_run_killed_mid_upload_is_cleaned_up(
    degraded_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    """No ListMultipartUploads, no AbortMultipartUpload: the keys still go, with
    warnings for the parts the store keeps."""
    result = killed_then_cleaned_up(*degraded_bucket, data, tmp_path)
    assert "listing multipart uploads failed: NotImplemented" in result.stderr
    assert "aborting multipart upload" in result.stderr


def killed_then_cleaned_up(
    store: S3Store, bucket: str, data: dict[str, Path], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    stalled = python_object(
        "dump.sql",  # two parts' worth, then a dump that hangs
        "import os, sys, time; sys.stdout.buffer.write(os.urandom(11 << 20));"
        " sys.stdout.flush(); time.sleep(120)",
    )
    killed_cfg = write_config(tmp_path / "killed.json", config(store, bucket, [stalled]))
    process = subprocess.Popen(
        [sys.executable, "-m", "palhm", "-f", str(killed_cfg), "run", "backup"],
        env={**os.environ, **store.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        prefix = wait_for(
            lambda: _recorded_upload(store, bucket), timeout=120, what="a recorded upload"
        )
        children = descendants(process.pid)
        process.send_signal(signal.SIGKILL)  # palhm dies; its dump is killed too
        process.wait()
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert prefix in listing(store, bucket)
    if store.lists_uploads:
        assert uploads(store, bucket)  # parts left behind by the dead run

    cfg = write_config(
        tmp_path / "palhm.json", config(store, bucket, [cat("small.bin", data["small.bin"])])
    )
    result = palhm(store, cfg, "run", "backup")
    assert result.returncode == 0, result.stderr
    assert "removing incomplete copy" in result.stderr
    copies = listing(store, bucket)
    assert prefix not in copies and len(copies) == 1
    assert_no_uploads(store, bucket)
    return result


def _recorded_upload(store: S3Store, bucket: str) -> str | None:
    """The prefix of a copy whose building manifest records a multipart upload."""
    for prefix in listing(store, bucket):
        try:
            document = json.loads(manifest_of(store, bucket, prefix))
        except Exception:  # noqa: BLE001 - not written yet
            continue
        if document.get("s3-multipart-uploads"):
            return prefix
    return None


def test_storage_class_the_store_lacks(
    store_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    """rot-storage-class: a refused move is a warning and rotation still happens;
    sink-storage-class: the upload fails clearly and nothing is left."""
    store, bucket = store_bucket
    objects = [cat("small.bin", data["small.bin"])]
    params = {"rot-storage-class": "NO_SUCH_CLASS", "nb-copy-limit": 1}
    cfg = write_config(tmp_path / "rot.json", config(store, bucket, objects, **params))
    for _ in range(2):
        result = palhm(store, cfg, "run", "backup")
        assert result.returncode == 0, result.stderr
        entries = next(iter(listing(store, bucket).values()))
        moved = entries["small.bin"].get("StorageClass") == "NO_SUCH_CLASS"
        assert moved or "the copy stays in its storage class" in result.stderr
    assert len(listing(store, bucket)) == 1  # rotation went on

    sink = {"sink-storage-class": "NO_SUCH_CLASS"}
    cfg = write_config(tmp_path / "sink.json", config(store, bucket, objects, **sink))
    before = set(listing(store, bucket))
    result = palhm(store, cfg, "run", "backup")
    if result.returncode == 0:  # a store that takes any class name
        assert len(listing(store, bucket)) == 2
        return
    assert "small.bin: upload failed" in result.stderr
    assert set(listing(store, bucket)) == before
    assert_no_uploads(store, bucket)


def test_rot_storage_class_moves_where_the_store_has_the_class(
    store_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    """STANDARD_IA: moto and SeaweedFS (which wants the metadata replaced to copy an
    object onto itself) move the objects, metadata kept; Ceph lacks it: a warning."""
    store, bucket = store_bucket
    objects = [cat("small.bin", data["small.bin"])]
    params = {"rot-storage-class": "STANDARD_IA"}
    cfg = write_config(tmp_path / "palhm.json", config(store, bucket, objects, **params))
    result = palhm(store, cfg, "run", "backup")
    assert result.returncode == 0, result.stderr
    ((prefix, entries),) = listing(store, bucket).items()
    if store.kind == "ceph":
        assert "the copy stays in its storage class" in result.stderr
        return
    assert entries["small.bin"].get("StorageClass") == "STANDARD_IA", result.stderr
    got = palhm_bytes(store, cfg, "get", "backup", "latest", "small.bin")
    assert got.stdout == data["small.bin"].read_bytes()


def test_forced_crc32_works_or_fails_clearly(
    store_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    """request-checksums crc32 (what AWS gets): over HTTPS botocore sends aws-chunked
    bodies, which Ceph 16 refuses (411); the error says what to set."""
    store, bucket = store_bucket
    objects = [cat(name, path) for name, path in data.items()]
    params = {"request-checksums": "crc32"}
    cfg = write_config(tmp_path / "palhm.json", config(store, bucket, objects, **params))
    result = palhm(store, cfg, "run", "backup")
    if store.name == "ceph-https":
        assert result.returncode == 1
        assert "MissingContentLength" in result.stderr
        assert "set the aws-s3 backend-param request-checksums to md5" in result.stderr
        assert listing(store, bucket) == {}
        return
    assert result.returncode == 0, result.stderr
    verified = palhm(store, cfg, "verify", "backup")
    assert verified.returncode == 0, verified.stderr


def test_store_verifies_content_md5(store_bucket: tuple[S3Store, str]) -> None:
    """What request-checksums md5 (the default off AWS) relies on."""
    store, bucket = store_bucket
    if store.kind == "moto":
        pytest.skip("moto does not check Content-MD5")
    client = store.client()
    with pytest.raises(Exception, match="BadDigest|InvalidDigest"):
        client.put_object(
            Bucket=bucket, Key="x", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="
        )


# --------------------------------------------------------------------------- s3rver


def test_degraded_store_backup_rotation_and_failed_run(
    degraded_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    store, bucket = degraded_bucket
    objects = [cat(name, path) for name, path in data.items()]
    cfg = write_config(
        tmp_path / "palhm.json", config(store, bucket, objects, **{"nb-copy-limit": 1})
    )
    for _ in range(2):
        result = palhm(store, cfg, "run", "backup")
        assert result.returncode == 0, result.stderr
        assert "ignores conditional writes" in result.stderr  # said, not hidden
    ((prefix, entries),) = listing(store, bucket).items()
    assert entries["big.bin"]["Size"] == BIG and entries["small.bin"]["Size"] == SMALL
    verified = palhm(store, cfg, "verify", "backup")
    assert verified.returncode == 0, verified.stderr
    got = palhm_bytes(store, cfg, "get", "backup", "latest", "big.bin")
    assert got.stdout == data["big.bin"].read_bytes()

    failing = python_object(
        "dump.sql", "import os, sys; sys.stdout.buffer.write(os.urandom(12 << 20)); sys.exit(3)"
    )
    cfg = write_config(tmp_path / "fail.json", config(store, bucket, [failing]))
    result = palhm(store, cfg, "run", "backup")
    assert result.returncode != 0
    assert "dump.sql" in result.stderr
    assert "listing multipart uploads failed" in result.stderr  # a warning, not the error
    assert set(listing(store, bucket)) == {prefix}


def test_degraded_store_with_crc32_never_commits_a_bad_copy(
    degraded_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    """Forced CRC32: over HTTPS s3rver stores the aws-chunked framing; the size check
    catches it, the run fails naming the cause, and nothing is left."""
    store, bucket = degraded_bucket
    objects = [cat(name, path) for name, path in data.items()]
    params = {"request-checksums": "crc32"}
    cfg = write_config(tmp_path / "palhm.json", config(store, bucket, objects, **params))
    result = palhm(store, cfg, "run", "backup")
    if store.endpoint_url.startswith("http://"):  # checksums in a header: fine
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1
    assert "aws-chunked" in result.stderr and "request-checksums" in result.stderr
    assert listing(store, bucket) == {}


def test_degraded_store_refuses_conditional_writes_on(
    degraded_bucket: tuple[S3Store, str], data: dict[str, Path], tmp_path: Path
) -> None:
    store, bucket = degraded_bucket
    objects = [cat("small.bin", data["small.bin"])]
    params = {"conditional-writes": "on"}
    cfg = write_config(tmp_path / "palhm.json", config(store, bucket, objects, **params))
    result = palhm(store, cfg, "run", "backup")
    assert result.returncode == 1
    assert "the store ignores conditional writes" in result.stderr
    assert listing(store, bucket) == {}
    off = write_config(
        tmp_path / "off.json", config(store, bucket, objects, **{"conditional-writes": "off"})
    )
    result = palhm(store, off, "run", "backup")
    assert result.returncode == 0, result.stderr
    assert "conditional" not in result.stderr


# --------------------------------------------------------------------------- Object Lock

# Object Lock does not depend on the protocol: each store once, over HTTP.
LOCK_STORES = ("moto-http", "seaweedfs-http", "ceph-http", "s3rver-http")


@contextmanager
def locked_bucket(store: S3Store) -> Iterator[tuple[str, str | None]]:
    """(bucket created with Object Lock enabled, None) or (bucket, why the store has no
    Object Lock: its answer to GetObjectLockConfiguration). Every version is removed
    afterwards (GOVERNANCE locks bypassed), best effort."""
    client = store.client()
    name = f"palhm-lock-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    reason = None
    try:
        enabled = client.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
        if enabled.get("ObjectLockEnabled") != "Enabled":
            reason = f"GetObjectLockConfiguration answers {enabled}"
    except Exception as exc:  # noqa: BLE001 - the store's own answer is the reason
        reason = f"GetObjectLockConfiguration answers {exc}"
    try:
        yield name, reason
    finally:
        _remove_versions(client, name)


def _remove_versions(client: Any, bucket: str) -> None:
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for entry in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]:
                client.delete_object(
                    Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"],
                    BypassGovernanceRetention=True,
                )  # fmt: skip
        client.delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - a store without versions: the session dir goes
        pass


@pytest.mark.parametrize("store_name", LOCK_STORES)
def test_object_lock_on_each_store(
    request: pytest.FixtureRequest, store_name: str, data: dict[str, Path], tmp_path: Path
) -> None:
    """Every object (single PUT and multipart) and the manifest locked until the copy's
    date; the next run keeps the locked copy and succeeds. A store without Object Lock
    is refused before anything is written, then the case is skipped with its answer."""
    store = store_by_name(request, store_name)
    with locked_bucket(store) as (bucket, unsupported):
        objects = [cat(name, path) for name, path in data.items()]
        params = {"object-lock": {"mode": "GOVERNANCE", "period": "1d"}, "nb-copy-limit": 1}
        cfg = write_config(tmp_path / "palhm.json", config(store, bucket, objects, **params))
        first = palhm(store, cfg, "run", "backup")
        if unsupported is not None:
            assert first.returncode == 1
            assert f"bucket {bucket} has no Object Lock" in first.stderr
            assert listing(store, bucket) == {}
            pytest.skip(f"{store.kind} does not support S3 Object Lock: {unsupported}")
        assert first.returncode == 0, first.stderr
        ((prefix, entries),) = listing(store, bucket).items()
        expected = parse_manifest(manifest_of(store, bucket, prefix)).retain_until
        assert expected is not None
        for path in entries:
            head = store.client().head_object(Bucket=bucket, Key=f"{ROOT}/{prefix}/{path}")
            assert head.get("ObjectLockMode") == "GOVERNANCE", path
            assert head.get("ObjectLockRetainUntilDate") == expected, path
        second = palhm(store, cfg, "run", "backup")
        assert second.returncode == 0, second.stderr
        assert len(listing(store, bucket)) == 2  # the locked copy was not tried
        assert "locked copies" in second.stderr
