"""The backend contract (src/palhm/backends/base.py), one suite for every backend."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime

import pytest

from palhm.backends.base import Backend, CopyInfo, CopyWriter
from palhm.backends.null import NullBackend
from palhm.errors import BackendError, CollisionError, LockedError
from palhm.manifest import Manifest, building_manifest, encode_manifest, parse_manifest
from palhm.prefix import parse_prefix
from tests.contract.conftest import BackendFactory, RawPut

OLD = "2022-05-01T06:59:17+00:00"
MID = "20220502T000000Z"  # the colon-free form sorts by time among the others
NEW = "2022-05-03T06:59:17+00:00"


def when(prefix: str) -> datetime:
    moment = parse_prefix(prefix)
    assert moment is not None
    return moment


def building(prefix: str) -> bytes:
    return encode_manifest(building_manifest("t", prefix, when(prefix)))


def final_manifest(prefix: str) -> bytes:
    """A real final manifest: backends that cannot rename tell states apart by it."""
    return encode_manifest(Manifest("t", prefix, when(prefix), when(prefix), host="test-host"))


def store(copy: CopyWriter, path: str, data: bytes, *, chunk: int = 1 << 16) -> int:
    sink = copy.open_object(path, alloc_size=None)
    view = memoryview(data)
    for offset in range(0, len(data), chunk):
        sink.write(view[offset : offset + chunk])
    return sink.close()


def make_copy(backend: Backend, prefix: str, objects: dict[str, bytes]) -> CopyWriter:
    copy = backend.begin_copy(prefix, building_manifest=building(prefix))
    for path, data in objects.items():
        store(copy, path, data)
    copy.commit(final_manifest(prefix))
    return copy


def read_object(backend: Backend, prefix: str, path: str) -> bytes:
    with backend.open_object_reader(prefix, path) as stream:
        return stream.read()


def by_prefix(copies: Sequence[CopyInfo]) -> dict[str, CopyInfo]:
    return {c.prefix: c for c in copies}


def test_committed_copy_is_listed_complete_with_its_size_and_objects(
    backend_factory: BackendFactory,
) -> None:
    backend = backend_factory("t")
    objects = {"a.bin": os.urandom(300_000), "sub/dir/b.txt": b"hello\n", "empty": b""}
    make_copy(backend, NEW, objects)
    (info,) = backend.list_copies()
    assert (info.prefix, info.state, info.counted) == (NEW, "complete", True)
    assert info.size == sum(len(d) for d in objects.values())
    assert info.nb_objects == 3
    assert sorted(backend.iter_objects(NEW)) == sorted((p, len(d)) for p, d in objects.items())


def test_objects_read_back_byte_for_byte(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    objects = {"a.bin": os.urandom(1_000_001), "x/y/z.bin": os.urandom(10)}
    make_copy(backend, NEW, objects)
    for path, data in objects.items():
        assert read_object(backend, NEW, path) == data


def test_manifest_reads_back_exactly_as_committed(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    make_copy(backend, NEW, {"a": b"1"})
    assert backend.read_manifest(NEW) == final_manifest(NEW)


def test_sink_reports_bytes_written_and_alloc_size_is_only_a_hint(
    backend_factory: BackendFactory,
) -> None:
    backend = backend_factory("t")
    copy = backend.begin_copy(NEW, building_manifest=building(NEW))
    sink = copy.open_object("hinted", alloc_size=10 << 20)
    sink.write(memoryview(b"x" * 1000))
    assert sink.close() == 1000
    copy.commit(final_manifest(NEW))
    assert read_object(backend, NEW, "hinted") == b"x" * 1000
    assert by_prefix(backend.list_copies())[NEW].size == 1000


def test_data_spliced_into_the_sink_fd_is_stored(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    copy = backend.begin_copy(NEW, building_manifest=building(NEW))
    sink = copy.open_object("direct", alloc_size=4096)
    fd = sink.splice_fd()
    if fd is None:
        sink.abort()
        copy.rollback()
        pytest.skip("this backend takes data through write() only")
    os.write(fd, b"written by a stage")
    assert sink.close() == len(b"written by a stage")
    copy.commit(final_manifest(NEW))
    assert read_object(backend, NEW, "direct") == b"written by a stage"


def test_data_read_into_the_sink_buffer_is_stored(backend_factory: BackendFactory) -> None:
    """A sink that reads_into: bytes put into its read_buffer() views and handed over
    with took() are stored exactly, across several views of uneven sizes."""
    backend = backend_factory("t")
    copy = backend.begin_copy(NEW, building_manifest=building(NEW))
    sink = copy.open_object("read-into", alloc_size=None)
    if not sink.reads_into:
        sink.abort()
        copy.rollback()
        pytest.skip("this backend takes data through write() only")
    data = os.urandom(300_001)
    start = 0
    while start < len(data):
        with sink.read_buffer(70_000) as view:
            count = min(len(view), len(data) - start)
            view[:count] = data[start : start + count]
        sink.took(count)
        start += count
    assert sink.close() == len(data)
    copy.commit(final_manifest(NEW))
    assert read_object(backend, NEW, "read-into") == data


def test_copy_in_progress_is_listed_incomplete_and_not_counted(
    backend_factory: BackendFactory,
) -> None:
    backend = backend_factory("t")
    copy = backend.begin_copy(NEW, building_manifest=building(NEW))
    store(copy, "a", b"data")
    (info,) = backend.list_copies()
    assert (info.prefix, info.state, info.counted) == (NEW, "incomplete", False)
    copy.rollback()


def test_rollback_removes_everything_of_the_copy_only(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    make_copy(backend, OLD, {"keep": b"old data"})
    copy = backend.begin_copy(NEW, building_manifest=building(NEW))
    store(copy, "a", os.urandom(200_000))
    sink = copy.open_object("half/written", alloc_size=None)
    sink.write(memoryview(b"partial"))
    sink.abort()
    copy.rollback()
    assert [(c.prefix, c.state) for c in backend.list_copies()] == [(OLD, "complete")]
    assert read_object(backend, OLD, "keep") == b"old data"


def test_collision_with_an_existing_copy_writes_nothing(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    make_copy(backend, NEW, {"a": b"first run"})
    with pytest.raises(CollisionError):
        backend.begin_copy(NEW, building_manifest=building(NEW))
    assert read_object(backend, NEW, "a") == b"first run"
    assert backend.read_manifest(NEW) == final_manifest(NEW)
    assert [(c.prefix, c.state) for c in backend.list_copies()] == [(NEW, "complete")]


def test_copies_are_listed_oldest_first_by_time(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    for prefix in (NEW, OLD, MID):
        make_copy(backend, prefix, {"a": prefix.encode()})
    assert [c.prefix for c in backend.list_copies()] == [OLD, MID, NEW]


def test_remove_copy_deletes_that_copy_only(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    for prefix in (OLD, NEW):
        make_copy(backend, prefix, {"a": prefix.encode(), "d/b": b"x"})
    backend.remove_copy(by_prefix(backend.list_copies())[OLD])
    assert [c.prefix for c in backend.list_copies()] == [NEW]
    assert read_object(backend, NEW, "a") == NEW.encode()


def test_incomplete_copy_left_behind_can_be_removed(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    crashed = backend.begin_copy(OLD, building_manifest=building(OLD))
    store(crashed, "a", b"never committed")  # the run "dies" here: no commit, no rollback
    later = backend_factory("t")
    (info,) = later.list_copies()
    assert info.state == "incomplete"
    later.remove_copy(info)
    assert later.list_copies() == []


def test_copy_made_by_the_original_palhm_is_a_counted_legacy_copy(
    backend_factory: BackendFactory, raw_put: RawPut
) -> None:
    raw_put(f"{OLD}/etc.tar.zst", b"12345")
    raw_put(f"{OLD}/db/all.sql", b"678")
    backend = backend_factory("t")
    make_copy(backend, NEW, {"a": b"1"})
    copies = by_prefix(backend.list_copies())
    assert (copies[OLD].state, copies[OLD].counted, copies[OLD].size) == ("legacy", True, 8)
    assert backend.read_manifest(OLD) is None
    assert read_object(backend, OLD, "db/all.sql") == b"678"
    backend.remove_copy(copies[OLD])
    assert [c.prefix for c in backend.list_copies()] == [NEW]


def test_names_that_are_not_prefixes_are_never_copies(
    backend_factory: BackendFactory, raw_put: RawPut
) -> None:
    for key in ("lost+found/x", "notes.txt", "2023/x", "2023-01-01/x", "20230101/x"):
        raw_put(key, b"user data")
    backend = backend_factory("t")
    make_copy(backend, NEW, {"a": b"1"})
    assert [c.prefix for c in backend.list_copies()] == [NEW]


def test_objects_opened_from_several_threads_are_all_stored(
    backend_factory: BackendFactory,
) -> None:
    backend = backend_factory("t")
    copy = backend.begin_copy(NEW, building_manifest=building(NEW))
    payloads = {f"shared/dir/{i}.bin": os.urandom(50_000 + i) for i in range(8)}
    threads = [threading.Thread(target=store, args=(copy, p, d)) for p, d in payloads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    copy.commit(final_manifest(NEW))
    for path, data in payloads.items():
        assert read_object(backend, NEW, path) == data


def test_a_second_lock_on_the_same_root_fails_at_once(backend_factory: BackendFactory) -> None:
    first, second = backend_factory("t"), backend_factory("t")
    with first.lock(), pytest.raises(LockedError), second.lock():
        pass
    with second.lock():  # released by the first holder
        assert second.list_copies() == []


def test_reading_a_missing_object_is_a_backend_error(backend_factory: BackendFactory) -> None:
    backend = backend_factory("t")
    make_copy(backend, NEW, {"a": b"1"})
    with pytest.raises(BackendError), backend.open_object_reader(NEW, "missing"):
        pass


def test_building_manifest_round_trips_through_the_parser() -> None:
    manifest = parse_manifest(building(NEW))
    assert (manifest.state, manifest.prefix, manifest.objects) == ("building", NEW, ())


def test_null_backend_discards_data_and_keeps_no_copy() -> None:
    backend = NullBackend({}, task_id="t")
    with backend.lock():
        copy = backend.begin_copy(NEW, building_manifest=building(NEW))
        assert store(copy, "a", b"x" * 1000) == 1000
        copy.commit(final_manifest(NEW))
    assert backend.list_copies() == []
    assert backend.read_manifest(NEW) is None
    with pytest.raises(BackendError), backend.open_object_reader(NEW, "a"):
        pass


def test_a_copy_of_another_task_on_the_same_root_is_never_this_tasks(
    backend_factory: BackendFactory,
) -> None:
    make_copy(backend_factory("t"), OLD, {"a": b"mine"})  # final_manifest names task "t"
    other = backend_factory("u")
    (copy,) = other.list_copies()
    assert (copy.state, copy.task, copy.counted) == ("other-task", "t", False)
    with pytest.raises(BackendError, match="not a copy of this task"):
        other.remove_copy(copy)
    (own,) = backend_factory("t").list_copies()
    assert (own.state, own.task) == ("complete", "t")


@pytest.mark.parametrize(
    "damage", [b"", b"\x00\xff garbage", b'{"state": "complete"}', b"{", b"[]"]
)
def test_a_manifest_overwritten_with_garbage_makes_a_damaged_copy_never_removed(
    backend_factory: BackendFactory, raw_put: RawPut, damage: bytes
) -> None:
    backend = backend_factory("t")
    make_copy(backend, OLD, {"a": b"1"})
    make_copy(backend, NEW, {"a": b"2"})
    raw_put(f"{NEW}/.palhm-manifest.json", damage)  # behind palhm's back: no metadata
    copies = by_prefix(backend.list_copies())
    assert (copies[NEW].state, copies[NEW].counted) == ("damaged", False)
    assert copies[NEW].problem
    assert copies[OLD].state == "complete"
    with pytest.raises(BackendError, match="not a copy of this task"):
        backend.remove_copy(copies[NEW])
    assert read_object(backend, NEW, "a") == b"2"


@pytest.mark.parametrize("task_id", ["t", "u"])
def test_a_final_manifest_put_by_other_means_is_judged_by_its_body(
    backend_factory: BackendFactory, raw_put: RawPut, task_id: str
) -> None:
    """As a copy restored with a tool that drops S3 metadata: its body names the task."""
    make_copy(backend_factory("t"), OLD, {"a": b"1"})
    raw_put(f"{OLD}/.palhm-manifest.json", final_manifest(OLD))
    (copy,) = backend_factory(task_id).list_copies()
    assert (copy.state, copy.task) == ("complete" if task_id == "t" else "other-task", "t")
    raw_put(f"{OLD}/.palhm-manifest.json", final_manifest(NEW))  # another copy's manifest
    (copy,) = backend_factory(task_id).list_copies()
    assert copy.state == "damaged" and NEW in copy.problem
