"""aws-s3 against stores that refuse parts of the S3 API the way some S3-compatible
stores do: a real moto server behind a small HTTP proxy that answers chosen requests
with an S3 error (tests/services/s3stores.py `refusing_proxy`), through boto3 over
HTTP as in production. Plus the settings' parsing and the store-dependent defaults."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from palhm import aws
from palhm.backends.s3 import backend as s3
from palhm.backends.s3.backend import S3Backend, storage_class_warnings, store_name
from palhm.backends.s3.upload import GiB, MiB, S3Limits, TiB, check_announced_size, plan_parts
from palhm.errors import BackendError
from palhm.manifest import Manifest, building_manifest, encode_manifest
from tests.helpers import run_palhm, write_config
from tests.services.moto import MotoServer
from tests.services.s3stores import Refusal, refusing_proxy

NEW = "2024-01-03T00:00:00+00:00"
WHEN = datetime(2024, 1, 3, tzinfo=UTC)
BUILDING = encode_manifest(building_manifest("t", NEW, WHEN))
FINAL = encode_manifest(Manifest("t", NEW, WHEN, WHEN, host="test-host"))
ROOT = "palhm/root"


def if_none_match(method: str, path: str, headers: Any) -> bool:
    return method == "PUT" and "If-None-Match" in headers


def delete_objects(method: str, path: str, headers: Any) -> bool:
    return method == "POST" and path.endswith("?delete")


def list_uploads(method: str, path: str, headers: Any) -> bool:
    return method == "GET" and "uploads" in path.partition("?")[2].split("&")


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3, "LIMITS", S3Limits(1024, 64 * 1024, 40, 400 * 1024))


Proxied = Callable[..., Any]


@pytest.fixture
def proxied(
    moto_server: MotoServer, s3_bucket: str, small_parts: None
) -> Iterator[Callable[..., S3Backend]]:
    """`(refusals, **params) -> S3Backend` through a refusing proxy to the test bucket."""
    stack: list[Any] = []

    def make(refusals: list[Refusal], **params: Any) -> S3Backend:
        proxy = refusing_proxy(moto_server.endpoint_url, refusals)
        stack.append(proxy)
        endpoint = proxy.__enter__()
        merged = {"bucket": s3_bucket, "root": ROOT, "endpoint_url": endpoint, **params}
        return S3Backend({"region": "us-east-1", **merged}, task_id="t")

    yield make
    for proxy in reversed(stack):
        proxy.__exit__(None, None, None)


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [entry["Key"] for page in pages for entry in page.get("Contents", ())]


def stream(sink: Any, data: bytes, chunk: int = 3000) -> int:
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        sink.write(view[start : start + chunk])
    return int(sink.close())


# -- conditional writes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(501, "NotImplemented"), (400, "InvalidArgument"), (403, "AccessDenied")],
)
def test_store_refusing_if_none_match_is_written_to_without_it_in_auto(
    proxied: Proxied,
    moto_server: MotoServer,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
) -> None:
    backend = proxied([Refusal(if_none_match, status, code)])
    with caplog.at_level(logging.WARNING):
        writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    stream(writer.open_object("a", alloc_size=None), b"abc")
    writer.commit(FINAL)
    assert [(c.prefix, c.state) for c in backend.list_copies()] == [(NEW, "complete")]
    assert f"the store refused a conditional write ({code})" in caplog.text


def test_store_refusing_if_none_match_fails_clearly_with_on(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str
) -> None:
    backend = proxied([Refusal(if_none_match, 501, "NotImplemented")], conditional_writes="on")
    with pytest.raises(BackendError, match="set backend-param conditional-writes to auto or off"):
        backend.begin_copy(NEW, building_manifest=BUILDING)
    assert keys(moto_server.client("s3"), s3_bucket) == []


def test_conditional_writes_off_never_sends_if_none_match(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a store answering 500 to If-None-Match would fail every run if it were sent
    backend = proxied([Refusal(if_none_match, 500, "InternalError")], conditional_writes="off")
    with caplog.at_level(logging.WARNING):
        writer = backend.begin_copy(NEW, building_manifest=BUILDING)
        writer.commit(FINAL)
    assert backend.read_manifest(NEW) == FINAL
    assert "conditional" not in caplog.text


def test_another_run_overwriting_the_manifest_is_detected_at_commit(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str
) -> None:
    """On a store ignoring If-None-Match, the run id read back before commit catches a
    second writer of the same copy."""
    first = proxied([], conditional_writes="off")
    second = proxied([], conditional_writes="off")
    writer = first.begin_copy(NEW, building_manifest=BUILDING)
    second._put_first_manifest(NEW, BUILDING)  # the other run, racing past the listing
    with pytest.raises(Exception, match="another run"):
        writer.commit(FINAL)


# -- deletion without DeleteObjects or ListMultipartUploads ------------------------------


def test_rollback_deletes_key_by_key_where_delete_objects_is_refused(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = proxied([Refusal(delete_objects, 501, "NotImplemented")])
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    for name in ("a", "b", "c/d"):
        stream(writer.open_object(name, alloc_size=None), os.urandom(500))
    with caplog.at_level(logging.WARNING):
        writer.rollback()
    assert keys(moto_server.client("s3"), s3_bucket) == []
    assert "refused DeleteObjects (NotImplemented); deleting one key at a time" in caplog.text


def test_delete_objects_carries_content_md5(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    def without_md5(method: str, path: str, headers: Any) -> bool:
        return delete_objects(method, path, headers) and "Content-MD5" not in headers

    backend = proxied([Refusal(without_md5, 400, "MissingContentMD5")])
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    stream(writer.open_object("a", alloc_size=None), b"x")
    with caplog.at_level(logging.WARNING):
        writer.rollback()
    assert keys(moto_server.client("s3"), s3_bucket) == []
    assert "DeleteObjects" not in caplog.text  # accepted: no fallback needed


@pytest.mark.parametrize(
    ("status", "code"),
    [(501, "NotImplemented"), (405, "MethodNotAllowed"), (403, "AccessDenied")],
)
def test_rollback_aborts_the_recorded_uploads_where_listing_them_is_refused(
    proxied: Proxied,
    moto_server: MotoServer,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
) -> None:
    backend = proxied([Refusal(list_uploads, status, code)])
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("dump", alloc_size=None)
    sink.write(memoryview(os.urandom(200_000)))  # a multipart upload under way
    client = moto_server.client("s3")
    (upload,) = client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    recorded = backend.recorded_uploads(NEW)
    assert recorded == [(upload["Key"], upload["UploadId"])]
    with caplog.at_level(logging.WARNING):
        writer.rollback()  # the sink was never closed: a dead worker
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert keys(client, s3_bucket) == []
    assert f"listing multipart uploads failed: {code}" in caplog.text
    sink.abort()


def test_cleanup_by_a_later_run_aborts_the_uploads_the_manifest_records(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str
) -> None:
    dead = proxied([])
    writer = dead.begin_copy(NEW, building_manifest=BUILDING)
    writer.open_object("dump", alloc_size=None).write(memoryview(os.urandom(200_000)))
    # the run dies here; the next one cannot list uploads
    later = proxied([Refusal(list_uploads, 501, "NotImplemented")])
    (copy,) = later.list_copies()
    later.remove_copy(copy)
    client = moto_server.client("s3")
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert keys(client, s3_bucket) == []


# -- request checksums -------------------------------------------------------------------


def flexible_checksum(method: str, path: str, headers: Any) -> bool:
    return method in ("PUT", "POST") and any(
        name.lower().startswith(("x-amz-checksum-", "x-amz-sdk-checksum")) for name in headers
    )


def checksum_mode(method: str, path: str, headers: Any) -> bool:
    return method == "GET" and "x-amz-checksum-mode" in {name.lower() for name in headers}


def no_content_md5_on_put(method: str, path: str, headers: Any) -> bool:
    return method == "PUT" and "Content-MD5" not in headers and "x-id=CopyObject" not in path


def test_md5_mode_sends_content_md5_and_no_flexible_checksums(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str
) -> None:
    """What B2 and stores without flexible checksums need: Content-MD5 on every PUT and
    part, no x-amz-checksum-* headers, no x-amz-checksum-mode on GET."""
    refusals = [
        Refusal(flexible_checksum, 400, "InvalidArgument"),
        Refusal(checksum_mode, 400, "InvalidArgument"),
        Refusal(no_content_md5_on_put, 400, "MissingContentMD5"),
    ]
    backend = proxied(refusals)  # a custom endpoint: auto is md5
    assert backend.checksum_mode == "md5"
    data = {"small": os.urandom(500), "big": os.urandom(300_000)}
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    for name, content in data.items():
        stream(writer.open_object(name, alloc_size=None), content)
    writer.commit(FINAL)
    for name, content in data.items():
        with backend.open_object_reader(NEW, name) as reader:
            assert reader.read() == content


def test_crc32_mode_sends_flexible_checksums(proxied: Proxied) -> None:
    backend = proxied(
        [Refusal(flexible_checksum, 400, "InvalidArgument")], request_checksums="crc32"
    )
    assert backend.checksum == "CRC32"
    with pytest.raises(BackendError, match="InvalidArgument"):
        backend.begin_copy(NEW, building_manifest=BUILDING)  # the manifest PUT carries it


def test_stored_size_is_checked_after_the_upload(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that answers 200 but keeps other bytes (aws-chunked framing) fails the
    object, naming the likely cause."""
    backend = proxied([])
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("big", alloc_size=None)
    sink.write(memoryview(os.urandom(100)))
    client = moto_server.client("s3")

    def store_framing() -> None:
        client.put_object(Bucket=s3_bucket, Key=f"{ROOT}/{NEW}/big", Body=b"framing" * 30)

    monkeypatch.setattr(sink, "_put_single", store_framing)
    with pytest.raises(BackendError, match="the store holds 210 bytes but palhm sent 100: the"):
        sink.close()
    writer.rollback()
    assert keys(client, s3_bucket) == []


def test_final_manifest_is_read_back_before_the_commit_counts(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = proxied([])
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    put_manifest = backend.put_manifest

    def mangled(prefix: str, body: bytes, *, state: str, if_none_match: bool = False) -> None:
        kept = body[:-20] if state == "complete" else body  # what a broken store keeps
        put_manifest(prefix, kept, state=state, if_none_match=if_none_match)

    monkeypatch.setattr(backend, "put_manifest", mangled)
    with pytest.raises(BackendError, match="the manifest read back differs from the one written"):
        writer.commit(FINAL)


# -- settings ----------------------------------------------------------------------------


def test_auto_checksums_follow_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REQUEST_CHECKSUM_CALCULATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    def mode(**params: Any) -> str:
        backend = S3Backend(
            {"bucket": "b", "root": "r", "region": "eu-west-1", **params}, task_id="t"
        )
        return backend.checksum_mode

    assert mode() == "crc32"  # AWS itself
    assert mode(endpoint_url="https://s3.eu-west-1.amazonaws.com") == "crc32"
    assert mode(endpoint_url="https://s3.us-west-004.backblazeb2.com") == "md5"
    assert mode(endpoint_url="http://127.0.0.1:9000") == "md5"
    assert mode(endpoint_url="http://127.0.0.1:9000", request_checksums="crc32") == "crc32"
    assert mode(request_checksums="off") == "off"
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    assert mode() == "md5"  # the user asked botocore for no flexible checksums


@pytest.mark.parametrize(
    ("name", "value"), [("request_checksums", "sha1"), ("conditional_writes", "yes")]
)
def test_bad_setting_is_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(BackendError, match=f"backend-param {name.replace('_', '-')} is '{value}'"):
        S3Backend({"bucket": "b", "root": "r", name: value}, task_id="t")


def test_store_refusing_chunked_bodies_is_explained() -> None:
    from botocore.exceptions import ClientError

    error = ClientError(
        {"Error": {"Code": "MissingContentLength"}, "ResponseMetadata": {"HTTPStatusCode": 411}},
        "PutObject",
    )
    assert (
        aws.describe_error(error) == f"MissingContentLength: HTTP status 411 ({aws.CHUNKED_HINT})"
    )
    assert "request-checksums to md5" in aws.CHUNKED_HINT


def test_is_aws_endpoint() -> None:
    assert aws.is_aws_endpoint(None)
    assert aws.is_aws_endpoint("https://s3.eu-west-1.amazonaws.com")
    assert aws.is_aws_endpoint("https://bucket.s3.cn-north-1.amazonaws.com.cn")
    assert not aws.is_aws_endpoint("https://amazonaws.com.evil.example")
    assert not aws.is_aws_endpoint("https://ACCOUNT.r2.cloudflarestorage.com")
    assert not aws.is_aws_endpoint("http://127.0.0.1:7480")


def test_equal_parts_never_grow_and_announced_sizes_are_checked() -> None:
    schedule = plan_parts(None, None, equal=True)
    assert {schedule.size(n) for n in (1, 1000, 5000, 10_000)} == {8 * MiB}
    assert schedule.capacity() == 10_000 * 8 * MiB
    hinted = plan_parts(None, 100 * GiB, equal=True)
    assert hinted.first == 12 * MiB  # 100 GiB / 9,000 parts, rounded up to a MiB
    assert hinted.size(9_999) == hinted.first
    check_announced_size(hinted, 100 * GiB, "s3://b/k")  # fits
    with pytest.raises(BackendError, match="alloc-size 6597069766656 bytes exceeds"):
        check_announced_size(plan_parts(None, 6 * TiB, equal=True), 6 * TiB, "s3://b/k")
    growing = plan_parts(None, None)
    assert growing.size(10_000) > growing.size(1)


def test_equal_parts_upload_uses_one_part_size(
    proxied: Proxied, moto_server: MotoServer, s3_bucket: str
) -> None:
    backend = proxied([], equal_parts=True, part_size=1024)  # limits: 40 parts here
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("dump", alloc_size=None)
    stream(sink, os.urandom(39 * 1024 + 100), chunk=1000)
    assert set(sink.part_sizes[:-1]) == {1024} and len(sink.part_sizes) == 40
    too_big = writer.open_object("too-big", alloc_size=None)
    with pytest.raises(BackendError, match="exceeds S3's limit of 40 parts"):
        stream(too_big, os.urandom(41 * 1024), chunk=1000)
    too_big.abort()
    announced = writer.open_object("announced", alloc_size=40 * 1024 + 1)  # larger parts
    assert stream(announced, os.urandom(40 * 1024 + 1), chunk=1000) == 40 * 1024 + 1
    with pytest.raises(BackendError, match="upload refused: alloc-size 512000 bytes exceeds"):
        writer.open_object("beyond", alloc_size=500 * 1024)  # over the object size limit
    writer.rollback()


def test_storage_class_warnings_only_where_the_store_is_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    r2 = "https://ACCOUNT.r2.cloudflarestorage.com"
    assert store_name(r2) == "Cloudflare R2"
    assert store_name(None) == "AWS S3"
    assert store_name("http://127.0.0.1:7480") is None
    (warning,) = storage_class_warnings("t", {"endpoint_url": r2, "rot_storage_class": "GLACIER"})
    assert "rot-storage-class 'GLACIER' is not a storage class of Cloudflare R2" in warning
    assert storage_class_warnings("t", {"rot_storage_class": "GLACIER"}) == []
    assert storage_class_warnings("t", {"rot_storage_class": "GLACIR"}) != []  # a typo on AWS
    ceph = {"endpoint_url": "http://127.0.0.1:7480", "rot_storage_class": "COLD"}
    assert storage_class_warnings("t", ceph) == []  # cannot know: a configurable class


def test_config_check_warns_about_a_class_the_store_lacks(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "palhm.json",
        {
            "modules": ["aws"],
            "tasks": [
                {
                    "id": "backup",
                    "type": "backup",
                    "backend": "aws-s3",
                    "backend-param": {
                        "bucket": "b",
                        "root": "r",
                        "endpoint-url": "https://s3.us-west-004.backblazeb2.com",
                        "rot-storage-class": "GLACIER",
                    },
                    "objects": [
                        {"path": "a", "pipeline": [{"type": "exec-inline", "argv": ["true"]}]}
                    ],
                }
            ],
        },
    )
    result = run_palhm(["-f", str(cfg), "config", "check"])
    assert result.returncode == 0, result.stderr
    assert (
        "palhm: warning: task 'backup': backend-param rot-storage-class 'GLACIER' is not a"
        " storage class of Backblaze B2" in result.stderr
    )


def test_profile_without_credentials_says_the_environment_is_not_consulted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[profile nightly]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ignored-when-a-profile-is-set")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ignored")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    backend = S3Backend({"bucket": "b", "root": "r", "profile": "nightly"}, task_id="t")
    with pytest.raises(BackendError) as caught:
        backend.list_copies()
    message = str(caught.value)
    assert message.startswith("s3://b/r: no AWS credentials in profile 'nightly'")
    assert "the environment is not consulted when 'profile' is set" in message
    assert "tried the environment" not in message
