"""S3ObjectSink's concurrency rules with a fake S3 client (the real protocol is tested
against moto in tests/integration/test_s3_backend.py): parts in flight per object and
per copy stay bounded, and a failed part surfaces in the writer's thread."""

from __future__ import annotations

import itertools
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
