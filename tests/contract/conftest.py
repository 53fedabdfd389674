"""Fixtures of the backend contract suite: the same tests run against every backend.

`backend_factory(task_id, **params) -> Backend` makes a backend on a fresh, empty
root for this test; two calls give two instances on the *same* root (lock tests).
`raw_put(relative_key, data)` stores a file under that root behind palhm's back, to
fake copies made by the original PALHM and foreign files (doc/design.md#what-counts-as-a-copy).

aws-s3 takes both from tests/services/moto.py (`s3_backend_factory`, `s3_raw_put`)
on moto over HTTP; `aws-s3@STORE` runs the same suite on the stores of
tests/services/s3stores.py over HTTPS (moto, SeaweedFS, Ceph RGW), through their
endpoint and environment (AWS_CA_BUNDLE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import Backend
from palhm.backends.localfs import LocalfsBackend
from tests.services.s3stores import FULL_STORES, S3Store, fresh_bucket, store_by_name

BackendFactory = Callable[..., Backend]
RawPut = Callable[[str, bytes], None]


S3_ROOT = "palhm/root"
# HTTPS only: the harder path (checksums as aws-chunked bodies); HTTP is exercised by
# tests/contract/test_s3_stores.py on every store, and keeps CI time reasonable.
OTHER_STORES = [f"aws-s3@{name}" for name in FULL_STORES if name.endswith("-https")]


@pytest.fixture(params=["localfs", "aws-s3", *OTHER_STORES])
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def other_store(
    backend_name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[S3Store, str] | None]:
    """(store, fresh bucket) for aws-s3@STORE, its environment in os.environ."""
    if not backend_name.startswith("aws-s3@"):
        yield None
        return
    store = store_by_name(request, backend_name.partition("@")[2])
    for name, value in store.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with fresh_bucket(store) as bucket:
        yield store, bucket


@pytest.fixture
def backend_factory(
    backend_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    other_store: tuple[S3Store, str] | None,
) -> BackendFactory:
    if other_store is not None:
        from palhm.backends.s3.backend import S3Backend

        store, bucket = other_store

        def make_s3(task_id: str, **params: Any) -> Backend:
            merged = {
                "bucket": bucket,
                "root": S3_ROOT,
                "endpoint_url": store.endpoint_url,
                "region": "us-east-1",
                **params,
            }
            return S3Backend(merged, task_id=task_id)

        return make_s3
    if backend_name == "localfs":
        root = tmp_path / "root"

        def make_localfs(task_id: str, **params: Any) -> Backend:
            return LocalfsBackend({"root": str(root), **params}, task_id=task_id)

        return make_localfs
    factory: BackendFactory = _service_fixture(request, "s3_backend_factory")
    return factory


@pytest.fixture
def raw_put(
    backend_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    other_store: tuple[S3Store, str] | None,
) -> RawPut:
    if other_store is not None:
        store, bucket = other_store

        def put_object(key: str, data: bytes) -> None:
            store.client().put_object(Bucket=bucket, Key=f"{S3_ROOT}/{key}", Body=data)

        return put_object
    if backend_name == "localfs":
        root = tmp_path / "root"

        def put_file(key: str, data: bytes) -> None:
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

        return put_file
    put: RawPut = _service_fixture(request, "s3_raw_put")
    return put


def _service_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.skip(f"fixture {name} is not available yet (tests/services/moto.py)")
