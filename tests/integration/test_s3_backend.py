"""The aws-s3 backend against a real moto server over HTTP (no mocks of S3)."""

from __future__ import annotations

import os
import re
import select
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from palhm.backends.base import MANIFEST_NAME, ObjectSink
from palhm.backends.s3 import backend as s3
from palhm.backends.s3 import transition as s3_transition
from palhm.backends.s3.backend import S3Backend
from palhm.backends.s3.upload import PartSchedule, S3Limits, S3ObjectSink
from palhm.engine.checksum import digest_bytes, new_hasher
from palhm.engine.pump import Pump
from palhm.engine.spawn import data_pipe
from palhm.errors import BackendError, CollisionError, LockedError
from palhm.manifest import Manifest, building_manifest, encode_manifest
from tests.services.moto import MotoServer

pytestmark = pytest.mark.services

OLD = "2024-01-01T00:00:00+00:00"
MIDDLE = "2024-01-02T00:00:00+00:00"
NEW = "2024-01-03T00:00:00+00:00"
WHEN = datetime(2024, 1, 3, tzinfo=UTC)
BUILDING = encode_manifest(building_manifest("t", NEW, WHEN))
FINAL = encode_manifest(Manifest("t", NEW, WHEN, WHEN, host="test-host"))
SMALL_LIMITS = S3Limits(
    min_part_size=1024, max_part_size=64 * 1024, max_parts=40, max_object_size=400 * 1024
)

Factory = Callable[..., S3Backend]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> S3Limits:
    """KiB-sized parts (the moto fixture accepts them) so growth shows on small data."""
    monkeypatch.setattr(s3, "LIMITS", SMALL_LIMITS)
    return SMALL_LIMITS


@pytest.fixture
def s3_client(moto_server: MotoServer) -> Any:
    return moto_server.client("s3")


def stream(sink: ObjectSink, data: bytes, chunk: int = 3000) -> int:
    """Feed `data` as the pipeline runner does: memoryview chunks, then close."""
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        sink.write(view[start : start + chunk])
    return sink.close()


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(entry["Key"] for entry in page.get("Contents", ()))
    return found


def uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()))


def body(client: Any, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def make_copy(backend: S3Backend, prefix: str, objects: dict[str, bytes]) -> None:
    writer = backend.begin_copy(prefix, building_manifest=BUILDING)
    for path, data in objects.items():
        stream(writer.open_object(path, alloc_size=None), data)
    writer.commit(FINAL)


def put_many(client: Any, bucket: str, names: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"xy"), names))


@pytest.fixture
def backend(s3_backend_factory: Factory) -> S3Backend:
    return s3_backend_factory("t1")


# -- streaming upload -----------------------------------------------------------------


def test_small_object_is_uploaded_with_one_put_in_the_sink_storage_class(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any
) -> None:
    backend = s3_backend_factory("t1", sink_storage_class="STANDARD_IA")
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("etc/hosts.txt", alloc_size=None)
    data = os.urandom(5000)
    assert stream(sink, data) == 5000
    key = f"palhm/root/{NEW}/etc/hosts.txt"
    head = s3_client.head_object(Bucket=s3_bucket, Key=key)
    assert "-" not in head["ETag"]  # not a multipart upload
    assert head["StorageClass"] == "STANDARD_IA"
    assert body(s3_client, s3_bucket, key) == data


def test_empty_object_is_stored_empty(backend: S3Backend, s3_bucket: str, s3_client: Any) -> None:
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    assert writer.open_object("empty", alloc_size=None).close() == 0
    assert body(s3_client, s3_bucket, f"palhm/root/{NEW}/empty") == b""


@pytest.mark.parametrize("size", [0, 1, 1024, 1025, 150_000])
def test_the_pump_reads_straight_into_the_parts_and_stores_exactly_the_stream(
    s3_backend_factory: Factory,
    s3_bucket: str,
    s3_client: Any,
    small_parts: S3Limits,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    """The real pump, a real pipe, moto: every byte is read into a part buffer (write()
    is never called, so no second copy), hashed there, and stored as streamed."""

    def no_write(self: ObjectSink, data: memoryview) -> None:
        raise AssertionError("write() called: the bytes were copied once more")

    monkeypatch.setattr(S3ObjectSink, "write", no_write)
    backend = s3_backend_factory("t1", part_size=1024)
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("o", alloc_size=None)
    data = os.urandom(size)
    read_end, write_end = data_pipe()
    pump = Pump(read_end, sink, new_hasher("blake3"), 4096, None, "c")
    assert pump.direct and pump.splice_to is None

    def feed() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            for start in range(0, size, 3001):
                pipe.write(data[start : start + 3001])

    feeder = threading.Thread(target=feed)
    feeder.start()
    while not pump.eof and pump.error is None:
        select.select([pump.fd], [], [], 1)
        pump.on_readable()
    feeder.join()
    pump.close()
    assert pump.error is None
    assert sink.close() == size == pump.size
    assert pump.hasher is not None and pump.hasher.hexdigest() == digest_bytes("blake3", data)
    assert body(s3_client, s3_bucket, f"palhm/root/{NEW}/o") == data
    assert uploads(s3_client, s3_bucket) == []


def test_long_stream_is_a_multipart_upload_with_growing_parts(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any, small_parts: S3Limits
) -> None:
    backend = s3_backend_factory("t1", part_size=1024)
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("db/all.sql.zst", alloc_size=None)
    data = os.urandom(150_000)
    assert stream(sink, data, chunk=7777) == len(data)
    key = f"palhm/root/{NEW}/db/all.sql.zst"
    assert body(s3_client, s3_bucket, key) == data
    etag = s3_client.head_object(Bucket=s3_bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith(f"-{len(sink.part_sizes)}")  # the server's own count
    schedule = PartSchedule.plan(1024, limits=small_parts)
    assert sink.part_sizes[:-1] == [schedule.size(n) for n in range(1, len(sink.part_sizes))]
    assert sink.part_sizes[0] == 1024 < max(sink.part_sizes) <= small_parts.max_part_size
    assert uploads(s3_client, s3_bucket) == []


def test_alloc_size_picks_a_bigger_first_part(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any, small_parts: S3Limits
) -> None:
    backend = s3_backend_factory("t1", part_size=1024)
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("big", alloc_size=small_parts.max_parts * 4096)
    data = os.urandom(50_000)
    stream(sink, data)
    assert sink.part_sizes[0] > 1024
    assert len(set(sink.part_sizes[:-1])) == 1  # held: the object is within its alloc-size
    assert body(s3_client, s3_bucket, f"palhm/root/{NEW}/big") == data


def test_stream_beyond_the_part_limit_fails_clearly(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = S3Limits(min_part_size=1024, max_part_size=2048, max_parts=3, max_object_size=4096)
    monkeypatch.setattr(s3, "LIMITS", tiny)
    backend = s3_backend_factory("t1", part_size=1024)
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    sink = writer.open_object("huge", alloc_size=None)
    with pytest.raises(
        BackendError, match=r"huge: upload failed: the object exceeds S3's limit of 3 parts"
    ):
        stream(sink, os.urandom(20_000), chunk=1000)
    sink.abort()
    assert uploads(s3_client, s3_bucket) == []


# -- copy protocol ----------------------------------------------------------------------


def test_building_manifest_is_the_first_write_and_final_manifest_replaces_it(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    manifest_key = f"palhm/root/{NEW}/{MANIFEST_NAME}"
    assert keys(s3_client, s3_bucket) == [manifest_key]
    assert body(s3_client, s3_bucket, manifest_key) == BUILDING
    assert [c.state for c in backend.list_copies()] == ["incomplete"]
    stream(writer.open_object("a", alloc_size=None), b"abc")
    writer.commit(FINAL)
    assert body(s3_client, s3_bucket, manifest_key) == FINAL
    assert backend.read_manifest(NEW) == FINAL
    assert [(c.state, c.size, c.nb_objects) for c in backend.list_copies()] == [("complete", 3, 1)]


def test_prefix_collision_is_detected_before_anything_is_written(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key=f"palhm/root/{NEW}/legacy.tar", Body=b"old")
    with pytest.raises(CollisionError, match=re.escape(f"a copy named '{NEW}' already exists")):
        backend.begin_copy(NEW, building_manifest=BUILDING)
    assert keys(s3_client, s3_bucket) == [f"palhm/root/{NEW}/legacy.tar"]
    assert body(s3_client, s3_bucket, f"palhm/root/{NEW}/legacy.tar") == b"old"


def test_run_racing_for_the_same_prefix_loses_without_touching_the_winner(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    manifest_key = f"palhm/root/{NEW}/{MANIFEST_NAME}"

    def other_host_wins(**_: Any) -> None:  # another run writes between our LIST and PUT
        if not keys(s3_client, s3_bucket):
            s3_client.put_object(Bucket=s3_bucket, Key=manifest_key, Body=b"winner")

    backend.client.meta.events.register("before-call.s3.PutObject", other_host_wins)
    with pytest.raises(CollisionError, match="another run started a copy"):
        backend.begin_copy(NEW, building_manifest=BUILDING)
    assert body(s3_client, s3_bucket, manifest_key) == b"winner"


def test_rollback_mid_upload_leaves_no_keys_and_no_multipart_uploads(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any, small_parts: S3Limits
) -> None:
    backend = s3_backend_factory("t1", part_size=1024)
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    stream(writer.open_object("done.txt", alloc_size=None), b"finished object")
    running = writer.open_object("half/dump.sql", alloc_size=None)
    for _ in range(20):
        running.write(memoryview(os.urandom(1000)))  # parts uploaded, upload not completed
    assert len(uploads(s3_client, s3_bucket)) == 1
    writer.rollback()
    running.abort()  # the runner aborts its sink too; after the rollback it must not fail
    assert keys(s3_client, s3_bucket) == []
    assert uploads(s3_client, s3_bucket) == []


def test_rollback_touches_nothing_outside_its_copy(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    make_copy(backend, OLD, {"a": b"1"})
    s3_client.put_object(Bucket=s3_bucket, Key="palhm/root/notes.txt", Body=b"mine")
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    stream(writer.open_object("a", alloc_size=None), b"2")
    writer.rollback()
    assert sorted(keys(s3_client, s3_bucket)) == [
        f"palhm/root/{OLD}/{MANIFEST_NAME}",
        f"palhm/root/{OLD}/a",
        "palhm/root/notes.txt",
    ]


def test_legacy_copies_count_incomplete_are_flagged_others_ignored(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    root = "palhm/root"
    s3_client.put_object(Bucket=s3_bucket, Key=f"{root}/{OLD}/etc.tar.xz", Body=b"12345")
    make_copy(backend, MIDDLE, {"x/y.bin": b"123", "z": b"4"})
    backend.begin_copy(NEW, building_manifest=BUILDING)
    for stray in ("lost+found/file", "2024-01-01/user-dir/file", "notes.txt", f"{OLD}"):
        s3_client.put_object(Bucket=s3_bucket, Key=f"{root}/{stray}", Body=b"keep me")
    s3_client.put_object(Bucket=s3_bucket, Key=f"elsewhere/{NEW}/x", Body=b"other root")
    copies = backend.list_copies()
    assert [(c.prefix, c.state, c.size, c.nb_objects, c.counted) for c in copies] == [
        (OLD, "legacy", 5, 1, True),
        (MIDDLE, "complete", 4, 2, True),
        (NEW, "incomplete", 0, 0, False),
    ]
    assert copies[1].location == f"s3://{s3_bucket}/{root}/{MIDDLE}/"


def test_copies_are_listed_oldest_first_by_time_not_by_name(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    for prefix in ("2024-01-01T05:00:00+02:00", "20240101T040000Z", "2024-01-01T03:30:00+00:00"):
        s3_client.put_object(Bucket=s3_bucket, Key=f"palhm/root/{prefix}/f", Body=b"1")
    assert [c.prefix for c in backend.list_copies()] == [
        "2024-01-01T05:00:00+02:00",
        "2024-01-01T03:30:00+00:00",
        "20240101T040000Z",
    ]


def test_listing_and_removal_work_beyond_1000_keys_in_batches_of_1000(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    put_many(s3_client, s3_bucket, [f"palhm/root/{OLD}/part-{n:05}" for n in range(1050)])
    make_copy(backend, NEW, {"only": b"abc"})
    batches: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        batches.append(len(params["Delete"]["Objects"]))

    backend.client.meta.events.register("before-parameter-build.s3.DeleteObjects", record)
    old, new = backend.list_copies()
    assert (old.prefix, old.state, old.nb_objects, old.size) == (OLD, "legacy", 1050, 2100)
    backend.remove_copy(old)
    assert max(batches) <= 1000
    assert sum(batches) == 1051  # 1,050 objects and the removal marker
    assert sorted(keys(s3_client, s3_bucket)) == [
        f"palhm/root/{NEW}/{MANIFEST_NAME}",
        f"palhm/root/{NEW}/only",
    ]
    assert [c.prefix for c in backend.list_copies()] == [new.prefix]


def test_removal_cut_short_leaves_an_incomplete_copy_never_a_counted_one(
    backend: S3Backend, s3_bucket: str
) -> None:
    make_copy(backend, OLD, {f"f{n}": b"data" for n in range(5)})
    (copy,) = backend.list_copies()

    def power_cut(**_: Any) -> None:
        raise KeyboardInterrupt  # stands for SIGKILL in the middle of the removal

    backend.client.meta.events.register("before-call.s3.DeleteObjects", power_cut)
    with pytest.raises(KeyboardInterrupt):
        backend.remove_copy(copy)
    (left,) = backend.list_copies()
    assert (left.prefix, left.state, left.counted) == (OLD, "incomplete", False)


def test_remove_incomplete_copy_aborts_its_multipart_uploads(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any, small_parts: S3Limits
) -> None:
    backend = s3_backend_factory("t1", part_size=1024)
    writer = backend.begin_copy(OLD, building_manifest=BUILDING)
    sink = writer.open_object("crashed", alloc_size=None)
    sink.write(memoryview(os.urandom(5000)))  # the run "dies" here: no close, no rollback
    (copy,) = S3Backend(backend.params, task_id="t1").list_copies()
    assert copy.state == "incomplete"
    S3Backend(backend.params, task_id="t1").remove_copy(copy)
    assert keys(s3_client, s3_bucket) == []
    assert uploads(s3_client, s3_bucket) == []


# -- after commit: storage class ------------------------------------------------------


def test_rot_storage_class_moves_the_committed_objects_not_the_manifest(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any
) -> None:
    backend = s3_backend_factory("t1", rot_storage_class="STANDARD_IA")
    data = os.urandom(3000)
    make_copy(backend, NEW, {"a.bin": data, "sub/b.bin": b"b"})
    backend.after_commit(NEW)
    root = f"palhm/root/{NEW}"
    for key in (f"{root}/a.bin", f"{root}/sub/b.bin"):
        assert s3_client.head_object(Bucket=s3_bucket, Key=key)["StorageClass"] == "STANDARD_IA"
    manifest = s3_client.head_object(Bucket=s3_bucket, Key=f"{root}/{MANIFEST_NAME}")
    assert manifest.get("StorageClass", "STANDARD") == "STANDARD"
    with backend.open_object_reader(NEW, "a.bin") as reader:
        assert reader.read() == data
    assert [c.state for c in backend.list_copies()] == ["complete"]


def test_objects_over_the_copy_limit_move_by_multipart_copy(
    s3_backend_factory: Factory,
    s3_bucket: str,
    s3_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(s3_transition, "MULTIPART_COPY_THRESHOLD", 4096)
    monkeypatch.setattr(s3_transition, "COPY_PART_SIZE", 2048)
    backend = s3_backend_factory("t1", rot_storage_class="STANDARD_IA")
    data = os.urandom(9000)
    make_copy(backend, NEW, {"big.bin": data, "small.bin": b"s"})
    key = f"palhm/root/{NEW}/big.bin"
    s3_client.copy_object(  # metadata must survive the multipart copy
        Bucket=s3_bucket,
        Key=key,
        CopySource={"Bucket": s3_bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"origin": "db1"},
    )
    backend.after_commit(NEW)
    head = s3_client.head_object(Bucket=s3_bucket, Key=key)
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ETag"].strip('"').endswith("-5")  # 9000 bytes in 2048-byte ranges
    assert head["Metadata"] == {"origin": "db1"}
    assert body(s3_client, s3_bucket, key) == data
    assert uploads(s3_client, s3_bucket) == []


def test_without_rot_storage_class_after_commit_changes_nothing(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    make_copy(backend, NEW, {"a": b"1"})
    backend.after_commit(NEW)
    head = s3_client.head_object(Bucket=s3_bucket, Key=f"palhm/root/{NEW}/a")
    assert head.get("StorageClass", "STANDARD") == "STANDARD"


# -- reading back ------------------------------------------------------------------------


def test_objects_are_read_back_and_listed_with_their_sizes(backend: S3Backend) -> None:
    data = os.urandom(70_000)
    make_copy(backend, NEW, {"db/dump.sql": data, "etc.tar": b"tar"})
    assert sorted(backend.iter_objects(NEW)) == [("db/dump.sql", 70_000), ("etc.tar", 3)]
    with backend.open_object_reader(NEW, "db/dump.sql") as reader:
        chunks = iter(lambda: reader.read(8192), b"")
        assert b"".join(chunks) == data


def test_missing_object_or_manifest(backend: S3Backend, s3_bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key=f"palhm/root/{OLD}/x", Body=b"legacy")
    assert backend.read_manifest(OLD) is None
    expected = re.escape(f"{OLD}/nope: reading failed: NoSuchKey")
    with pytest.raises(BackendError, match=expected), backend.open_object_reader(OLD, "nope"):
        pass


# -- errors, lock -------------------------------------------------------------------------


def test_missing_bucket_error_names_the_object_and_the_s3_error(
    s3_backend_factory: Factory,
) -> None:
    backend = s3_backend_factory("t1", bucket="palhm-no-such-bucket")
    with pytest.raises(BackendError) as caught:
        backend.begin_copy(NEW, building_manifest=BUILDING)
    message = str(caught.value)
    assert message.startswith(f"s3://palhm-no-such-bucket/palhm/root/{NEW}/")
    assert "NoSuchBucket: The specified bucket does not exist" in message


def test_upload_error_names_the_object_and_the_s3_error(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    s3_client.delete_object(Bucket=s3_bucket, Key=f"palhm/root/{NEW}/{MANIFEST_NAME}")
    s3_client.delete_bucket(Bucket=s3_bucket)  # removed behind palhm's back mid-run
    sink = writer.open_object("db.sql", alloc_size=None)
    sink.write(memoryview(b"data"))
    with pytest.raises(BackendError) as caught:
        sink.close()
    assert str(caught.value) == (
        f"s3://{s3_bucket}/palhm/root/{NEW}/db.sql: upload failed:"
        " NoSuchBucket: The specified bucket does not exist"
    )


def test_part_size_outside_s3_bounds_is_refused(s3_backend_factory: Factory) -> None:
    with pytest.raises(BackendError, match="task 't1': backend-param part-size 1000 is outside"):
        s3_backend_factory("t1", part_size=1000)


def test_root_slashes_are_ignored(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any
) -> None:
    backend = s3_backend_factory("t1", root="/backup/host1/")
    make_copy(backend, NEW, {"a": b"1"})
    assert backend.describe() == f"s3://{s3_bucket}/backup/host1"
    assert f"backup/host1/{NEW}/a" in keys(s3_client, s3_bucket)


def test_second_run_on_the_same_root_is_locked_out(s3_backend_factory: Factory) -> None:
    first, second = s3_backend_factory("t1"), s3_backend_factory("t2")
    holder = rf"pid {os.getpid()} on .*task 't1'"
    with first.lock(), pytest.raises(LockedError, match=holder), second.lock():
        pass
    with second.lock():  # released with the first run; now held by t2
        with pytest.raises(LockedError, match="task 't2'"), s3_backend_factory("t3").lock():
            pass
        with s3_backend_factory("t4", root="other/root").lock():
            pass  # another root is another lock


def test_manifest_without_palhm_metadata_is_judged_by_its_body(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    final = encode_manifest(Manifest("t1", OLD, WHEN, WHEN, host="test-host"))
    for prefix, data in ((OLD, final), (MIDDLE, b'{"state": "building"}'), (NEW, BUILDING)):
        s3_client.put_object(  # as a copy restored with a tool that drops metadata
            Bucket=s3_bucket, Key=f"palhm/root/{prefix}/{MANIFEST_NAME}", Body=data
        )
    # palhm cannot tell whose the unfinished ones are: damaged, never removed
    assert [c.state for c in backend.list_copies()] == ["complete", "damaged", "damaged"]


def test_the_manifest_metadata_records_the_task_and_spares_reading_the_body(
    s3_backend_factory: Factory, s3_bucket: str, s3_client: Any
) -> None:
    backend = s3_backend_factory(task_id="t\u00e9/\u00fc x")
    writer = backend.begin_copy(NEW, building_manifest=BUILDING)
    writer.commit(FINAL)  # the body names task "t": the metadata is what is read
    head = s3_client.head_object(Bucket=s3_bucket, Key=f"palhm/root/{NEW}/{MANIFEST_NAME}")
    assert head["Metadata"]["palhm-task"] == "t%C3%A9%2F%C3%BC%20x"
    (copy,) = backend.list_copies()
    assert (copy.state, copy.task) == ("complete", "t\u00e9/\u00fc x")
    (copy,) = s3_backend_factory(task_id="t").list_copies()
    assert (copy.state, copy.task) == ("other-task", "t\u00e9/\u00fc x")


def test_incomplete_copy_another_host_started_recently_is_not_removed(
    backend: S3Backend, s3_bucket: str, s3_client: Any
) -> None:
    manifest_key = f"palhm/root/{OLD}/{MANIFEST_NAME}"
    s3_client.put_object(  # as another host's run writes it, still uploading
        Bucket=s3_bucket,
        Key=manifest_key,
        Body=BUILDING,
        Metadata={"palhm-state": "building", "palhm-host": "other-host.example"},
    )
    s3_client.put_object(Bucket=s3_bucket, Key=f"palhm/root/{OLD}/first", Body=b"1")
    (copy,) = backend.list_copies()
    with pytest.raises(BackendError, match="started by host other-host.example at .* not removed"):
        backend.remove_copy(copy)
    assert sorted(keys(s3_client, s3_bucket)) == [manifest_key, f"palhm/root/{OLD}/first"]
