"""keep-within (restic's semantics), pinned and suspect copies in rotation: examples
and hypothesis properties (doc/operations.md, "Retention")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palhm.backends.base import CopyInfo
from palhm.durations import Duration, parse_duration
from palhm.engine.rotation import PINNED, SUPERSEDED, plan_rotation
from palhm.model import RetentionPolicy
from palhm.values import Limit

T0 = datetime(2024, 3, 31, 12, tzinfo=UTC)


def copy_at(moment: datetime, size: int = 10) -> CopyInfo:
    name = moment.astimezone(UTC).isoformat(timespec="seconds")
    return CopyInfo(name, "complete", size, 1, f"/root/{name}")


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d", Duration(days=2)),
        ("1w3d", Duration(days=10)),
        ("1y6m", Duration(years=1, months=6)),
        ("36h", Duration(hours=36)),
        ("1y2m3w4d5h", Duration(1, 2, 25, 5)),
        (" 2D ", Duration(days=2)),
    ],
)
def test_durations_parse(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "2", "d", "2x", "3d2w", "1d1d", "-1d", "1.5d", 5, None])
def test_bad_durations_say_what_was_expected(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a duration like \"2d\""):
        parse_duration(bad)


def test_months_normalise_like_go_add_date() -> None:
    # 31 March minus one month is "31 February", i.e. 2 March in a leap year (restic)
    assert Duration(months=1).before(T0) == datetime(2024, 3, 2, 12, tzinfo=UTC)
    assert Duration(years=1).before(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(
        2023, 3, 1, tzinfo=UTC
    )
    assert Duration(days=1, hours=1).before(T0) == datetime(2024, 3, 30, 11, tzinfo=UTC)


# ------------------------------------------------------------------ keep-within examples


def test_keep_within_is_measured_from_the_newest_copy_not_from_now() -> None:
    # a host that stopped backing up a month ago keeps its last 2 days of copies
    times = [T0 - timedelta(days=40, hours=6 * i) for i in range(20)]
    copies = sorted((copy_at(t) for t in times), key=lambda c: c.prefix)
    policy = RetentionPolicy(keep_within=parse_duration("2d"))
    plan = plan_rotation(copies, policy, current=copies[-1].prefix, now=T0)
    newest = max(times)
    kept = {d.copy.prefix for d in plan.keep}
    assert kept == {
        c.prefix
        for c, t in zip(copies, sorted(times), strict=True)
        if t > newest - timedelta(days=2)
    }
    assert len(kept) == 8  # newest, then 7 more every 6 h strictly within 48 h


def test_copy_exactly_at_the_cut_goes_like_restic() -> None:
    copies = [copy_at(T0 - timedelta(days=2)), copy_at(T0)]
    plan = plan_rotation(
        copies, RetentionPolicy(keep_within=Duration(days=2)), current=copies[1].prefix, now=T0
    )
    assert [d.copy.prefix for d in plan.remove] == [copies[0].prefix]


def test_pinned_copy_survives_every_rule_and_limit() -> None:
    copies = [copy_at(T0 - timedelta(days=d)) for d in (30, 20, 10, 0)]
    policy = RetentionPolicy(keep_last=1, nb_copy_limit=Limit.parse(1))
    plan = plan_rotation(
        copies, policy, current=copies[-1].prefix, now=T0, pinned={copies[0].prefix}
    )
    assert [d.copy.prefix for d in plan.remove] == [copies[1].prefix, copies[2].prefix]
    assert dict((d.copy.prefix, d.reasons) for d in plan.keep)[copies[0].prefix][0] == PINNED


def test_suspect_copies_take_no_keep_last_slot() -> None:
    copies = [copy_at(T0 - timedelta(days=d)) for d in (4, 3, 2, 1, 0)]
    suspect = {copies[2].prefix, copies[3].prefix}
    plan = plan_rotation(
        copies, RetentionPolicy(keep_last=3), current=copies[-1].prefix, now=T0, suspect=suspect
    )
    assert {d.copy.prefix for d in plan.keep} == {
        copies[0].prefix,
        copies[1].prefix,
        copies[4].prefix,
    }
    assert all(d.reasons == (SUPERSEDED,) for d in plan.remove)


# ------------------------------------------------------------------ properties

moments = st.lists(
    st.integers(min_value=0, max_value=3 * 365 * 24), min_size=1, max_size=40, unique=True
).map(lambda hours: sorted(T0 - timedelta(hours=h) for h in hours))
durations = st.builds(
    Duration,
    years=st.integers(0, 2),
    months=st.integers(0, 13),
    days=st.integers(0, 60),
    hours=st.integers(0, 72),
).filter(lambda d: d != Duration())
policies = st.builds(
    RetentionPolicy,
    nb_copy_limit=st.one_of(st.just(Limit.parse("inf")), st.integers(1, 10).map(Limit.parse)),
    keep_last=st.none() | st.integers(0, 5),
    keep_daily=st.none() | st.integers(0, 5),
    keep_within=st.none() | durations,
)


@settings(max_examples=200, deadline=None)
@given(times=moments, within=durations)
def test_keep_within_keeps_exactly_the_copies_after_the_cut(
    times: list[datetime], within: Duration
) -> None:
    copies = [copy_at(t) for t in times]
    plan = plan_rotation(
        copies, RetentionPolicy(keep_within=within), current=copies[-1].prefix, now=T0
    )
    cut = within.before(times[-1])
    assert {d.copy.prefix for d in plan.keep} == {
        c.prefix for c, t in zip(copies, times, strict=True) if t > cut
    }


@settings(max_examples=200, deadline=None)
@given(times=moments, short=durations, extra=durations)
def test_a_longer_keep_within_never_removes_more(
    times: list[datetime], short: Duration, extra: Duration
) -> None:
    longer = Duration(
        short.years + extra.years,
        short.months + extra.months,
        short.days + extra.days,
        short.hours + extra.hours,
    )
    copies = [copy_at(t) for t in times]

    def removed(duration: Duration) -> set[str]:
        plan = plan_rotation(
            copies, RetentionPolicy(keep_within=duration), current=copies[-1].prefix, now=T0
        )
        return {d.copy.prefix for d in plan.remove}

    assert removed(longer) <= removed(short)


@settings(max_examples=300, deadline=None)
@given(times=moments, policy=policies, data=st.data())
def test_pinned_and_current_copies_are_never_removed_and_plans_partition(
    times: list[datetime], policy: RetentionPolicy, data: st.DataObject
) -> None:
    copies = [copy_at(t) for t in times]
    prefixes = [c.prefix for c in copies]
    pinned = set(data.draw(st.lists(st.sampled_from(prefixes), max_size=len(prefixes))))
    suspect = set(
        data.draw(st.lists(st.sampled_from(prefixes[:-1] or prefixes), max_size=len(prefixes)))
    )
    current = prefixes[-1]
    plan = plan_rotation(copies, policy, current=current, now=T0, pinned=pinned, suspect=suspect)
    kept = {d.copy.prefix for d in plan.keep}
    gone = {d.copy.prefix for d in plan.remove}
    assert kept | gone == set(prefixes) and not kept & gone
    assert current in kept
    assert pinned <= kept
    # a suspect copy never makes rotation remove a good one: removing every suspect
    # copy from the input leaves the good copies' fate unchanged
    good = [c for c in copies if c.prefix not in suspect or c.prefix == current]
    alone = plan_rotation(good, policy, current=current, now=T0, pinned=pinned)
    assert {d.copy.prefix for d in alone.remove} == gone - (suspect - {current})
