"""A backup task with a localfs and an aws-s3 destination, through the CLI, on the
real moto server: one run of each pipeline makes both copies; `require` all / any
with a destination that fails (a bucket that does not exist); `palhm replicate`
after an outage, and against a damaged source (doc/backup.md#several-destinations)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import MANIFEST_NAME
from tests.helpers import run_palhm, write_config
from tests.services.moto import MotoServer

pytestmark = pytest.mark.services

ROOT = "backup/host1"
FINE_PREFIX = {"type": "iso8601", "timespec": "microseconds"}


def counting_object(path: str, counter: Path, size: int) -> dict[str, Any]:
    """An object whose pipeline appends a line to `counter` each time it runs."""
    program = (
        "import os, sys\n"
        f"open({str(counter)!r}, 'a').write({path!r} + '\\n')\n"
        f"sys.stdout.buffer.write(os.urandom({size}))\n"
    )
    return {
        "path": path,
        "pipeline": [{"type": "exec-inline", "argv": [sys.executable, "-c", program]}],
    }


def config_doc(
    tmp_path: Path,
    bucket: str,
    endpoint: str,
    *,
    require: str = "all",
    big: int = 100_000,
    **task: Any,
) -> dict[str, Any]:
    counter = tmp_path / "runs.txt"
    return {
        "modules": ["aws"],
        "tasks": [
            {
                "id": "t",
                "type": "backup",
                "require": require,
                "destinations": [
                    {
                        "backend": "localfs",
                        "backend-param": {"root": str(tmp_path / "local"), "prefix": FINE_PREFIX},
                    },
                    {
                        "backend": "aws-s3",
                        "backend-param": {
                            "bucket": bucket,
                            "root": ROOT,
                            "endpoint-url": endpoint,
                            "region": "us-east-1",
                            "part-size": 5 << 20,
                            "prefix": FINE_PREFIX,
                        },
                    },
                ],
                "objects": [
                    counting_object("big.bin", counter, big),
                    counting_object("sub/small.bin", counter, 1000),
                ],
                **task,
            }
        ],
    }


def s3_copies(s3: Any, bucket: str) -> dict[str, dict[str, bytes]]:
    """prefix -> {path: content} under ROOT."""
    found: dict[str, dict[str, bytes]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ROOT + "/"):
        for entry in page.get("Contents", ()):
            prefix, _, path = entry["Key"][len(ROOT) + 1 :].partition("/")
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            found.setdefault(prefix, {})[path] = body
    return found


def local_copies(root: Path) -> dict[str, dict[str, bytes]]:
    if not root.is_dir():
        return {}
    return {
        d.name: {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}
        for d in root.iterdir()
        if d.is_dir()
    }


def palhm(config: Path, moto: MotoServer, *args: str) -> Any:
    result = run_palhm(["-f", str(config), *args], env=moto.env)
    assert "Traceback" not in result.stderr
    return result


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("palhm: error:")]


@pytest.fixture
def s3(moto_server: MotoServer) -> Any:
    return moto_server.client("s3")


@pytest.fixture
def late_bucket(moto_server: MotoServer) -> Iterator[str]:
    """A bucket name that does not exist yet (an S3 outage); removed at the end if a
    test created it."""
    name = f"palhm-late-{uuid.uuid4().hex[:12]}"
    yield name
    s3 = moto_server.client("s3")
    try:
        for entry in s3.list_objects_v2(Bucket=name).get("Contents", ()):
            s3.delete_object(Bucket=name, Key=entry["Key"])
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass


def test_one_run_makes_identical_copies_on_both_and_runs_each_pipeline_once(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any
) -> None:
    doc = config_doc(tmp_path, s3_bucket, moto_server.endpoint_url, big=7 << 20)  # multipart
    config = write_config(tmp_path / "palhm.json", doc)
    result = palhm(config, moto_server, "run", "--json", "t")
    assert result.returncode == 0, result.stderr
    assert sorted((tmp_path / "runs.txt").read_text().split()) == ["big.bin", "sub/small.bin"]
    local, remote = local_copies(tmp_path / "local"), s3_copies(s3, s3_bucket)
    assert list(local) == list(remote) and len(local) == 1
    prefix = next(iter(local))
    assert local[prefix] == remote[prefix]  # every object and the manifest, byte for byte
    assert json.loads(local[prefix][MANIFEST_NAME])["state"] == "complete"
    report = json.loads(result.stdout)
    assert [(d["name"], d["status"]) for d in report["destinations"]] == [
        ("localfs", "ok"),
        ("aws-s3", "ok"),
    ]
    assert report["destinations"][1]["location"] == f"s3://{s3_bucket}/{ROOT}"


def test_require_all_with_a_missing_bucket_fails_and_leaves_no_copy(
    tmp_path: Path, moto_server: MotoServer, late_bucket: str
) -> None:
    config = write_config(
        tmp_path / "palhm.json", config_doc(tmp_path, late_bucket, moto_server.endpoint_url)
    )
    result = palhm(config, moto_server, "run", "t")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"palhm: error: task 't', destination 'aws-s3' (s3://{late_bucket}/")
    assert "NoSuchBucket" in line or "does not exist" in line, line
    assert local_copies(tmp_path / "local") == {}  # no copy, no staging directory


def test_require_any_commits_on_the_rest_exits_1_and_says_where_the_copy_is(
    tmp_path: Path, moto_server: MotoServer, late_bucket: str
) -> None:
    env_file, metrics = tmp_path / "hook-env.txt", tmp_path / "palhm.prom"
    hook = {
        "type": "exec-inline",
        "argv": [
            sys.executable,
            "-c",
            "import os, sys; open(sys.argv[1], 'w').write(os.environ['PALHM_DESTINATIONS_OK']"
            " + '|' + os.environ['PALHM_DESTINATIONS_FAILED'])",
            str(env_file),
        ],
    }
    doc = config_doc(
        tmp_path, late_bucket, moto_server.endpoint_url, require="any", **{"on-failure": [hook]}
    )
    doc["metrics"] = {"textfile": str(metrics)}
    config = write_config(tmp_path / "palhm.json", doc)
    result = palhm(config, moto_server, "run", "--json", "t")
    assert result.returncode == 1
    (prefix,) = local_copies(tmp_path / "local")
    (line,) = error_lines(result.stderr)
    assert line.startswith("palhm: error: task 't', destination 'aws-s3'")
    assert line.endswith(f"the new copy {prefix} is on localfs only")
    assert env_file.read_text() == "localfs|aws-s3"
    report = json.loads(result.stdout)
    assert report["status"] == "failure"
    assert report["copy"]["prefix"] == prefix
    assert [d["status"] for d in report["destinations"]] == ["ok", "failed"]
    text = metrics.read_text()
    assert 'palhm_destination_last_run_success{task="t",destination="localfs"} 1' in text
    assert 'palhm_destination_last_run_success{task="t",destination="aws-s3"} 0' in text


def test_every_destination_failing_is_a_failed_run(
    tmp_path: Path, moto_server: MotoServer, late_bucket: str
) -> None:
    (tmp_path / "local").write_text("a file where the root should be\n")
    doc = config_doc(tmp_path, late_bucket, moto_server.endpoint_url, require="any")
    config = write_config(tmp_path / "palhm.json", doc)
    result = palhm(config, moto_server, "run", "t")
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert [line.split("'")[3] for line in lines] == ["localfs", "aws-s3"]
    assert lines[-1].endswith("every destination failed: no new copy")
    assert not (tmp_path / "runs.txt").exists()  # no pipeline ran


def test_a_failing_stage_fails_every_destination(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any
) -> None:
    doc = config_doc(tmp_path, s3_bucket, moto_server.endpoint_url, require="any")
    doc["tasks"][0]["objects"].append(
        {"path": "broken", "pipeline": [{"type": "exec-inline", "argv": ["false"]}]}
    )
    config = write_config(tmp_path / "palhm.json", doc)
    result = palhm(config, moto_server, "run", "t")
    assert result.returncode == 1
    assert "object 'broken'" in result.stderr
    assert local_copies(tmp_path / "local") == {}
    assert s3_copies(s3, s3_bucket) == {}
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_replicate_fills_the_gap_an_outage_left(
    tmp_path: Path, moto_server: MotoServer, late_bucket: str, s3: Any
) -> None:
    doc = config_doc(tmp_path, late_bucket, moto_server.endpoint_url, require="any")
    config = write_config(tmp_path / "palhm.json", doc)
    for _ in range(2):
        assert palhm(config, moto_server, "run", "t").returncode == 1
    local = local_copies(tmp_path / "local")
    assert len(local) == 2
    s3.create_bucket(Bucket=late_bucket)  # the store is back
    plan = palhm(config, moto_server, "replicate", "-n", "t")
    assert plan.returncode == 0, plan.stderr
    newest = sorted(local)[-1]
    assert plan.stdout == f"task 't': localfs -> aws-s3: would copy {newest}\n"
    assert s3_copies(s3, late_bucket) == {}
    result = palhm(config, moto_server, "replicate", "--all", "t")
    assert result.returncode == 0, result.stderr
    assert s3_copies(s3, late_bucket) == local  # the same objects and manifests
    again = palhm(config, moto_server, "replicate", "--to", "aws-s3", "t")
    assert again.stdout == "task 't': localfs -> aws-s3: nothing to copy\n"
    verify = palhm(config, moto_server, "verify", "--dest", "aws-s3", "t", newest)
    assert verify.returncode == 0, verify.stderr


def test_replicate_refuses_a_damaged_source_object_and_rolls_back(
    tmp_path: Path, moto_server: MotoServer, late_bucket: str, s3: Any
) -> None:
    doc = config_doc(tmp_path, late_bucket, moto_server.endpoint_url, require="any")
    config = write_config(tmp_path / "palhm.json", doc)
    assert palhm(config, moto_server, "run", "t").returncode == 1
    (prefix,) = local_copies(tmp_path / "local")
    damaged = tmp_path / "local" / prefix / "sub" / "small.bin"
    data = bytearray(damaged.read_bytes())
    data[10] ^= 0xFF  # same size, other bytes
    damaged.chmod(0o600)
    damaged.write_bytes(bytes(data))
    s3.create_bucket(Bucket=late_bucket)
    result = palhm(config, moto_server, "replicate", "t")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert f"replicating copy {prefix} from 'localfs' to 'aws-s3', object 'sub/small.bin'" in line
    assert "checksum differs" in line and "rolled back" in line
    assert s3_copies(s3, late_bucket) == {}
    assert s3.list_multipart_uploads(Bucket=late_bucket).get("Uploads", []) == []


@pytest.fixture
def locked_bucket(moto_server: MotoServer, moto_env: dict[str, str], s3: Any) -> Iterator[str]:
    from tests.integration.test_s3_object_lock import remove_locked_bucket

    name = f"palhm-lock-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    remove_locked_bucket(s3, name)


def test_object_lock_on_one_destination_dates_only_its_manifest_and_objects(
    tmp_path: Path, moto_server: MotoServer, locked_bucket: str, s3: Any
) -> None:
    doc = config_doc(tmp_path, locked_bucket, moto_server.endpoint_url)
    params = doc["tasks"][0]["destinations"][1]["backend-param"]
    params["object-lock"] = {"mode": "GOVERNANCE", "period": "1d"}
    config = write_config(tmp_path / "palhm.json", doc)
    result = palhm(config, moto_server, "run", "t")
    assert result.returncode == 0, result.stderr
    local, remote = local_copies(tmp_path / "local"), s3_copies(s3, locked_bucket)
    (prefix,) = local
    assert {k: v for k, v in local[prefix].items() if k != MANIFEST_NAME} == {
        k: v for k, v in remote[prefix].items() if k != MANIFEST_NAME
    }
    local_manifest = json.loads(local[prefix][MANIFEST_NAME])
    remote_manifest = json.loads(remote[prefix][MANIFEST_NAME])
    assert "retain-until" not in local_manifest
    until = remote_manifest.pop("retain-until")
    assert remote_manifest == local_manifest  # the same manifest but for the lock date
    head = s3.head_object(Bucket=locked_bucket, Key=f"{ROOT}/{prefix}/big.bin")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].isoformat().startswith(until[:16])
