"""Copy names from start times and back (doc/design.md#copy-names-prefixes,
#what-counts-as-a-copy)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from palhm.model import PrefixSpec
from palhm.prefix import TIMESPECS, is_prefix, make_prefix, parse_prefix, sort_by_prefix

START = datetime(2022, 5, 1, 6, 59, 17, 123456, tzinfo=UTC)


@pytest.fixture
def kolkata() -> Iterator[None]:
    """Local time zone +05:30 for this test (a half-hour offset catches sloppy code)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_default_prefix_is_what_date_utc_iso8601_seconds_prints() -> None:
    date = subprocess.run(
        ["date", "--utc", "--iso-8601=seconds", "-d", "@1651388357"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    start = datetime.fromtimestamp(1651388357, UTC)
    assert make_prefix(PrefixSpec(), start) == date.stdout.strip()


def test_default_prefix_of_a_known_time() -> None:
    assert make_prefix(PrefixSpec(), START) == "2022-05-01T06:59:17+00:00"


def test_basic_prefix_has_no_colon() -> None:
    assert make_prefix(PrefixSpec(kind="basic"), START) == "20220501T065917Z"


@pytest.mark.parametrize(
    ("timespec", "expected"),
    [
        ("hours", "2022-05-01T06+00:00"),
        ("minutes", "2022-05-01T06:59+00:00"),
        ("milliseconds", "2022-05-01T06:59:17.123+00:00"),
        ("microseconds", "2022-05-01T06:59:17.123456+00:00"),
    ],
)
def test_iso8601_timespecs(timespec: str, expected: str) -> None:
    assert make_prefix(PrefixSpec(kind="iso8601", timespec=timespec), START) == expected


@pytest.mark.usefixtures("kolkata")
def test_local_time_zone_keeps_its_offset_in_both_forms() -> None:
    assert (
        make_prefix(PrefixSpec(kind="iso8601", timespec="minutes", tz="local"), START)
        == "2022-05-01T12:29+05:30"
    )
    assert make_prefix(PrefixSpec(kind="basic", tz="local"), START) == "20220501T122917+0530"


def test_unknown_timespec_is_refused() -> None:
    with pytest.raises(ValueError, match="timespec"):
        make_prefix(PrefixSpec(timespec="fortnights"), START)


@pytest.mark.parametrize(
    "name",
    [
        "lost+found",
        "2023",
        "20230101",
        "2023-01-01",  # a date alone: a user's folder, not a copy
        "2022-05-01T06:59:17",  # no UTC offset
        "2022-13-01T00:00:00+00:00",  # month 13
        ".palhm-staging-2022-05-01T06:59:17+00:00",
        "2022-05-01T06:59:17+00:00.old",
        "2022-05-01 06:59:17+00:00",
    ],
)
def test_names_that_are_not_copies(name: str) -> None:
    assert parse_prefix(name) is None
    assert not is_prefix(name)


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    kind=st.sampled_from(["default", "iso8601", "basic"]),
    timespec=st.sampled_from(TIMESPECS),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_every_prefix_made_parses_back_to_its_start_at_its_precision(
    moment: datetime, kind: str, timespec: str, offset_minutes: int
) -> None:
    start = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    spec = PrefixSpec(kind=kind, timespec=timespec)  # type: ignore[arg-type]
    parsed = parse_prefix(make_prefix(spec, start))
    assert parsed is not None
    assert timedelta(0) <= start - parsed < timedelta(hours=1)
    assert parsed.utcoffset() == timedelta(0)


def test_sorting_is_by_time_not_by_spelling() -> None:
    names = [
        "2022-05-01T08:00:00+02:00",  # 06:00 UTC
        "20220501T065917Z",
        "2022-05-01T05:00:00+00:00",
        "not-a-copy",
    ]
    assert sort_by_prefix(names, lambda n: n) == [
        "2022-05-01T05:00:00+00:00",
        "2022-05-01T08:00:00+02:00",
        "20220501T065917Z",
    ]
