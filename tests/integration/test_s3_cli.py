"""Backups on aws-s3 run through the CLI (`palhm -f CFG run TASK`) into a real moto
server, as a user runs them: environment credentials and an endpoint-url."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import MANIFEST_NAME
from tests.helpers import run_palhm, write_config
from tests.services.moto import MotoServer, free_port

pytestmark = pytest.mark.services

MiB = 1 << 20
ROOT = "backup/host1"


def backup_config(
    bucket: str, endpoint_url: str, objects: list[dict[str, Any]], **params: Any
) -> dict[str, Any]:
    return {
        "modules": ["aws"],
        "tasks": [
            {
                "id": "backup",
                "type": "backup",
                "backend": "aws-s3",
                "backend-param": {
                    "bucket": bucket,
                    "root": f"/{ROOT}/",
                    "endpoint-url": endpoint_url,
                    "region": "us-east-1",
                    # several runs a second: copies must not collide
                    "prefix": {"type": "iso8601", "timespec": "microseconds"},
                    **params,
                },
                "objects": objects,
            }
        ],
    }


def cat(path: str, source: Path) -> dict[str, Any]:
    return {"path": path, "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}]}


def copies(client: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """prefix -> {path: listing entry} of everything under ROOT."""
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ROOT):
        for entry in page.get("Contents", ()):
            prefix, _, path = entry["Key"][len(ROOT) + 1 :].partition("/")
            found.setdefault(prefix, {})[path] = entry
    return found


def uploads(client: Any, bucket: str) -> list[Any]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()))


def run(config: Path, moto_server: MotoServer) -> Any:
    result = run_palhm(["-f", str(config), "run", "backup"], env=moto_server.env)
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def s3(moto_server: MotoServer) -> Any:
    return moto_server.client("s3")


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(12 * MiB))
    return path


def test_backup_uploads_streams_in_parts_and_rotates_by_count(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any, big_file: Path
) -> None:
    small = tmp_path / "small.txt"
    small.write_text("hello from palhm\n")
    objects = [cat("db/big.bin", big_file), cat("small.txt", small)]
    doc = backup_config(
        s3_bucket, moto_server.endpoint_url, objects,
        **{"nb-copy-limit": 2, "part-size": 5 * MiB, "rot-storage-class": "STANDARD_IA"},
    )  # fmt: skip
    config = write_config(tmp_path / "palhm.conf", doc)
    for _ in range(3):
        result = run(config, moto_server)
        assert result.returncode == 0, result.stderr
    found = copies(s3, s3_bucket)
    assert len(found) == 2  # the oldest of three was rotated away
    newest = sorted(found)[-1]
    assert sorted(found[newest]) == [MANIFEST_NAME, "db/big.bin", "small.txt"]
    key = f"{ROOT}/{newest}/db/big.bin"
    assert s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == big_file.read_bytes()
    assert found[newest]["db/big.bin"]["StorageClass"] == "STANDARD_IA"
    manifest = json.loads(
        s3.get_object(Bucket=s3_bucket, Key=f"{ROOT}/{newest}/{MANIFEST_NAME}")["Body"].read()
    )
    assert manifest["state"] == "complete"
    assert {o["path"]: o["size"] for o in manifest["objects"]} == {
        "db/big.bin": 12 * MiB, "small.txt": len("hello from palhm\n"),
    }  # fmt: skip
    assert uploads(s3, s3_bucket) == []


def test_rotation_by_root_size_keeps_what_fits(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any
) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"x" * 1000)
    doc = backup_config(
        s3_bucket, moto_server.endpoint_url, [cat("data", data)], **{"root-size-limit": 2500}
    )
    config = write_config(tmp_path / "palhm.conf", doc)
    prefixes = []
    for _ in range(4):
        assert run(config, moto_server).returncode == 0
        prefixes.append(sorted(copies(s3, s3_bucket))[-1])
    assert sorted(copies(s3, s3_bucket)) == prefixes[-2:]  # 2 x 1,000 bytes fit in 2,500


def test_failing_stage_mid_upload_leaves_no_key_and_no_multipart_upload(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any, big_file: Path
) -> None:
    writes_then_fails = (
        "import sys; sys.stdout.buffer.write(bytes(12 << 20)); sys.stdout.flush(); sys.exit(3)"
    )
    objects = [
        cat("good.bin", big_file),
        {"path": "bad.bin", "pipeline": [
            {"type": "exec-inline", "argv": [sys.executable, "-c", writes_then_fails]},
        ]},
    ]  # fmt: skip
    doc = backup_config(s3_bucket, moto_server.endpoint_url, objects, **{"part-size": 5 * MiB})
    log_start = moto_server.log_file.stat().st_size
    result = run(write_config(tmp_path / "palhm.conf", doc), moto_server)
    assert result.returncode == 1
    requests = moto_server.log_file.read_bytes()[log_start:].decode()
    assert re.search(r'"PUT /[^ ]*/bad\.bin\?uploadId=[^ ]*&partNumber=2 ', requests)  # under way
    assert re.search(r'"DELETE /[^ ]*/bad\.bin\?uploadId=', requests)  # and aborted
    assert "bad.bin" in result.stderr
    assert "exited with status 3" in result.stderr
    assert copies(s3, s3_bucket) == {}
    assert uploads(s3, s3_bucket) == []


def test_unreachable_endpoint_fails_with_one_clear_line(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    doc = backup_config(s3_bucket, endpoint, [cat("x", tmp_path)])
    result = run(write_config(tmp_path / "palhm.conf", doc), moto_server)
    assert result.returncode == 1
    assert f"cannot connect to the endpoint {endpoint} (is it up and reachable?)" in result.stderr
    assert "task 'backup'" in result.stderr


def test_missing_bucket_names_the_bucket_and_the_s3_error(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    doc = backup_config("palhm-no-such-bucket", moto_server.endpoint_url, [cat("x", tmp_path)])
    result = run(write_config(tmp_path / "palhm.conf", doc), moto_server)
    assert result.returncode == 1
    assert "s3://palhm-no-such-bucket/backup/host1/" in result.stderr
    assert "NoSuchBucket: The specified bucket does not exist" in result.stderr


def test_without_boto3_the_error_says_what_to_install(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str
) -> None:
    shadow = tmp_path / "no-boto3"
    (shadow / "boto3").mkdir(parents=True)
    (shadow / "boto3" / "__init__.py").write_text("raise ImportError('No module named boto3')\n")
    doc = backup_config(s3_bucket, moto_server.endpoint_url, [cat("x", tmp_path)])
    env = {
        **moto_server.env,
        "PYTHONPATH": f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    result = run_palhm(
        ["-f", str(write_config(tmp_path / "palhm.conf", doc)), "run", "backup"], env=env
    )
    assert result.returncode == 1
    assert "module 'aws' needs boto3, which palhm's Python cannot import" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_and_get_read_copies_back_from_s3(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any, big_file: Path
) -> None:
    doc = backup_config(s3_bucket, moto_server.endpoint_url, [cat("db/big.bin", big_file)])
    config = write_config(tmp_path / "palhm.conf", doc)
    assert run(config, moto_server).returncode == 0
    (prefix,) = copies(s3, s3_bucket)
    verified = run_palhm(["-f", str(config), "verify", "backup"], env=moto_server.env)
    assert verified.returncode == 0, verified.stderr
    got = subprocess.run(
        [sys.executable, "-m", "palhm", "-f", str(config), "get", "backup", prefix, "db/big.bin"],
        env={**os.environ, **moto_server.env}, capture_output=True, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert got.stdout == big_file.read_bytes()
    key = f"{ROOT}/{prefix}/db/big.bin"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=bytes(12 * MiB))  # same size, other bytes
    damaged = run_palhm(["-f", str(config), "verify", "backup"], env=moto_server.env)
    assert damaged.returncode == 1
    assert "db/big.bin" in damaged.stderr


def palhm_cli(config: Path, moto_server: MotoServer, *args: str) -> Any:
    result = run_palhm(["-f", str(config), *args], env=moto_server.env)
    assert "Traceback" not in result.stderr
    return result


def two_tasks_config(tmp_path: Path, bucket: str, endpoint_url: str) -> Path:
    """Tasks "one" and "two" on the same bucket root, each keeping one copy."""
    tasks = []
    for task_id in ("one", "two"):
        source = tmp_path / f"{task_id}.txt"
        source.write_text(f"from {task_id}")
        (task,) = backup_config(bucket, endpoint_url, [cat("a", source)])["tasks"]
        task["backend-param"]["nb-copy-limit"] = 1
        tasks.append({**task, "id": task_id})
    return write_config(tmp_path / "palhm.conf", {"modules": ["aws"], "tasks": tasks})


def test_two_tasks_on_one_bucket_root_never_see_or_rotate_each_others_copies(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any
) -> None:
    config = two_tasks_config(tmp_path, s3_bucket, moto_server.endpoint_url)
    for task_id in ("two", "one", "one", "one"):
        result = palhm_cli(config, moto_server, "run", task_id)
        assert result.returncode == 0, result.stderr
    assert len(copies(s3, s3_bucket)) == 2, "one task's rotation removed the other's copy"
    assert "also holds copies of task 'two'" in result.stderr
    for task_id in ("one", "two"):
        listed = json.loads(palhm_cli(config, moto_server, "list", task_id, "--json").stdout)
        assert len(listed) == 1
        got = palhm_cli(config, moto_server, "get", task_id, "latest", "a")
        assert got.stdout == f"from {task_id}"
        assert palhm_cli(config, moto_server, "verify", task_id).returncode == 0


@pytest.mark.parametrize("damage", [b"", b"\x00\xff garbage", b'{"format": "palhm-manifest"'])
def test_a_damaged_manifest_is_listed_fails_verify_and_is_never_rotated(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any, damage: bytes
) -> None:
    config = two_tasks_config(tmp_path, s3_bucket, moto_server.endpoint_url)
    for _ in range(2):
        assert palhm_cli(config, moto_server, "run", "one").returncode == 0
    (newest,) = copies(s3, s3_bucket)
    s3.put_object(Bucket=s3_bucket, Key=f"{ROOT}/{newest}/{MANIFEST_NAME}", Body=damage)
    verified = palhm_cli(config, moto_server, "verify", "one")
    assert verified.returncode == 1
    assert f"copy {newest} is damaged" in verified.stderr, verified.stderr
    by_name = palhm_cli(config, moto_server, "verify", "one", newest)
    assert by_name.returncode == 1 and "damaged" in by_name.stderr
    listed = palhm_cli(config, moto_server, "list", "one")
    assert re.search(rf"^{re.escape(newest)} +damaged ", listed.stdout, re.M), listed.stdout
    got = palhm_cli(config, moto_server, "get", "one", "latest", "a")
    assert got.returncode == 1 and "damaged" in got.stderr
    for _ in range(2):  # nb-copy-limit 1: rotation removes its own copies, never this one
        assert palhm_cli(config, moto_server, "run", "one").returncode == 0
    left = copies(s3, s3_bucket)
    assert newest in left and len(left) == 2
    assert left[newest][MANIFEST_NAME]["Size"] == len(damage)


STRAY_AFTER = """
import shutil, subprocess, sys
with open(sys.argv[1], "rb") as source:
    shutil.copyfileobj(source, sys.stdout.buffer)
sys.stdout.flush()
# a new session, out of reach of palhm's process group, still holding stdout
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
"""


@pytest.mark.parametrize("size", [3, 12 * MiB + 5], ids=["small", "several-parts"])
def test_a_stray_holding_the_output_ends_the_object_with_exactly_the_stage_bytes(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any, size: int
) -> None:
    """The pump's stop path (a process left holding the pipe) with the bytes read
    straight into the parts: the stored object is exactly what the stage wrote."""
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(size))
    stage = {"type": "exec-inline", "argv": [sys.executable, "-c", STRAY_AFTER, str(source)]}
    doc = backup_config(s3_bucket, moto_server.endpoint_url, [{"path": "o", "pipeline": [stage]}])
    config = write_config(tmp_path / "palhm.conf", doc)
    result = run(config, moto_server)
    assert result.returncode == 0, result.stderr
    assert "killed" in result.stderr, result.stderr  # the stray was reported and stopped
    (prefix,) = copies(s3, s3_bucket)
    stored = s3.get_object(Bucket=s3_bucket, Key=f"{ROOT}/{prefix}/o")["Body"].read()
    assert stored == source.read_bytes()
    manifest = json.loads(
        s3.get_object(Bucket=s3_bucket, Key=f"{ROOT}/{prefix}/{MANIFEST_NAME}")["Body"].read()
    )
    assert manifest["objects"][0]["size"] == size
    assert palhm_cli(config, moto_server, "verify", "backup").returncode == 0
