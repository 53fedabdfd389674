"""Copy names (PREFIX) from a run's start time, and back (doc/design.md#copy-names-prefixes,
#what-counts-as-a-copy, #copy-protocol).

Forms made by `make_prefix`:
- default: `2022-05-01T06:59:17+00:00`, as `date --utc --iso-8601=seconds` prints it;
- iso8601: the same with another `timespec` (hours ... microseconds) and `tz`
  utc or local (`2022-05-01T08:59+02:00`);
- basic: colon-free `20220501T065917Z` (SMB/Windows shares; tar reads `host:path`
  in a name with a colon), with the same timespec and tz choices.

`parse_prefix` is strict on purpose: a name is a palhm copy only when it is one of
these forms *with* a UTC offset, so `2023`, `20230101`, `lost+found` or a user's
`2023-01-01` directory are never taken for copies and never deleted by rotation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, TypeVar

from palhm.model import PrefixSpec

TIMESPECS: Final = ("hours", "minutes", "seconds", "milliseconds", "microseconds")

_FRACTION: Final = r"(?:\.\d{3}|\.\d{6})"
_EXTENDED: Final = re.compile(
    rf"\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}(?::\d{{2}}(?::\d{{2}}{_FRACTION}?)?)?(?:Z|[+-]\d{{2}}:\d{{2}})"
)
_BASIC: Final = re.compile(rf"\d{{8}}T\d{{2}}(?:\d{{2}}(?:\d{{2}}{_FRACTION}?)?)?(?:Z|[+-]\d{{4}})")


def make_prefix(spec: PrefixSpec, start: datetime) -> str:
    """The PREFIX of a copy whose run started at `start` (an aware datetime).

    Raises ValueError for a timespec outside TIMESPECS (config validation rejects
    those first).
    """
    if spec.timespec not in TIMESPECS:
        raise ValueError(f"unknown prefix timespec '{spec.timespec}' (expected one of {TIMESPECS})")
    moment = start.astimezone(UTC) if spec.tz == "utc" else start.astimezone()
    text = moment.isoformat(timespec=spec.timespec)
    if spec.kind == "basic":
        return _to_basic(text)
    return text


def _to_basic(extended: str) -> str:
    """`2022-05-01T06:59:17+00:00` -> `20220501T065917Z` (sign of the offset kept)."""
    date, time = extended[:10], extended[10:]
    basic = date.replace("-", "") + time.replace(":", "")
    if basic.endswith("+0000"):
        basic = basic[: -len("+0000")] + "Z"
    return basic


def parse_prefix(name: str) -> datetime | None:
    """The time a copy name stands for (aware), or None when `name` is not a prefix."""
    if not (_EXTENDED.fullmatch(name) or _BASIC.fullmatch(name)):
        return None
    try:
        return datetime.fromisoformat(name)
    except ValueError:  # well-formed but impossible, such as month 13
        return None


def is_prefix(name: str) -> bool:
    return parse_prefix(name) is not None


# The one form the original PALHM named its copies with (`date --utc
# --iso-8601=seconds`). A directory without a manifest is taken for one of its
# (legacy) copies only under exactly this name: `2023-01-01T00:00:00Z` or
# `20230101T00Z` without a manifest is a user's directory, never a copy.
_ORIGINAL: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00")


def is_original_name(name: str) -> bool:
    """Whether `name` is a copy name the original PALHM could have written."""
    return bool(_ORIGINAL.fullmatch(name)) and is_prefix(name)


T = TypeVar("T")


def sort_by_prefix(items: Iterable[T], prefix_of: Callable[[T], str]) -> list[T]:
    """`items` oldest first by the time their prefix stands for; names that do not
    parse are dropped (they are not copies). Ties (the same instant written in two
    forms) are broken by name so the order is stable."""
    dated: list[tuple[datetime, str, T]] = []
    for item in items:
        name = prefix_of(item)
        when = parse_prefix(name)
        if when is not None:
            dated.append((when, name, item))
    dated.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in dated]
