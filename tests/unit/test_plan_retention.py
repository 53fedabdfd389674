"""Retention (doc/design.md#rotation-order) over a simulated year of daily copies, through the pure
rotation planner the engine and `run --dry-run` both use.

Expected sets are worked out from the calendar here (month ends, Sundays, the last
days of December), not from the planner's output.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from palhm.backends.base import CopyInfo
from palhm.engine.rotation import RotationPlan, plan_rotation
from palhm.model import PrefixSpec, RetentionPolicy
from palhm.prefix import make_prefix
from palhm.values import Limit

YEAR = 2023  # 2023-12-31 is a Sunday: the end of ISO week 52
MIB = 1 << 20


def at_six(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC)


def copy_of(day: date, size: int = MIB) -> CopyInfo:
    prefix = make_prefix(PrefixSpec(), at_six(day))
    return CopyInfo(prefix, "complete", size, 1, f"/backups/{prefix}")


def days_of_year() -> list[date]:
    first = date(YEAR, 1, 1)
    return [first + timedelta(days=n) for n in range((date(YEAR + 1, 1, 1) - first).days)]


def month_ends(months: Iterable[int]) -> set[date]:
    return {
        date(YEAR, m + 1, 1) - timedelta(days=1) if m < 12 else date(YEAR, 12, 31) for m in months
    }


def simulate(policy: RetentionPolicy) -> tuple[list[CopyInfo], RotationPlan]:
    """One run a day for a year, each followed by its rotation, as cron would do it."""
    kept: list[CopyInfo] = []
    plan = RotationPlan((), ())
    for day in days_of_year():
        new = copy_of(day)
        kept.append(new)
        plan = plan_rotation(kept, policy, current=new.prefix, now=at_six(day))
        doomed = {c.prefix for c in plan.doomed}
        kept = [c for c in kept if c.prefix not in doomed]
    return kept, plan


def kept_days(copies: Iterable[CopyInfo]) -> set[date]:
    return {datetime.fromisoformat(c.prefix).date() for c in copies}


GFS = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=5)
DEC31 = date(YEAR, 12, 31)
LAST_7_DAYS = {DEC31 - timedelta(days=n) for n in range(7)}
LAST_4_SUNDAYS = {DEC31 - timedelta(weeks=n) for n in range(4)}


def test_a_year_of_daily_copies_keeps_7_days_4_weeks_12_months() -> None:
    kept, _ = simulate(GFS)
    assert kept_days(kept) == LAST_7_DAYS | LAST_4_SUNDAYS | month_ends(range(1, 13))
    assert len(kept) == 7 + 3 + 11  # Dec 31 counts for every rule once


def test_rotating_daily_gives_the_same_result_as_one_plan_at_the_end() -> None:
    kept, _ = simulate(GFS)
    everything = [copy_of(day) for day in days_of_year()]
    once = plan_rotation(everything, GFS, current=copy_of(DEC31).prefix, now=at_six(DEC31))
    assert kept_days(d.copy for d in once.keep) == kept_days(kept)


def test_each_kept_copy_names_every_rule_that_keeps_it() -> None:
    _, plan = simulate(GFS)
    reasons = {datetime.fromisoformat(d.copy.prefix).date(): set(d.reasons) for d in plan.keep}
    assert reasons[DEC31] == {
        "current copy",
        "keep-daily",
        "keep-weekly",
        "keep-monthly",
        "keep-yearly",
    }
    assert reasons[date(YEAR, 12, 24)] == {"keep-weekly"}  # a Sunday, 7 days back
    assert reasons[date(YEAR, 12, 17)] == {"keep-weekly"}
    assert reasons[date(YEAR, 11, 30)] == {"keep-monthly"}
    assert reasons[date(YEAR, 12, 27)] == {"keep-daily"}


def test_hard_count_cap_removes_the_oldest_survivor_first() -> None:
    capped = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12, nb_copy_limit=Limit(20))
    kept, _ = simulate(capped)
    uncapped = LAST_7_DAYS | LAST_4_SUNDAYS | month_ends(range(1, 13))
    assert kept_days(kept) == uncapped - {date(YEAR, 1, 31)}


def test_size_cap_applies_after_the_keep_rules() -> None:
    policy = RetentionPolicy(keep_daily=7, keep_monthly=12, root_size_limit=Limit(10 * MIB))
    kept, _ = simulate(policy)
    assert len(kept) == 10
    # the 18 survivors of the keep rules lose their 8 oldest: month ends Jan-Aug
    assert kept_days(kept) == LAST_7_DAYS | month_ends(range(9, 12))


def test_days_without_copies_do_not_use_up_keep_daily() -> None:
    # restic semantics: the N most recent days *that have copies*
    days = [date(YEAR, 1, 1), date(YEAR, 1, 2), date(YEAR, 1, 10), date(YEAR, 1, 20)]
    copies = [copy_of(d) for d in days] + [copy_of(date(YEAR, 1, 20), 2)]
    copies[-1] = CopyInfo(
        copies[-1].prefix.replace("06:00", "05:00"), "complete", 1, 1, "/backups/early"
    )
    plan = plan_rotation(
        copies, RetentionPolicy(keep_daily=3), current=copies[3].prefix, now=at_six(days[-1])
    )
    assert kept_days(d.copy for d in plan.keep) == {days[1], days[2], days[3]}
    assert [d.copy.location for d in plan.remove] == [
        copies[0].location,
        "/backups/early",  # an older copy of a day that has a newer one
    ]


def test_keep_last_and_keep_hourly_count_copies_and_hours() -> None:
    base = datetime(YEAR, 6, 1, 10, 0, tzinfo=UTC)
    times = [base + timedelta(minutes=20 * n) for n in range(9)]  # 10:00 .. 12:40
    copies = [
        CopyInfo(make_prefix(PrefixSpec(), t), "complete", 1, 1, t.isoformat()) for t in times
    ]
    plan = plan_rotation(
        copies,
        RetentionPolicy(keep_last=2, keep_hourly=2),
        current=copies[-1].prefix,
        now=times[-1],
    )
    kept = {datetime.fromisoformat(d.copy.prefix) for d in plan.keep}
    newest_of_11h = base + timedelta(minutes=100)  # 11:40
    assert kept == {times[-1], times[-2], newest_of_11h}


def test_legacy_copies_count_and_incomplete_ones_are_left_alone() -> None:
    legacy = copy_of(date(YEAR, 1, 1))
    legacy = CopyInfo(legacy.prefix, "legacy", 1, 1, legacy.location)
    building = copy_of(date(YEAR, 1, 2))
    building = CopyInfo(building.prefix, "incomplete", 1, 1, building.location)
    new = copy_of(date(YEAR, 1, 3))
    plan = plan_rotation(
        [legacy, building, new],
        RetentionPolicy(nb_copy_limit=Limit(1)),
        current=new.prefix,
        now=at_six(date(YEAR, 1, 3)),
    )
    assert [d.copy.prefix for d in plan.remove] == [legacy.prefix]
    assert building.prefix not in {d.copy.prefix for d in (*plan.keep, *plan.remove)}
