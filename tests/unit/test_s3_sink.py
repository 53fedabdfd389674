"""S3ObjectSink's concurrency rules with a fake S3 client (the real protocol is tested
against moto in tests/integration/test_s3_backend.py): parts in flight per object and
per copy stay bounded, and a failed part surfaces in the writer's thread."""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from palhm.backends.s3.upload import (
    PartSchedule,
    S3Limits,
    S3ObjectSink,
    UploadBudget,
    UploadTarget,
    in_flight_parts,
)
from palhm.errors import BackendError

PART = 1024
LIMITS = S3Limits(min_part_size=PART, max_part_size=PART, max_parts=10_000, max_object_size=PART)


KEYS = itertools.count()


class SlowS3:
    """Accepts parts slowly and records the most bytes ever in flight."""

    def __init__(self, fail_part: int | None = None) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_part = fail_part
        self.aborted = False
        self.stored: dict[str, int] = {}  # upload id (= key) -> bytes

    def head_object(self, *, Key: str, **_: Any) -> dict[str, int]:  # noqa: N803 - boto3's names
        return {"ContentLength": self.stored.get(Key, 0)}

    def create_multipart_upload(self, *, Key: str, **_: Any) -> dict[str, str]:  # noqa: N803
        return {"UploadId": Key}

    def upload_part(
        self, *, Body: bytearray, PartNumber: int, UploadId: str, **_: Any
    ) -> dict[str, str]:  # noqa: N803 - boto3's names
        with self.lock:
            self.in_flight += len(Body)
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= len(Body)
            self.stored[UploadId] = self.stored.get(UploadId, 0) + len(Body)
        if PartNumber == self.fail_part:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Reduce your request rate."}},
                "UploadPart",
            )
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, **_: Any) -> None:
        return None

    def abort_multipart_upload(self, **_: Any) -> None:
        self.aborted = True


def sink(client: SlowS3, budget: UploadBudget | None = None, key: str = "") -> S3ObjectSink:
    key = key or f"k{next(KEYS)}"
    target = UploadTarget(client=client, bucket="b", key=key, checksum=None)
    return S3ObjectSink(target, PartSchedule(PART, 10_000, 10_000, LIMITS), budget)


def feed(object_sink: S3ObjectSink, nb_parts: int) -> None:
    chunk = memoryview(bytes(PART))
    for _ in range(nb_parts):
        object_sink.write(chunk)
    object_sink.close()


def test_one_object_has_at_most_its_share_of_parts_in_flight() -> None:
    client = SlowS3()
    feed(sink(client), 40)
    assert PART < client.most_in_flight <= in_flight_parts(PART) * PART


def test_objects_of_one_copy_share_one_budget() -> None:
    client = SlowS3()
    budget = UploadBudget(limit=3 * PART)
    threads = [threading.Thread(target=feed, args=(sink(client, budget), 30)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # over the budget only by the first part of an object that had none in flight
    assert PART < client.most_in_flight <= 3 * PART + 4 * PART
    assert budget.used == 0


def test_failed_part_is_raised_in_the_writer_thread_and_the_upload_aborted() -> None:
    client = SlowS3(fail_part=3)
    object_sink = sink(client, key="k")
    with pytest.raises(BackendError) as caught:
        feed(object_sink, 40)
    assert str(caught.value) == (
        "s3://b/k: upload of part 3 failed: SlowDown: Reduce your request rate."
    )
    object_sink.abort()  # what the pipeline runner does on a sink error
    assert client.aborted
    assert client.in_flight == 0  # abort waited for the parts under way


class RecordingS3(SlowS3):
    """Keeps a copy of every part as the request saw it, and which buffer carried it."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[int, bytes] = {}
        self.buffers: list[bytearray] = []  # kept alive: an id() is never reused

    def upload_part(self, *, Body: bytearray, PartNumber: int, **rest: Any) -> dict[str, str]:  # noqa: N803
        self.parts[PartNumber] = bytes(Body)
        self.buffers.append(Body)
        return super().upload_part(Body=Body, PartNumber=PartNumber, **rest)

    def put_object(self, *, Body: bytearray, Key: str, **_: Any) -> None:  # noqa: N803
        self.parts[1] = bytes(Body)
        self.stored[Key] = len(Body)


def read_into(object_sink: S3ObjectSink, data: bytes, chunk: int) -> None:
    """What the pump does for a sink that reads_into: fill the view, release, took()."""
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        while piece:
            with object_sink.read_buffer(len(piece)) as view:
                count = len(view)
                assert 1 <= count <= len(piece)
                view[:] = piece[:count]
            object_sink.took(count)
            piece = piece[count:]


@pytest.mark.parametrize("size", [1, PART - 1, PART, PART + 1, 37 * PART + 301])
def test_bytes_read_into_the_parts_are_uploaded_exactly(size: int) -> None:
    client = RecordingS3()
    object_sink = sink(client)
    data = os.urandom(size)
    read_into(object_sink, data, 300)  # 300 does not divide a part: views end at part ends
    assert object_sink.close() == size
    assert b"".join(client.parts[n] for n in sorted(client.parts)) == data
    assert object_sink.part_sizes == [len(client.parts[n]) for n in sorted(client.parts)]


def test_part_buffers_are_reused_once_their_upload_ended() -> None:
    client = RecordingS3()
    object_sink = sink(client)
    data = os.urandom(40 * PART)
    read_into(object_sink, data, PART)
    object_sink.close()
    # at most the parts in flight, plus the one being filled, ever had a buffer
    assert len({id(buffer) for buffer in client.buffers}) <= in_flight_parts(PART) + 2 < 40
    assert b"".join(client.parts[n] for n in sorted(client.parts)) == data  # none overwritten


def test_write_and_read_into_may_share_a_part() -> None:
    client = RecordingS3()
    object_sink = sink(client)
    data = os.urandom(3 * PART + 10)
    object_sink.write(memoryview(data[:100]))
    read_into(object_sink, data[100:2000], 512)
    object_sink.write(memoryview(data[2000:]))
    assert object_sink.close() == len(data)
    assert b"".join(client.parts[n] for n in sorted(client.parts)) == data


def test_spare_part_buffers_stay_within_the_budget() -> None:
    budget = UploadBudget(limit=2 * PART)
    given = [bytearray(PART) for _ in range(3)]
    for buffer in given:
        budget.give_back(buffer)
    taken = [budget.part_buffer(PART) for _ in range(3)]
    reused = [b for b in taken if any(b is g for g in given)]
    assert len(reused) == 2  # the third was over the limit, so a new one
    assert len(budget.part_buffer(2 * PART)) == 2 * PART  # sizes are never mixed


def test_objects_of_a_copy_start_on_the_buffer_the_last_one_gave_back() -> None:
    client = RecordingS3()
    budget = UploadBudget(limit=8 * PART)
    for number in range(20):
        object_sink = sink(client, budget)
        data = os.urandom(100 + number)
        if number % 2:
            read_into(object_sink, data, 64)
        else:
            object_sink.write(memoryview(data))
        assert object_sink.close() == len(data)
        assert client.parts[1] == data  # its own bytes, not the buffer's leftovers
        assert budget.spare_bytes == PART  # one buffer, handed from object to object
