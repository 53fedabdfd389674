"""The aws-s3 side of the reliability harness: configs, a seeded root cloned per test,
inspection of what a root holds (by listing the bucket, not through palhm), and a
moto server that can be killed and restarted on the same port."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from palhm.prefix import parse_prefix
from tests.helpers import write_config
from tests.reliability.harness import (
    FINE_PREFIX,
    MANIFEST,
    backup_task,
    sort_prefixes,
    stage,
)
from tests.services.moto import PART_MIN_SIZE, MotoServer, start_moto_server

MiB: Final = 1 << 20
PART_SIZE: Final = 5 * MiB  # S3's minimum, the smallest palhm accepts
S3_SIZES: Final = {"big": 6 * MiB, "small": 100 * 1024}  # big: a 2-part multipart upload
S3_LIMIT: Final = 3
S3_LEGACY: Final = "2020-01-01T00:00:00+00:00"
S3_BUILDING: Final = "2021-01-01T00:00:00+00:00"
S3_FOREIGN: Final = ("notes.txt", "not-a-copy/file")


def s3_param(bucket: str, root: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "root": root,
        "endpoint-url": endpoint,
        "prefix": dict(FINE_PREFIX),
        "nb-copy-limit": S3_LIMIT,
        "part-size": PART_SIZE,
        **extra,
    }


def s3_objects(marker: str, *, big_pipeline: list[dict[str, Any]] | None = None) -> list[Any]:
    def source(size: int) -> list[dict[str, Any]]:
        head = stage("head", "-c", str(size), "/dev/urandom", marker=marker)
        return [head, stage("cat", marker=marker)]

    return [
        {"path": "big", "pipeline": big_pipeline or source(S3_SIZES["big"])},
        {"path": "small", "pipeline": source(S3_SIZES["small"])},
    ]


def s3_config(path: Path, param: Mapping[str, Any], objects: list[Any]) -> Path:
    task = backup_task("aws-s3", param, objects)
    return write_config(path, {"modules": ["aws"], "nb-workers": 2, "tasks": [task]})


# --------------------------------------------------------------------------- state


@dataclass
class S3State:
    """What s3://BUCKET/ROOT/ holds, by listing it."""

    complete: dict[str, dict[str, Any]] = field(default_factory=dict)  # prefix -> manifest
    legacy: list[str] = field(default_factory=list)
    incomplete: dict[str, str] = field(default_factory=dict)  # prefix -> building/removing
    foreign: dict[str, str] = field(default_factory=dict)  # key below root -> ETag
    uploads: list[str] = field(default_factory=list)  # keys of unfinished multipart uploads

    @property
    def counted(self) -> list[str]:
        return sort_prefixes([*self.complete, *self.legacy])


def list_keys(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [entry for page in pages for entry in page.get("Contents", ())]


def inspect_s3(s3: Any, bucket: str, root: str) -> S3State:
    state = S3State()
    copies: dict[str, set[str]] = {}
    for entry in list_keys(s3, bucket, f"{root}/"):
        relative = entry["Key"][len(root) + 1 :]
        name, _, rest = relative.partition("/")
        if rest and parse_prefix(name) is not None:
            copies.setdefault(name, set()).add(rest)
        else:
            state.foreign[relative] = entry["ETag"]
    for prefix, paths in copies.items():
        _classify(s3, bucket, f"{root}/{prefix}", prefix, paths, state)
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{root}/").get("Uploads", [])
    state.uploads = sorted(upload["Key"] for upload in uploads)
    return state


def _classify(
    s3: Any, bucket: str, base: str, prefix: str, paths: set[str], state: S3State
) -> None:
    if MANIFEST not in paths:
        state.legacy.append(prefix)
        return
    key = f"{base}/{MANIFEST}"
    marked = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("palhm-state")
    if marked != "complete":
        state.incomplete[prefix] = str(marked)
        return
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert document["state"] == "complete", (prefix, document["state"])
    state.complete[prefix] = document


def assert_s3_copies_whole(s3: Any, bucket: str, root: str, state: S3State) -> None:
    """Each complete copy holds exactly its manifest's objects, sizes and digests."""
    for prefix, manifest in state.complete.items():
        base = f"{root}/{prefix}/"
        present = {e["Key"][len(base) :] for e in list_keys(s3, bucket, base)} - {MANIFEST}
        assert present == {o["path"] for o in manifest["objects"]}, (prefix, present)
        for obj in manifest["objects"]:
            body = s3.get_object(Bucket=bucket, Key=base + obj["path"])["Body"].read()
            assert len(body) == obj["size"] == S3_SIZES.get(obj["path"], obj["size"])
            assert blake3.blake3(body).hexdigest() == obj["checksum"]["hex"], (prefix, obj)


# --------------------------------------------------------------------------- seeding


def seed_extras(s3: Any, bucket: str, root: str) -> None:
    """A legacy copy, a copy left "building" by a dead run of this host with an
    unfinished multipart upload, and keys that are not copies."""
    s3.put_object(Bucket=bucket, Key=f"{root}/{S3_LEGACY}/etc.tar", Body=b"legacy copy\n")
    building = f"{root}/{S3_BUILDING}"
    s3.put_object(
        Bucket=bucket,
        Key=f"{building}/{MANIFEST}",
        Body=b'{"state": "building"}',
        # this host's: a building copy of another host may still be in progress
        Metadata={"palhm-state": "building", "palhm-host": socket.gethostname()},
    )
    s3.put_object(Bucket=bucket, Key=f"{building}/partial", Body=b"partial")
    dangling_upload(s3, bucket, f"{building}/big")
    for key in S3_FOREIGN:
        s3.put_object(Bucket=bucket, Key=f"{root}/{key}", Body=b"not palhm's\n")


def dangling_upload(s3: Any, bucket: str, key: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 2048
    )


def clone_s3_root(s3: Any, bucket: str, seed: str, root: str) -> None:
    """Every key copied, metadata included; uploads made afresh. Read and written
    again rather than copied server-side: moto gives a server-side copy of a multipart
    object a CRC32 that does not match its data."""
    for entry in list_keys(s3, bucket, f"{seed}/"):
        source = s3.get_object(Bucket=bucket, Key=entry["Key"])
        s3.put_object(
            Bucket=bucket,
            Key=root + entry["Key"][len(seed) :],
            Body=source["Body"].read(),
            Metadata=source.get("Metadata", {}),
        )
    dangling_upload(s3, bucket, f"{root}/{S3_BUILDING}/big")


# --------------------------------------------------------------------------- a killable moto


@contextmanager
def moto_on_port(port: int, log_dir: Path) -> Iterator[MotoServer]:
    """A private moto server on `port` (so a restarted one has the same endpoint)."""
    with start_moto_server(log_dir, part_min_size=PART_MIN_SIZE, port=port) as server:
        yield server
