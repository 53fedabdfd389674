"""The copy manifest format (doc/design.md#copy-protocol)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from palhm import __version__
from palhm.manifest import (
    FORMAT_VERSION,
    Manifest,
    ObjectRecord,
    StageRecord,
    building_manifest,
    encode_manifest,
    manifest_state,
    parse_manifest,
)

START = datetime(2022, 5, 1, 6, 59, 17, 250000, tzinfo=UTC)
PREFIX = "2022-05-01T06:59:17+00:00"


def sample() -> Manifest:
    objects = (
        ObjectRecord(
            "etc.tar.zst", 1234, "blake3", "ab" * 32, START, START + timedelta(seconds=3),
            (StageRecord(("tar", "-cf", "-", "/etc"), 1), StageRecord(("zstd",), 0)),
        ),
        ObjectRecord(
            "sub/list.txt", 0, "none", None, START, START + timedelta(seconds=1),
            (StageRecord(("dpkg-query", "-l"), 0),),
        ),
    )  # fmt: skip
    return Manifest("backup", PREFIX, START, START + timedelta(seconds=4), objects, host="db1")


def test_manifest_round_trips() -> None:
    assert parse_manifest(encode_manifest(sample())) == sample()


def test_manifest_json_names_every_field_in_kebab_case() -> None:
    document = json.loads(encode_manifest(sample()))
    assert document["format"] == "palhm-manifest"
    assert document["format-version"] == FORMAT_VERSION
    assert document["palhm-version"] == __version__
    assert (document["task"], document["prefix"], document["state"]) == (
        "backup",
        PREFIX,
        "complete",
    )
    assert document["start"] == "2022-05-01T06:59:17.250000+00:00"
    assert document["size"] == 1234
    first, second = document["objects"]
    assert first["checksum"] == {"algorithm": "blake3", "hex": "ab" * 32}
    assert first["stages"][0] == {"argv": ["tar", "-cf", "-", "/etc"], "status": 1}
    assert second["checksum"] is None


def test_times_are_written_in_utc_whatever_zone_they_come_in() -> None:
    local = START.astimezone(timezone(timedelta(hours=-5)))
    document = json.loads(encode_manifest(Manifest("t", PREFIX, local, local)))
    assert document["start"].endswith("+00:00")
    assert parse_manifest(encode_manifest(Manifest("t", PREFIX, local, local))).start == START


def test_building_manifest_is_marked_and_has_no_end() -> None:
    data = encode_manifest(building_manifest("backup", PREFIX, START))
    assert manifest_state(data) == "building"
    parsed = parse_manifest(data)
    assert (parsed.end, parsed.objects, parsed.size) == (None, (), 0)


def test_killed_stage_keeps_its_signal_name() -> None:
    record = ObjectRecord(
        "x", 1, "none", None, START, START, (StageRecord(("yes",), None, "SIGPIPE"),)
    )
    parsed = parse_manifest(encode_manifest(Manifest("t", PREFIX, START, START, (record,))))
    assert parsed.objects[0].stages[0] == StageRecord(("yes",), None, "SIGPIPE")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not a palhm manifest"),
        (b"[]", "not a palhm manifest"),
        (b'{"format": "palhm-manifest", "format-version": 99}', "version 99"),
        (b'{"format": "palhm-manifest", "format-version": 1, "state": "done"}', "malformed"),
    ],
)
def test_bad_manifests_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_manifest(data)
    assert manifest_state(data) is None


def test_negative_size_is_refused() -> None:
    document = json.loads(encode_manifest(sample()))
    document["objects"][0]["size"] = -1
    with pytest.raises(ValueError, match="size -1"):
        parse_manifest(json.dumps(document).encode())
