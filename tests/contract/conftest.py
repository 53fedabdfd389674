"""Fixtures of the backend contract suite: the same tests run against every backend.

`backend_factory(task_id, **params) -> Backend` makes a backend on a fresh, empty
root for this test; two calls give two instances on the *same* root (lock tests).
`raw_put(relative_key, data)` stores a file under that root behind palhm's back, to
fake copies made by the original PALHM and foreign files (SPEC B6).

aws-s3 takes both from tests/services/moto.py (`s3_backend_factory`, `s3_raw_put`);
until those exist the aws-s3 runs are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import Backend
from palhm.backends.localfs import LocalfsBackend

BackendFactory = Callable[..., Backend]
RawPut = Callable[[str, bytes], None]


@pytest.fixture(params=["localfs", "aws-s3"])
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def backend_factory(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> BackendFactory:
    if backend_name == "localfs":
        root = tmp_path / "root"

        def make_localfs(task_id: str, **params: Any) -> Backend:
            return LocalfsBackend({"root": str(root), **params}, task_id=task_id)

        return make_localfs
    factory: BackendFactory = _service_fixture(request, "s3_backend_factory")
    return factory


@pytest.fixture
def raw_put(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> RawPut:
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
