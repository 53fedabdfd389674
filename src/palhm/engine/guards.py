"""Sanity guards that protect good copies: `min-size` per object, `max-shrink` per task.

    reasons = suspect_reasons(task, records, previous)

A copy whose objects look wrong (a 20-byte dump from a command that printed an error
and exited 0, a database dump half the size of yesterday's) is still committed -- it
may be all there is -- but its manifest lists these reasons, the run fails, and
rotation removes nothing because of it (backup.py). Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Final

from palhm.errors import PalhmError
from palhm.manifest import Manifest, ObjectRecord
from palhm.model import BackupTask

_PERCENT: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_percent(raw: object) -> float:
    """`"50%"` or 50 -> 50.0. Raises ValueError saying what was expected."""
    if isinstance(raw, bool):
        raise ValueError(f'expected a percentage like "50%" or 50, found {raw!r}')
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and (match := _PERCENT.match(raw)):
        value = float(match.group(1))
    else:
        raise ValueError(f'expected a percentage like "50%" or 50, found {raw!r}')
    if not math.isfinite(value) or not 0 < value < 100:
        raise ValueError(f"expected a percentage above 0 and below 100, found {raw!r}")
    return value


def previous_sizes(manifest: Manifest | None) -> Mapping[str, int]:
    """path -> size in the baseline copy (empty when there is none)."""
    if manifest is None:
        return {}
    return {record.path: record.size for record in manifest.objects}


def suspect_reasons(
    task: BackupTask,
    records: Sequence[ObjectRecord],
    previous: Mapping[str, int],
    *,
    previous_prefix: str | None = None,
) -> tuple[str, ...]:
    """Why the copy made of `records` looks wrong, one line per object; () if it looks fine."""
    minimum = {obj.path: obj.min_size for obj in task.objects if obj.min_size is not None}
    reasons: list[str] = []
    for record in records:
        floor = minimum.get(record.path)
        if floor is not None and record.size < floor:
            reasons.append(
                f"object '{record.path}' is {record.size} bytes, below its min-size {floor}"
            )
            continue
        before = previous.get(record.path)
        if task.max_shrink is None or not before:
            continue
        if record.size < before * (1 - task.max_shrink / 100):
            shrink = 100 * (before - record.size) / before
            where = f" in copy {previous_prefix}" if previous_prefix else ""
            reasons.append(
                f"object '{record.path}' is {record.size} bytes, {shrink:.0f}% smaller than"
                f" {before} bytes{where} (max-shrink {task.max_shrink:g}%)"
            )
    return tuple(reasons)


class SuspectCopyError(PalhmError):
    """The copy was committed but looks wrong: kept, marked, rotation skipped.

    `result` is the backup engine's BackupResult (hooks and `run --json` report it)."""

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result
