"""S3 Object Lock (`object-lock`) and delegated deletion (`delete: delegated`) on a real
moto server: retention on every object and manifest, rotation that never tries a
locked copy, a key without delete rights, and `palhm rotate` removing expired copies.

moto applies the lock headers of a single PutObject but not those of a multipart
upload: palhm then sets the retention with PutObjectRetention, which these tests see
through HeadObject (moto answers GetObjectRetention with a 500). moto also accepts
a retain-until date in the past (AWS refuses one), which lets a test make copies
whose lock has already expired.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import MANIFEST_NAME
from palhm.backends.s3.backend import S3Backend
from palhm.durations import Duration
from palhm.manifest import Manifest, encode_manifest
from palhm.model import ObjectLock
from tests.helpers import REPO, run_palhm, write_config
from tests.services.moto import MotoServer, empty_bucket, need_moto, start_moto_server

pytestmark = pytest.mark.services

MiB = 1 << 20
ROOT = "backup/host1"


@pytest.fixture
def s3(moto_server: MotoServer) -> Any:
    return moto_server.client("s3")


@pytest.fixture
def locked_bucket(moto_server: MotoServer, moto_env: dict[str, str], s3: Any) -> Iterator[str]:
    """A fresh bucket created with Object Lock enabled (so versioned)."""
    name = f"palhm-lock-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    remove_locked_bucket(s3, name)


def remove_locked_bucket(s3: Any, bucket: str) -> None:
    """Delete every version (bypassing GOVERNANCE locks), then the bucket."""
    s3.delete_bucket_policy(Bucket=bucket)
    empty_bucket(s3, bucket)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]:
            s3.delete_object(
                Bucket=bucket,
                Key=entry["Key"],
                VersionId=entry["VersionId"],
                BypassGovernanceRetention=True,
            )
    s3.delete_bucket(Bucket=bucket)


def config(bucket: str, endpoint: str, objects: list[dict[str, Any]], **params: Any) -> dict:
    return {
        "modules": ["aws"],
        "tasks": [
            {
                "id": "backup",
                "type": "backup",
                "backend": "aws-s3",
                "backend-param": {
                    "bucket": bucket,
                    "root": ROOT,
                    "endpoint-url": endpoint,
                    "region": "us-east-1",
                    "part-size": 5 * MiB,
                    "prefix": {"type": "iso8601", "timespec": "microseconds"},
                    **params,
                },
                "objects": objects,
            }
        ],
    }


def cat(path: str, source: Path) -> dict[str, Any]:
    return {"path": path, "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}]}


def palhm(server: MotoServer, cfg: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = run_palhm(["-f", str(cfg), *args], env=env or server.env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def keys(s3: Any, bucket: str) -> dict[str, list[str]]:
    """prefix -> sorted paths of the current (not deleted) keys under ROOT."""
    found: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ROOT):
        for entry in page.get("Contents", ()):
            prefix, _, path = entry["Key"][len(ROOT) + 1 :].partition("/")
            found.setdefault(prefix, []).append(path)
    return {prefix: sorted(paths) for prefix, paths in found.items()}


def make_copy(backend: S3Backend, prefix: str, data: bytes = b"old data\n") -> None:
    """A complete copy made by palhm's backend under PREFIX (any date)."""
    start = datetime.fromisoformat(prefix)
    writer = backend.begin_copy(
        prefix, building_manifest=encode_manifest(Manifest("backup", prefix, start, None))
    )
    sink = writer.open_object("data", alloc_size=None)
    sink.write(memoryview(data))
    sink.close()
    manifest = Manifest("backup", prefix, start, start, retain_until=backend.retain_until(prefix))
    writer.commit(encode_manifest(manifest))


def backend_on(moto_server: MotoServer, bucket: str, **params: Any) -> S3Backend:
    base = {"bucket": bucket, "root": ROOT, "endpoint_url": moto_server.endpoint_url}
    return S3Backend({**base, "region": "us-east-1", **params}, task_id="backup")


def one_day_lock() -> ObjectLock:
    return ObjectLock("GOVERNANCE", (Duration(days=1),), "period 1d")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(os.urandom(1000))
    big.write_bytes(os.urandom(11 * MiB))  # three parts of 5 MiB: a multipart upload
    return {"small.bin": small, "big.bin": big}


def test_every_object_and_the_manifest_are_locked_until_the_date_the_rules_give(
    tmp_path: Path, moto_server: MotoServer, locked_bucket: str, s3: Any, files: dict[str, Path]
) -> None:
    objects = [cat(name, path) for name, path in files.items()]
    doc = config(
        locked_bucket, moto_server.endpoint_url, objects,
        **{"object-lock": {"mode": "GOVERNANCE"}, "keep-daily": 7, "keep-within": "2d",
           "rot-storage-class": "STANDARD_IA"},
    )  # fmt: skip
    result = palhm(moto_server, write_config(tmp_path / "c.json", doc), "run", "backup")
    assert result.returncode == 0, result.stderr
    [(prefix, paths)] = keys(s3, locked_bucket).items()
    assert paths == sorted([MANIFEST_NAME, "big.bin", "small.bin"])
    start = datetime.fromisoformat(prefix)
    expected = (start + timedelta(days=7)).replace(microsecond=0) + timedelta(seconds=1)
    for path in paths:
        head = s3.head_object(Bucket=locked_bucket, Key=f"{ROOT}/{prefix}/{path}")
        assert head.get("ObjectLockMode") == "GOVERNANCE", path
        assert head.get("ObjectLockRetainUntilDate") == expected, path
        moved = path != MANIFEST_NAME  # moved after the commit: the new version locked too
        assert head.get("StorageClass", "STANDARD") == ("STANDARD_IA" if moved else "STANDARD")
    body = s3.get_object(Bucket=locked_bucket, Key=f"{ROOT}/{prefix}/{MANIFEST_NAME}")["Body"]
    manifest = json.loads(body.read())
    assert datetime.fromisoformat(manifest["retain-until"]) == expected


def test_a_bucket_without_object_lock_is_refused_before_anything_is_written(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, s3: Any, files: dict[str, Path]
) -> None:
    doc = config(
        s3_bucket, moto_server.endpoint_url, [cat("small.bin", files["small.bin"])],
        **{"object-lock": {"mode": "COMPLIANCE", "period": "1d"}},
    )  # fmt: skip
    result = palhm(moto_server, write_config(tmp_path / "c.json", doc), "run", "backup")
    assert result.returncode == 1
    assert (
        f"task 'backup': backend-param object-lock is set but bucket {s3_bucket} has no"
        " Object Lock: the bucket was created without Object Lock; nothing was written"
    ) in result.stderr
    assert keys(s3, s3_bucket) == {}


def test_a_locked_copy_is_kept_by_rotation_and_the_run_succeeds(
    tmp_path: Path, moto_server: MotoServer, locked_bucket: str, s3: Any, files: dict[str, Path]
) -> None:
    doc = config(
        locked_bucket, moto_server.endpoint_url, [cat("small.bin", files["small.bin"])],
        **{"object-lock": {"mode": "GOVERNANCE", "period": "1d"}, "nb-copy-limit": 1},
    )  # fmt: skip
    cfg = write_config(tmp_path / "c.json", doc)
    assert palhm(moto_server, cfg, "run", "backup").returncode == 0
    second = palhm(moto_server, cfg, "-v", "run", "backup")
    assert second.returncode == 0, second.stderr
    first, newest = sorted(keys(s3, locked_bucket))
    assert "removing copy" not in second.stderr
    assert f"keeping copy s3://{locked_bucket}/{ROOT}/{first}/: locked until " in second.stderr
    assert "nb-copy-limit 1: 2 locked copies: the copies locked in" in second.stderr
    listing = palhm(moto_server, cfg, "list", "backup")
    assert f"{first}  complete,locked" in listing.stdout
    assert f": {first} (rotation keeps it)" in listing.stdout
    as_json = json.loads(palhm(moto_server, cfg, "list", "backup", "--json").stdout)
    assert all(entry["retain-until"] for entry in as_json)
    plan = palhm(moto_server, cfg, "run", "-n", "backup")
    assert plan.stdout.count("locked until") == 2, plan.stdout


def test_rotate_removes_expired_copies_and_keeps_locked_ones(
    tmp_path: Path, moto_server: MotoServer, locked_bucket: str, s3: Any
) -> None:
    backend = backend_on(moto_server, locked_bucket, object_lock=one_day_lock())
    now = datetime.now(UTC)
    expired = [(now - timedelta(days=10 - n)).isoformat() for n in range(2)]
    locked = (now - timedelta(hours=2)).isoformat()
    for prefix in [*expired, locked]:
        make_copy(backend, prefix)
    doc = config(
        locked_bucket, moto_server.endpoint_url, [],
        **{"object-lock": {"mode": "GOVERNANCE", "period": "1d"}, "keep-last": 1},
    )  # fmt: skip
    doc["tasks"][0]["objects"] = [cat("x", tmp_path)]
    cfg = write_config(tmp_path / "c.json", doc)
    plan = palhm(moto_server, cfg, "rotate", "-n", "backup")
    assert plan.returncode == 0, plan.stderr
    assert f"would remove  {expired[0]}  kept by no keep-* rule" in plan.stdout
    assert f"would keep    {locked}  current copy, keep-last, locked until " in plan.stdout
    assert sorted(keys(s3, locked_bucket)) == sorted([*expired, locked])  # nothing removed
    done = palhm(moto_server, cfg, "rotate", "backup")
    assert done.returncode == 0, done.stderr
    assert "2 of 3 counted copies removed" in done.stdout
    assert sorted(keys(s3, locked_bucket)) == [locked]


def deny_delete_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:DeleteObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )


@pytest.mark.parametrize("mode", ["delegated", "normal"])
def test_access_denied_on_delete_is_delegated_or_a_clear_rotation_error(
    tmp_path: Path, moto_server: MotoServer, locked_bucket: str, s3: Any, mode: str
) -> None:
    old = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    make_copy(backend_on(moto_server, locked_bucket, object_lock=one_day_lock()), old)
    s3.put_bucket_policy(Bucket=locked_bucket, Policy=deny_delete_policy(locked_bucket))
    data = tmp_path / "data"
    data.write_bytes(b"new\n")
    doc = config(
        locked_bucket, moto_server.endpoint_url, [cat("data", data)],
        **{"object-lock": {"mode": "GOVERNANCE", "period": "1d"}, "keep-last": 1,
           "delete": mode},
    )  # fmt: skip
    cfg = write_config(tmp_path / "c.json", doc)
    result = palhm(moto_server, cfg, "run", "backup")
    copies = keys(s3, locked_bucket)
    assert len(copies) == 2 and copies[old] == [MANIFEST_NAME, "data"]  # nothing deleted
    listing = palhm(moto_server, cfg, "list", "backup")
    assert f"{old}  complete" in listing.stdout  # the manifest was put back: still complete
    if mode == "delegated":
        assert result.returncode == 0, result.stderr
        assert (
            f"copy s3://{locked_bucket}/{ROOT}/{old}/: deletion left to the rotation host"
            " (delete: delegated)"
        ) in result.stderr
    else:
        assert result.returncode == 1
        assert "task 'backup': rotation failed: " in result.stderr
        assert "AccessDenied" in result.stderr
        assert "set backend-param delete to delegated" in result.stderr
        newest = max(copies)
        assert "is safe" in result.stderr and newest in result.stderr
        assert f"{newest}  complete" in listing.stdout


# --------------------------------------------------------------------------- IAM


def documented_policies(bucket: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Policies A (backup host) and B (rotation host) of doc/aws.md, for `bucket`."""
    text = (REPO / "doc" / "aws.md").read_text()
    section = text.split("\n## Separation of rights\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "doc/aws.md: Separation of rights holds policies A and B"
    a, b = (
        json.loads(block.replace("example-backups", bucket).replace("palhm/db1", ROOT))
        for block in blocks
    )
    return a, b


def iam_user(iam: Any, name: str, policy: dict[str, Any]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_documented_policies_a_write_only_backup_host_and_a_rotation_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto enforcing IAM: with policy A a backup with `delete: delegated` succeeds and
    leaves the expired copy; with policy B `palhm rotate` removes it."""
    need_moto()
    import boto3

    everything = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}  # fmt: skip
    # moto authorises nothing after its first 3 requests: those make the admin user
    with start_moto_server(tmp_path, extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as server:
        session = boto3.session.Session(region_name="us-east-1")
        iam = session.client("iam", endpoint_url=server.endpoint_url,
                             aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        admin_id, admin_secret = iam_user(iam, "admin", everything)
        credentials = {"aws_access_key_id": admin_id, "aws_secret_access_key": admin_secret}
        iam = session.client("iam", endpoint_url=server.endpoint_url, **credentials)
        s3 = session.client("s3", endpoint_url=server.endpoint_url, **credentials)
        bucket = f"palhm-lock-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        policy_a, policy_b = documented_policies(bucket)
        hosts = {}
        for name, policy in (("backup-host", policy_a), ("rotation-host", policy_b)):
            key_id, secret = iam_user(iam, name, policy)
            hosts[name] = {**server.env, "AWS_ACCESS_KEY_ID": key_id,
                           "AWS_SECRET_ACCESS_KEY": secret}  # fmt: skip
        for name, value in {**server.env, "AWS_ACCESS_KEY_ID": admin_id,
                            "AWS_SECRET_ACCESS_KEY": admin_secret}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        old = (datetime.now(UTC) - timedelta(days=5)).isoformat()
        make_copy(backend_on(server, bucket, object_lock=one_day_lock()), old)

        data = tmp_path / "data"
        data.write_bytes(b"new\n")
        doc = config(
            bucket, server.endpoint_url, [cat("data", data)],
            **{"object-lock": {"mode": "GOVERNANCE", "period": "1d"}, "keep-last": 1,
               "delete": "delegated"},
        )  # fmt: skip
        cfg = write_config(tmp_path / "c.json", doc)
        backup = palhm(server, cfg, "run", "backup", env=hosts["backup-host"])
        assert backup.returncode == 0, backup.stderr
        assert "deletion left to the rotation host" in backup.stderr
        assert "AccessDenied" not in backup.stderr  # every other request was allowed
        assert len(keys(s3, bucket)) == 2

        rotation = palhm(server, cfg, "rotate", "backup", env=hosts["rotation-host"])
        assert rotation.returncode == 0, rotation.stderr
        assert old not in keys(s3, bucket) and len(keys(s3, bucket)) == 1


def test_a_failed_run_on_a_write_only_host_leaves_its_copy_to_palhm_rotate(
    tmp_path: Path, moto_server: MotoServer, locked_bucket: str, s3: Any
) -> None:
    s3.put_bucket_policy(Bucket=locked_bucket, Policy=deny_delete_policy(locked_bucket))
    data = tmp_path / "data"
    data.write_bytes(b"data\n")
    fails = {"path": "fails", "pipeline": [{"type": "exec-inline", "argv": ["false"]}]}
    doc = config(
        locked_bucket, moto_server.endpoint_url, [cat("data", data), fails],
        **{"object-lock": {"mode": "GOVERNANCE", "period": "1d"}, "delete": "delegated"},
    )  # fmt: skip
    doc["tasks"][0]["object-groups"] = [{"id": "first"}, {"id": "then", "depends": ["first"]}]
    doc["tasks"][0]["objects"][0]["group"] = "first"
    doc["tasks"][0]["objects"][1]["group"] = "then"  # fails once "data" is stored
    cfg = write_config(tmp_path / "c.json", doc)
    failed = palhm(moto_server, cfg, "run", "backup")
    assert failed.returncode == 1
    assert "object 'fails'" in failed.stderr
    assert "(left to the rotation host: delete: delegated)" in failed.stderr
    [prefix] = keys(s3, locked_bucket)
    plan = palhm(moto_server, cfg, "rotate", "-n", "backup")
    assert f"would remove incomplete copy s3://{locked_bucket}/{ROOT}/{prefix}/" in plan.stdout
    s3.delete_bucket_policy(Bucket=locked_bucket)  # now run as the rotation host
    done = palhm(moto_server, cfg, "rotate", "backup")
    assert done.returncode == 0, done.stderr
    assert "0 of 0 counted copies removed, 1 incomplete" in done.stdout
    assert keys(s3, locked_bucket) == {}


def test_a_move_whose_new_version_cannot_be_locked_says_so_and_stops(
    moto_server: MotoServer, locked_bucket: str, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """rot-storage-class on a locked copy: the move writes a new version, which palhm
    locks with PutObjectRetention. When that is refused (injected here: moto grants
    it with s3:PutObject, so no policy can deny it alone), the warning says the object
    moved unlocked and moving stops; after_commit never fails the run."""
    from botocore.exceptions import ClientError

    prefix = datetime.now(UTC).isoformat()
    backend = backend_on(
        moto_server, locked_bucket, object_lock=one_day_lock(), rot_storage_class="STANDARD_IA"
    )
    start = datetime.fromisoformat(prefix)
    writer = backend.begin_copy(
        prefix, building_manifest=encode_manifest(Manifest("backup", prefix, start, None))
    )
    for name in ("a", "b"):
        sink = writer.open_object(name, alloc_size=None)
        sink.write(memoryview(b"data\n"))
        sink.close()
    writer.commit(encode_manifest(Manifest("backup", prefix, start, start)))

    def refuse(**kwargs: Any) -> None:
        error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
        raise ClientError(error, "PutObjectRetention")

    backend.client.put_object_retention = refuse
    with caplog.at_level("WARNING"):
        backend.after_commit(prefix)
    text = caplog.text
    assert "AccessDenied" in text and "locking after the move" in text
    assert f"{ROOT}/{prefix}/a was moved to STANDARD_IA but its new version is not locked" in text
    assert "moving stopped after 1 of 2 object(s)" in text
    assert "stays in its storage class" not in text
    classes = [
        s3.head_object(Bucket=locked_bucket, Key=f"{ROOT}/{prefix}/{name}").get(
            "StorageClass", "STANDARD"
        )
        for name in ("a", "b")
    ]
    assert classes == ["STANDARD_IA", "STANDARD"]  # the first moved, then it stopped
