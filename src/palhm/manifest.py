"""The copy manifest `.palhm-manifest.json` (doc/design.md#copy-protocol).

A copy is complete only when its final manifest has been written, last. The same
document with `"state": "building"` and no objects marks a copy in progress on
backends that cannot rename (aws-s3 writes it first).

Format (JSON, kebab-case keys, times in UTC ISO 8601 with microseconds)::

    {"format": "palhm-manifest", "format-version": 1, "state": "complete",
     "palhm-version": "1.0.0", "task": "backup", "prefix": "2022-05-01T06:59:17+00:00",
     "host": "db1", "start": "...", "end": "...", "size": 1234,
     "retain-until": "...",   (only on an Object Lock copy: no deletion before then)
     "objects": [{"path": "etc.tar.zst", "size": 1234,
                  "checksum": {"algorithm": "blake3", "hex": "af13..."},   (null: none)
                  "start": "...", "end": "...",
                  "stages": [{"argv": ["tar", "-c", "/etc"], "status": 0}, ...]}]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from palhm import __version__
from palhm.records import record

FORMAT: Final = "palhm-manifest"
FORMAT_VERSION: Final = 1

ManifestState = Literal["building", "complete"]


@record
class StageRecord:
    """One process of an object's pipeline and how it ended: its exit status, or None
    and the signal's name when a signal ended it."""

    argv: tuple[str, ...]
    status: int | None
    signal: str | None = None


@record
class ObjectRecord:
    """One stored object: where, how big, its checksum, when and how it was made."""

    path: str
    size: int
    checksum_algorithm: str  # "none" when only the size is recorded
    checksum: str | None  # lower-case hex
    start: datetime
    end: datetime
    stages: tuple[StageRecord, ...]
    attempts: int = 1  # 1 + the retries it took (backup-object `retries`)


@record
class Manifest:
    task: str
    prefix: str
    start: datetime
    end: datetime | None
    objects: tuple[ObjectRecord, ...] = ()
    state: ManifestState = "complete"
    host: str = ""
    palhm_version: str = __version__
    suspect: tuple[str, ...] = ()  # why the copy looks wrong (guards.py); () = fine
    retain_until: datetime | None = None  # S3 Object Lock: no deletion before (aws-s3)

    @property
    def size(self) -> int:
        return sum(obj.size for obj in self.objects)


def building_manifest(task: str, prefix: str, start: datetime) -> Manifest:
    """The in-progress marker written first by backends that cannot rename."""
    return Manifest(task, prefix, start, None, state="building", host=os.uname().nodename)


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest as UTF-8 JSON bytes (indented: people read these)."""
    document = {
        "format": FORMAT,
        "format-version": FORMAT_VERSION,
        "state": manifest.state,
        "palhm-version": manifest.palhm_version,
        "task": manifest.task,
        "prefix": manifest.prefix,
        "host": manifest.host,
        "start": _time(manifest.start),
        "end": _time(manifest.end) if manifest.end else None,
        "size": manifest.size,
        "objects": [_encode_object(obj) for obj in manifest.objects],
    }
    if manifest.suspect:
        document["suspect"] = list(manifest.suspect)
    if manifest.retain_until is not None:
        document["retain-until"] = _time(manifest.retain_until)
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()


def _encode_object(obj: ObjectRecord) -> dict[str, Any]:
    checksum = None
    if obj.checksum is not None:
        checksum = {"algorithm": obj.checksum_algorithm, "hex": obj.checksum}
    return {
        "path": obj.path,
        "size": obj.size,
        "checksum": checksum,
        "start": _time(obj.start),
        "end": _time(obj.end),
        "stages": [_encode_stage(s) for s in obj.stages],
        "attempts": obj.attempts,
    }


def _encode_stage(stage: StageRecord) -> dict[str, Any]:
    encoded: dict[str, Any] = {"argv": list(stage.argv), "status": stage.status}
    if stage.signal is not None:
        encoded["signal"] = stage.signal
    return encoded


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_manifest(data: bytes) -> Manifest:
    """Decode manifest bytes. Raises ValueError saying what is wrong."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a palhm manifest: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError('not a palhm manifest (no "format": "palhm-manifest")')
    version = document.get("format-version")
    if version != FORMAT_VERSION:
        raise ValueError(f"manifest format version {version!r} is not supported")
    try:
        return _decode(document)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed palhm manifest: {error!r}") from None


def _decode(document: Mapping[str, Any]) -> Manifest:
    state = document["state"]
    if state not in ("building", "complete"):
        raise ValueError(f"unknown state {state!r}")
    end = document.get("end")
    retain_until = document.get("retain-until")  # absent in older manifests
    return Manifest(
        task=str(document["task"]),
        prefix=str(document["prefix"]),
        start=_parse_time(document["start"]),
        end=_parse_time(end) if end is not None else None,
        objects=tuple(_decode_object(o) for o in document.get("objects", ())),
        state=state,
        host=str(document.get("host", "")),
        palhm_version=str(document.get("palhm-version", "")),
        suspect=tuple(str(reason) for reason in document.get("suspect", ())),
        retain_until=_parse_time(retain_until) if retain_until is not None else None,
    )


def _decode_object(raw: Mapping[str, Any]) -> ObjectRecord:
    checksum = raw.get("checksum")
    return ObjectRecord(
        path=str(raw["path"]),
        size=_non_negative(raw["size"]),
        checksum_algorithm=str(checksum["algorithm"]) if checksum else "none",
        checksum=str(checksum["hex"]) if checksum else None,
        start=_parse_time(raw["start"]),
        end=_parse_time(raw["end"]),
        stages=tuple(_decode_stage(s) for s in raw.get("stages", ())),
        attempts=int(raw.get("attempts", 1)),
    )


def _decode_stage(raw: Mapping[str, Any]) -> StageRecord:
    argv: Sequence[Any] = raw["argv"]
    status = raw["status"]
    signal = raw.get("signal")
    return StageRecord(
        tuple(str(a) for a in argv),
        int(status) if status is not None else None,
        str(signal) if signal is not None else None,
    )


def _parse_time(text: object) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return moment


def _non_negative(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"size {value!r} is not a non-negative integer")
    return value


def manifest_state(data: bytes) -> ManifestState | None:
    """The state of manifest bytes, or None when they are not a readable manifest."""
    try:
        return parse_manifest(data).state
    except ValueError:
        return None
