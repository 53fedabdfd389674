"""The fan-out sink and the `require` policy, with in-memory sinks beside the real
localfs/aws-s3 runs of tests/integration/test_destinations.py; default destination
names; the per-destination metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import pytest

from palhm.backends.base import Backend, CopyInfo, CopyWriter, ObjectSink
from palhm.config.convert import destination_names
from palhm.engine.fanout import (
    DestinationError,
    Destinations,
    EveryDestinationFailed,
    FanoutCopy,
    Target,
)
from palhm.errors import BackendError
from palhm.model import BackupTask, Destination
from palhm.notify.metrics import RunMetrics, parse_textfile, update_textfile


class MemorySink(ObjectSink):
    def __init__(self, *, fail_after: int | None = None, lose: int = 0) -> None:
        self.data = bytearray()
        self.fail_after = fail_after
        self.lose = lose  # bytes it "forgets" to report at close
        self.aborted = False

    def write(self, data: memoryview) -> None:
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise BackendError("disk full")
        self.data += data

    def close(self) -> int:
        return len(self.data) - self.lose

    def abort(self) -> None:
        self.aborted = True


class MemoryCopy(CopyWriter):
    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink
        self.prefix = "p"

    def open_object(self, path: str, *, alloc_size: int | None) -> ObjectSink:
        return self.sink

    def commit(self, manifest: bytes) -> None:
        pass

    def rollback(self) -> None:
        pass


class NamedBackend(Backend):
    name = "memory"

    def describe(self) -> str:
        return f"/mem/{self.params['root']}"

    def lock(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def list_copies(self) -> list[CopyInfo]:
        return []

    def begin_copy(self, prefix: str, *, building_manifest: bytes) -> CopyWriter:
        raise NotImplementedError

    def remove_copy(self, copy: CopyInfo) -> None:
        raise NotImplementedError

    def read_manifest(self, prefix: str) -> bytes | None:
        return None

    def open_object_reader(self, prefix: str, path: str) -> AbstractContextManager[IO[bytes]]:
        raise NotImplementedError


def destinations(require: str, *sinks: MemorySink) -> Destinations:
    targets = []
    for index, sink in enumerate(sinks):
        name = f"d{index}"
        destination = Destination(name, "localfs", {"root": name})
        task = BackupTask("t", "localfs", ())
        target = Target(destination, task, NamedBackend({"root": name}, task_id="t"))
        target.copy = MemoryCopy(sink)
        targets.append(target)
    return Destinations("t", targets, require)  # type: ignore[arg-type]


def chunks() -> Iterator[memoryview]:
    for _ in range(4):
        yield memoryview(b"x" * 10)


def test_every_destination_gets_every_byte() -> None:
    first, second = MemorySink(), MemorySink()
    sink = FanoutCopy(destinations("all", first, second)).open_object("o", alloc_size=None)
    for chunk in chunks():
        sink.write(chunk)
    assert sink.close() == 40
    assert first.data == second.data == b"x" * 40


def test_require_any_drops_a_failing_destination_and_goes_on() -> None:
    good, bad = MemorySink(), MemorySink(fail_after=10)
    group = destinations("any", good, bad)
    sink = FanoutCopy(group).open_object("o", alloc_size=None)
    for chunk in chunks():
        sink.write(chunk)
    assert sink.close() == 40 and good.data == b"x" * 40
    assert bad.aborted
    assert [t.name for t in group.live()] == ["d0"]
    (failed,) = group.failed()
    assert str(failed.error) == "task 't', destination 'd1' (/mem/d1): disk full"


def test_require_all_fails_the_object_on_the_first_destination_failure() -> None:
    group = destinations("all", MemorySink(), MemorySink(fail_after=10))
    sink = FanoutCopy(group).open_object("o", alloc_size=None)
    with pytest.raises(DestinationError, match="destination 'd1'"):
        for chunk in chunks():  # a writer's failure shows at the next chunk or at close
            sink.write(chunk)
        sink.close()


def test_require_any_fails_when_no_destination_is_left() -> None:
    group = destinations("any", MemorySink(fail_after=0), MemorySink(fail_after=0))
    sink = FanoutCopy(group).open_object("o", alloc_size=None)
    with pytest.raises(EveryDestinationFailed) as caught:
        sink.write(memoryview(b"x"))
        sink.close()
    assert [line.split("'")[3] for line in caught.value.lines()] == ["d0", "d1"]


def test_a_destination_storing_fewer_bytes_than_given_is_dropped() -> None:
    group = destinations("any", MemorySink(), MemorySink(lose=1))
    sink = FanoutCopy(group).open_object("o", alloc_size=None)
    sink.write(memoryview(b"abc"))
    assert sink.close() == 3
    (failed,) = group.failed()
    assert "stored 2 bytes, 3 were written" in str(failed.error)


def test_default_names_follow_the_backend_and_avoid_given_ones() -> None:
    wanted: list[tuple[str | None, str]] = [
        (None, "localfs"),
        (None, "aws-s3"),
        (None, "aws-s3"),
        ("localfs", "aws-s3"),
    ]
    assert destination_names(wanted) == ["localfs-2", "aws-s3", "aws-s3-2", "localfs"]


def test_destination_series_keep_the_last_success_of_a_failed_destination(
    tmp_path: Path,
) -> None:
    path = tmp_path / "palhm.prom"
    update_textfile(path, RunMetrics("t", 100.0, 1.0, True, True, 5, 1, (("a", True), ("b", True))))
    update_textfile(
        path, RunMetrics("t", 200.0, 1.0, False, True, 0, None, (("a", True), ("b", False)))
    )
    series, _ = parse_textfile(path.read_text())
    success: dict[Any, float] = series["palhm_destination_last_success_timestamp_seconds"]
    assert success == {("t", "a"): 200.0, ("t", "b"): 100.0}
    assert series["palhm_destination_last_run_success"] == {("t", "a"): 1.0, ("t", "b"): 0.0}
    assert series["palhm_last_run_success"] == {("t", None): 0.0}
