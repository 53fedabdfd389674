"""The aws-s3 backend when its endpoint is unreachable or goes away mid-run.

Each test starts its own private moto server so it can kill it without disturbing
the shared one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from palhm.backends.s3 import backend as s3
from palhm.backends.s3.backend import S3Backend
from palhm.backends.s3.upload import S3Limits
from palhm.errors import BackendError
from tests.services.moto import client_env, free_port, need_moto, start_moto_server

pytestmark = pytest.mark.services

PREFIX = "2024-01-03T00:00:00+00:00"
BUCKET = "palhm-vanishing"


def params(endpoint_url: str) -> dict[str, object]:
    return {"bucket": BUCKET, "root": "r", "endpoint_url": endpoint_url, "part_size": 1024}


@pytest.fixture(autouse=True)
def setup(monkeypatch: pytest.MonkeyPatch) -> None:
    need_moto()
    for name, value in client_env("http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(s3, "LIMITS", S3Limits(1024, 64 * 1024, 40, 400 * 1024))


def test_endpoint_going_away_mid_upload_fails_with_a_clear_error(tmp_path: Path) -> None:
    with start_moto_server(tmp_path) as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        backend = S3Backend(params(server.endpoint_url), task_id="t")
        writer = backend.begin_copy(PREFIX, building_manifest=b"{}\n")
        sink = writer.open_object("db.sql", alloc_size=None)
        sink.write(memoryview(os.urandom(5000)))  # a multipart upload is under way
        server.stop()
        with pytest.raises(BackendError) as caught:
            for _ in range(200):
                sink.write(memoryview(os.urandom(1000)))
            sink.close()
    message = str(caught.value)
    assert message.startswith(f"s3://{BUCKET}/r/{PREFIX}/db.sql: upload")
    assert f"cannot connect to the endpoint {server.endpoint_url}" in message
    assert "\n" not in message
    sink.abort()  # never raises, even with the endpoint gone
    with pytest.raises(BackendError, match=re.escape(f"s3://{BUCKET}/r/{PREFIX}/db.sql: aborting")):
        writer.rollback()


def test_unreachable_endpoint_is_reported_as_such() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    backend = S3Backend(params(endpoint), task_id="t")
    with pytest.raises(BackendError) as caught:
        backend.list_copies()
    assert str(caught.value) == (
        f"s3://{BUCKET}/r/: listing failed: cannot connect to the endpoint"
        f" {endpoint} (is it up and reachable?)"
    )
