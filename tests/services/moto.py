"""Service fixtures: a real moto server (S3, SNS, SQS over HTTP on 127.0.0.1).

- `moto_server` (session): `python -m moto.server -H 127.0.0.1 -p PORT`, started
  with S3_UPLOAD_PART_MIN_SIZE=1024 so that multipart uploads with KiB parts can be
  tested on small data. `.endpoint_url`, `.env` (fake credentials, region, endpoint)
  and `.client(service)`.
- `start_moto_server(log_dir)`: the same as a context manager, for a test that needs
  a private server it can kill (an endpoint going away mid-run) and for bench/.
- `moto_env` (function): the server's env put into os.environ, for in-process boto3.
- `s3_bucket` (function): a fresh bucket, emptied and removed afterwards.
- `s3_backend_factory` (function): `(task_id, **params) -> S3Backend` bound to the
  test's fresh bucket (root "palhm/root" unless given); what tests/contract uses.
- `sns_topic` (function): a fresh SNS topic with an SQS queue subscribed to it;
  `.received()` returns the SNS envelopes (Subject, Message ...) that arrived.
- `s3_raw_put` (function): `(relative_key, data)` stores ROOT/relative_key in that
  bucket behind palhm's back (copies of the original PALHM, foreign files).

No credential or request ever leaves 127.0.0.1: fake credentials come from the
environment (so botocore never asks an instance metadata service), the user's
~/.aws files are hidden, and proxies are bypassed. Each fixture stops exactly the
process it started. moto missing: skip, or fail under PALHM_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, require_services

READY_TIMEOUT = 30.0
PART_MIN_SIZE = 1024  # what moto accepts as a non-last part (AWS: 5 MiB)
DEFAULT_ROOT = "palhm/root"


@dataclass
class MotoServer:
    """A running moto server and how clients reach it."""

    port: int
    process: subprocess.Popen[bytes]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        """A boto3 client of this server (made once per service: clients are slow to
        make and thread-safe to share)."""
        if service not in self.clients:
            import boto3

            self.clients[service] = boto3.session.Session().client(
                service,
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
        return self.clients[service]

    def stop(self) -> None:
        """Stop exactly this server process."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def client_env(endpoint_url: str, home: Path | None = None) -> dict[str, str]:
    """Environment for boto3 / aws CLI / palhm talking to a test server only."""
    hidden = str((home or Path("/nonexistent")) / "no-such-aws-file")
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": hidden,
        "AWS_SHARED_CREDENTIALS_FILE": hidden,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def need_moto() -> None:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        message = f"moto server not available: {exc}"
        if require_services():
            pytest.fail(message)
        pytest.skip(message)


def _wait_ready(server: MotoServer) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"moto server exited with {server.process.returncode}: {log}")
        try:
            with opener.open(f"{server.endpoint_url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"moto server not ready on {server.endpoint_url} after {READY_TIMEOUT} s")


@contextmanager
def start_moto_server(
    log_dir: Path,
    *,
    part_min_size: int = PART_MIN_SIZE,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[MotoServer]:
    """Start a moto server on `port` (default: a free loopback port); stop exactly it
    at the end. A fixed port lets a test restart a server at the same endpoint.
    `extra_env`: moto settings, such as INITIAL_NO_AUTH_ACTION_COUNT (IAM enforced
    after that many requests)."""
    port = free_port() if port is None else port
    log_file = log_dir / f"moto-{port}-{time.monotonic_ns()}.log"
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(part_min_size), **(extra_env or {})}
    with open(log_file, "wb") as log:  # a file, not a pipe nobody drains: moto logs each request
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = MotoServer(port, process, log_file)
    server.env = client_env(server.endpoint_url, log_dir)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    need_moto()
    try:
        with start_moto_server(tmp_path_factory.mktemp("moto")) as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def moto_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's client environment in os.environ for this test."""
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server.env


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object and multipart upload of `bucket` (1,000 keys a request)."""
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", ()):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", ())]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@pytest.fixture
def s3_bucket(moto_server: MotoServer, moto_env: dict[str, str]) -> Iterator[str]:
    """A fresh, empty bucket for one test; emptied and removed afterwards."""
    s3 = moto_server.client("s3")
    name = f"palhm-test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    if name in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", ())}:
        empty_bucket(s3, name)  # (a test may have removed it)
        s3.delete_bucket(Bucket=name)


@pytest.fixture
def s3_backend_factory(moto_server: MotoServer, s3_bucket: str) -> Callable[..., Any]:
    """`(task_id, **params) -> S3Backend` on the test's bucket; params are the model's
    snake_case backend_param keys (bucket and root may be overridden)."""
    from palhm.backends.s3.backend import S3Backend

    def make(task_id: str, **params: Any) -> S3Backend:
        merged = {
            "bucket": s3_bucket,
            "root": DEFAULT_ROOT,
            "endpoint_url": moto_server.endpoint_url,
            "region": "us-east-1",
            **params,
        }
        return S3Backend(merged, task_id=task_id)

    return make


@pytest.fixture
def s3_raw_put(moto_server: MotoServer, s3_bucket: str) -> Callable[[str, bytes], None]:
    """`(relative_key, data)`: store DEFAULT_ROOT/relative_key in the test's bucket."""
    s3 = moto_server.client("s3")

    def put(relative_key: str, data: bytes) -> None:
        s3.put_object(Bucket=s3_bucket, Key=f"{DEFAULT_ROOT}/{relative_key}", Body=data)

    return put


@dataclass
class SnsTopic:
    """A topic and the SQS queue subscribed to it: delivery is asserted through SQS."""

    topic_arn: str
    queue_url: str
    sqs: Any

    def received(self) -> list[dict[str, Any]]:
        """SNS envelopes waiting in the queue (Subject, Message, TopicArn ...)."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        return [json.loads(message["Body"]) for message in response.get("Messages", ())]


def subscribe_topic(server: MotoServer) -> SnsTopic:
    """Create a topic and a queue subscribed to it (not raw: the envelope keeps Subject)."""
    name = f"palhm-{uuid.uuid4().hex[:12]}"
    sns, sqs = server.client("sns"), server.client("sqs")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=attributes["Attributes"]["QueueArn"])
    return SnsTopic(topic_arn, queue_url, sqs)


@pytest.fixture
def sns_topic(moto_server: MotoServer, moto_env: dict[str, str]) -> SnsTopic:
    return subscribe_topic(moto_server)
