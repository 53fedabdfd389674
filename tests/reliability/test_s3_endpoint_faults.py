"""The S3 endpoint dies in the middle of an upload, or a stage fails mid-upload while
the endpoint stays up: a clear error, then nothing left behind
(doc/design.md#backups-objects-and-groups, doc/aws.md)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import PYTHON, run, stage, start, stop, survivors, wait_for
from tests.reliability.s3_harness import (
    assert_s3_copies_whole,
    inspect_s3,
    list_keys,
    moto_on_port,
    s3_config,
    s3_objects,
    s3_param,
)
from tests.services.moto import MotoServer, free_port, need_moto

pytestmark = pytest.mark.services

# Writes 6 MiB (the first 5 MiB part goes up), raises a flag, waits for `go`, then
# writes a little more and exits with the status given. If palhm already gave up (the
# endpoint died under the other object), that last write meets a closed pipe: the
# writer then exits quietly, as `head` would, so palhm's stderr is palhm's own.
SLOW_WRITER = (
    "import os, sys, time\n"
    "flag, go, status = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "data = os.urandom(1 << 20)\n"
    "for _ in range(6): os.write(1, data)\n"
    "open(flag, 'w').close()\n"
    "while not os.path.exists(go): time.sleep(0.02)\n"
    "try: os.write(1, data[:1000])\n"
    "except BrokenPipeError: os._exit(141)\n"
    "sys.exit(status)\n"
)


def slow_big(tmp_path: Path, marker: str, status: int) -> list[dict[str, Any]]:
    argv = [PYTHON, "-c", SLOW_WRITER, str(tmp_path / "writing"), str(tmp_path / "go"), str(status)]
    return [stage(*argv, marker=marker)]


def uploads(s3: Any, bucket: str, root: str) -> list[Any]:
    found: list[Any] = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{root}/").get(
        "Uploads", []
    )
    return found


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("palhm: error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def hold_until_uploading(
    process: subprocess.Popen[str], tmp_path: Path, s3: Any, bucket: str, root: str
) -> None:
    """Wait until the slow writer wrote its first part and a multipart upload exists."""
    wait_for((tmp_path / "writing").exists, what="the writer to write its first part")
    wait_for(lambda: uploads(s3, bucket, root), what="a multipart upload to start")
    assert process.poll() is None


def test_endpoint_killed_mid_upload_then_restarted(tmp_path: Path) -> None:
    need_moto()
    port, bucket, root, marker = free_port(), "palhm-vanishing", "r", uuid.uuid4().hex
    endpoint = f"http://127.0.0.1:{port}"
    param = s3_param(bucket, root, endpoint)
    held = s3_config(
        tmp_path / "held.json",
        param,
        s3_objects(marker, big_pipeline=slow_big(tmp_path, marker, 0)),
    )
    with moto_on_port(port, tmp_path) as server:
        server.client("s3").create_bucket(Bucket=bucket)
        process = start(held, env=server.env)
        try:
            hold_until_uploading(process, tmp_path, server.client("s3"), bucket, root)
            server.stop()  # the endpoint goes away mid-upload
            (tmp_path / "go").touch()
            _, stderr = process.communicate(timeout=120)
        finally:
            (tmp_path / "go").touch()
            stop(process)
    assert process.returncode == 1, stderr
    line = error_line(stderr)
    # 'small' runs beside 'big' (nb-workers 2); on a slow machine its last request
    # (the stored-size check) may be the one that meets the dead endpoint first.
    assert "task 'backup', object 'big'" in line or "task 'backup', object 'small'" in line
    assert f"s3://{bucket}/{root}/" in line and f"cannot connect to the endpoint {endpoint}" in line
    assert survivors(marker) == []
    with moto_on_port(port, tmp_path) as server:  # the same endpoint, state lost
        s3 = server.client("s3")
        s3.create_bucket(Bucket=bucket)
        config = s3_config(tmp_path / "c.json", param, s3_objects(marker))
        result = run(config, env=server.env)
        assert result.returncode == 0, result.stderr
        state = inspect_s3(s3, bucket, root)
        assert len(state.complete) == 1 and state.incomplete == {} and state.uploads == []
        assert_s3_copies_whole(s3, bucket, root, state)


def test_stage_failing_mid_upload_leaves_no_upload_and_no_key(
    moto_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    s3, root, marker = moto_server.client("s3"), "r", uuid.uuid4().hex
    param = s3_param(s3_bucket, root, moto_server.endpoint_url)
    objects = s3_objects(marker, big_pipeline=slow_big(tmp_path, marker, 3))
    config = s3_config(tmp_path / "c.json", param, objects)
    process = start(config, env=moto_server.env)
    try:
        hold_until_uploading(process, tmp_path, s3, s3_bucket, root)
        (tmp_path / "go").touch()  # the writer now fails with status 3
        _, stderr = process.communicate(timeout=120)
    finally:
        (tmp_path / "go").touch()
        stop(process)
    assert process.returncode == 1, stderr
    line = error_line(stderr)  # the stage's argv (multi-line code) continues the line
    assert "object 'big', stage 1" in line and " exited with status 3" in stderr
    assert uploads(s3, s3_bucket, root) == []
    assert list_keys(s3, s3_bucket, f"{root}/") == []  # the building manifest went too
    assert survivors(marker) == []
