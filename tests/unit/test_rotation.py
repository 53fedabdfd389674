"""Which old copies rotation deletes (doc/design.md#rotation-order, #what-counts-as-a-copy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from palhm.backends.base import CopyInfo, CopyState
from palhm.engine.rotation import CURRENT, FUTURE, NOT_KEPT, OVER_COUNT, OVER_SIZE, plan_rotation
from palhm.model import RetentionPolicy
from palhm.values import Limit

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def prefix(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def copy(moment: datetime, size: int = 10, state: CopyState = "complete") -> CopyInfo:
    name = prefix(moment)
    return CopyInfo(name, state, size, 1, f"/root/{name}")


def removed(copies: list[CopyInfo], policy: RetentionPolicy, current: CopyInfo) -> list[str]:
    plan = plan_rotation(copies, policy, current=current.prefix, now=T0)
    return [d.copy.prefix for d in plan.remove]


def daily(days: int) -> list[CopyInfo]:
    return [copy(T0 + timedelta(days=d)) for d in range(days)]


def test_without_limits_nothing_is_removed() -> None:
    copies = daily(5)
    plan = plan_rotation(copies, RetentionPolicy(), current=copies[-1].prefix, now=T0)
    assert plan.remove == ()
    assert [d.copy for d in plan.keep] == copies


def test_count_limit_removes_oldest_first() -> None:
    copies = daily(5)
    policy = RetentionPolicy(nb_copy_limit=Limit(3))
    assert removed(copies, policy, copies[-1]) == [copies[0].prefix, copies[1].prefix]


def test_size_limit_removes_oldest_until_the_total_fits() -> None:
    copies = [copy(T0 + timedelta(days=d), size=s) for d, s in enumerate([50, 10, 30, 20])]
    policy = RetentionPolicy(root_size_limit=Limit(59))  # total 110
    plan = plan_rotation(copies, policy, current=copies[-1].prefix, now=T0)
    assert [(d.copy.size, d.reasons) for d in plan.remove] == [
        (50, (OVER_SIZE,)),
        (10, (OVER_SIZE,)),
    ]


def test_the_current_copy_is_kept_even_if_it_alone_exceeds_the_limits() -> None:
    copies = [copy(T0, size=5), copy(T0 + timedelta(hours=1), size=1000)]
    policy = RetentionPolicy(nb_copy_limit=Limit(0), root_size_limit=Limit(10))
    plan = plan_rotation(copies, policy, current=copies[1].prefix, now=T0)
    assert [d.copy for d in plan.remove] == [copies[0]]
    assert [(d.copy, d.reasons) for d in plan.keep] == [(copies[1], (CURRENT,))]


def test_copies_dated_after_the_current_one_are_kept_and_never_counted() -> None:
    """A clock that was ahead: copies from the 'future' sort after the copy just made.
    They are kept, but never count, so they cannot push real copies out."""
    past = [copy(T0 - timedelta(days=d)) for d in (3, 2, 1)]
    current = copy(T0)
    ahead = [copy(T0 + timedelta(days=d)) for d in (1, 2)]
    for policy in (
        RetentionPolicy(nb_copy_limit=Limit(2)),
        RetentionPolicy(keep_last=2),
        RetentionPolicy(keep_daily=2),
    ):
        plan = plan_rotation([*past, current, *ahead], policy, current=current.prefix, now=T0)
        assert [d.copy for d in plan.remove] == past[:2], policy
        kept = {d.copy.prefix: d.reasons for d in plan.keep}
        assert kept[ahead[0].prefix] == kept[ahead[1].prefix] == (FUTURE,)
        assert past[2].prefix in kept and current.prefix in kept


def test_incomplete_copies_are_neither_counted_nor_removed() -> None:
    copies = daily(3) + [copy(T0 - timedelta(days=9), size=10**9, state="incomplete")]
    policy = RetentionPolicy(nb_copy_limit=Limit(3), root_size_limit=Limit(30))
    plan = plan_rotation(copies, policy, current=copies[2].prefix, now=T0)
    assert plan.remove == ()
    assert all(d.copy.state != "incomplete" for d in plan.keep)


def test_legacy_copies_count() -> None:
    copies = [copy(T0, state="legacy"), copy(T0 + timedelta(days=1))]
    assert removed(copies, RetentionPolicy(nb_copy_limit=Limit(1)), copies[1]) == [copies[0].prefix]


def test_limits_beyond_two_to_the_53_are_exact() -> None:
    big = 2**53
    copies = [copy(T0, size=big), copy(T0 + timedelta(days=1), size=1)]
    exact = RetentionPolicy(root_size_limit=Limit(big + 1))
    assert removed(copies, exact, copies[1]) == []
    one_less = RetentionPolicy(root_size_limit=Limit(big))  # float(big + 1) == float(big)
    assert removed(copies, one_less, copies[1]) == [copies[0].prefix]


def test_keep_daily_keeps_the_newest_copy_of_each_recent_day() -> None:
    # two copies a day for 10 days: 00:00 and 12:00
    copies = [copy(T0 + timedelta(days=d, hours=h)) for d in range(10) for h in (0, 12)]
    plan = plan_rotation(copies, RetentionPolicy(keep_daily=7), current=copies[-1].prefix, now=T0)
    kept = [d.copy.prefix for d in plan.keep]
    assert kept == [prefix(T0 + timedelta(days=d, hours=12)) for d in range(3, 10)]
    assert {d.reasons for d in plan.remove} == {(NOT_KEPT,)}


def test_keep_daily_counts_days_that_have_copies_not_calendar_days() -> None:
    copies = [copy(T0 + timedelta(days=d)) for d in (0, 10, 20, 30)]
    plan = plan_rotation(copies, RetentionPolicy(keep_daily=3), current=copies[-1].prefix, now=T0)
    assert [d.copy for d in plan.remove] == [copies[0]]


def test_keep_rules_combine_and_name_their_reasons() -> None:
    copies = daily(60)  # 2024-01-01 .. 2024-02-29
    policy = RetentionPolicy(keep_last=2, keep_weekly=2, keep_monthly=2)
    plan = plan_rotation(copies, policy, current=copies[-1].prefix, now=T0)
    reasons = {d.copy.prefix: d.reasons for d in plan.keep}
    assert reasons == {
        prefix(T0 + timedelta(days=30)): ("keep-monthly",),  # Jan 31
        prefix(T0 + timedelta(days=55)): ("keep-weekly",),  # Sun Feb 25 ends ISO week 8
        prefix(T0 + timedelta(days=58)): ("keep-last",),
        prefix(T0 + timedelta(days=59)): (CURRENT, "keep-last", "keep-weekly", "keep-monthly"),
    }


def test_keep_hourly_and_yearly() -> None:
    copies = [copy(T0 + timedelta(minutes=20 * i)) for i in range(9)]  # 3 hours
    hourly = plan_rotation(
        copies, RetentionPolicy(keep_hourly=2), current=copies[-1].prefix, now=T0
    )
    assert [d.copy for d in hourly.keep] == [copies[5], copies[8]]
    years = [copy(datetime(y, 6, 1, tzinfo=UTC)) for y in (2020, 2021, 2022)]
    yearly = plan_rotation(years, RetentionPolicy(keep_yearly=5), current=years[-1].prefix, now=T0)
    assert yearly.remove == ()


def test_calendar_days_are_taken_in_the_time_zone_of_now() -> None:
    # 23:30 and 00:30 UTC are two days in UTC but one day (21:30, 22:30) at UTC-02:00
    late, early = (
        copy(datetime(2024, 3, 1, 23, 30, tzinfo=UTC)),
        copy(datetime(2024, 3, 2, 0, 30, tzinfo=UTC)),
    )
    policy = RetentionPolicy(keep_daily=5)
    in_utc = plan_rotation([late, early], policy, current=early.prefix, now=T0)
    assert in_utc.remove == ()
    west = T0.astimezone(timezone(timedelta(hours=-2)))
    in_west = plan_rotation([late, early], policy, current=early.prefix, now=west)
    assert [d.copy for d in in_west.remove] == [late]


def test_caps_still_apply_after_keep_rules() -> None:
    copies = daily(10)
    policy = RetentionPolicy(keep_daily=7, nb_copy_limit=Limit(5))
    plan = plan_rotation(copies, policy, current=copies[-1].prefix, now=T0)
    assert [d.copy.prefix for d in plan.keep] == [c.prefix for c in copies[5:]]
    assert [d.reasons[0] for d in plan.remove] == [NOT_KEPT] * 3 + [OVER_COUNT] * 2


# -- properties ------------------------------------------------------------------------

copies_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2000),  # hours after T0
        st.integers(min_value=0, max_value=2**60),  # size, beyond 2^53 too
        st.sampled_from(["complete", "complete", "legacy", "incomplete"]),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda t: t[0],
)
limits = st.one_of(st.none(), st.integers(min_value=0, max_value=30))
size_limits = st.one_of(st.none(), st.integers(min_value=0, max_value=2**62))
keep_counts = st.one_of(st.none(), st.integers(min_value=0, max_value=6))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[CopyInfo], RetentionPolicy, CopyInfo]:
    raw = draw(copies_strategy)
    copies = [copy(T0 + timedelta(hours=h), size=s, state=state) for h, s, state in raw]  # type: ignore[arg-type]
    counted = [c for c in copies if c.counted] or [copies[0]]
    # the copy just made is the newest one (copies dated after it: see the test above)
    current = max(counted, key=lambda c: c.prefix)
    copies = [
        c if c is not current else CopyInfo(c.prefix, "complete", c.size, 1, c.location)
        for c in copies
    ]
    current = next(c for c in copies if c.prefix == current.prefix)
    policy = RetentionPolicy(
        nb_copy_limit=Limit(draw(limits)),
        root_size_limit=Limit(draw(size_limits)),
        keep_last=draw(keep_counts),
        keep_daily=draw(keep_counts),
        keep_weekly=draw(keep_counts),
    )
    return copies, policy, current


@given(scenarios())
def test_plan_never_removes_the_current_copy_nor_an_incomplete_one(
    scenario: tuple[list[CopyInfo], RetentionPolicy, CopyInfo],
) -> None:
    copies, policy, current = scenario
    plan = plan_rotation(copies, policy, current=current.prefix, now=T0)
    gone = {d.copy.prefix for d in plan.remove}
    assert current.prefix not in gone
    assert all(d.copy.counted for d in plan.remove + plan.keep)
    counted = {c.prefix for c in copies if c.counted}
    assert gone | {d.copy.prefix for d in plan.keep} == counted
    assert gone.isdisjoint(d.copy.prefix for d in plan.keep)


@given(scenarios())
def test_plan_meets_both_limits_whenever_possible(
    scenario: tuple[list[CopyInfo], RetentionPolicy, CopyInfo],
) -> None:
    copies, policy, current = scenario
    plan = plan_rotation(copies, policy, current=current.prefix, now=T0)
    survivors = [d.copy for d in plan.keep]
    only_current_left = [c.prefix for c in survivors] == [current.prefix]
    assert only_current_left or not policy.nb_copy_limit.exceeded_by(len(survivors))
    assert only_current_left or not policy.root_size_limit.exceeded_by(
        sum(c.size for c in survivors)
    )


@given(scenarios())
def test_limits_remove_oldest_first_and_no_more_than_needed(
    scenario: tuple[list[CopyInfo], RetentionPolicy, CopyInfo],
) -> None:
    copies, policy, current = scenario
    policy = RetentionPolicy(
        nb_copy_limit=policy.nb_copy_limit, root_size_limit=policy.root_size_limit
    )
    plan = plan_rotation(copies, policy, current=current.prefix, now=T0)
    candidates = sorted(
        (c for c in copies if c.counted and c.prefix != current.prefix), key=lambda c: c.prefix
    )  # one form of prefix here, so names sort by time
    doomed = [d.copy for d in plan.remove]
    assert doomed == candidates[: len(doomed)]
    if doomed:  # without the last removal a limit would still be exceeded
        survivors = [d.copy for d in plan.keep] + [doomed[-1]]
        assert policy.nb_copy_limit.exceeded_by(
            len(survivors)
        ) or policy.root_size_limit.exceeded_by(sum(c.size for c in survivors))


@given(scenarios())
def test_keep_rules_only_remove_copies_no_rule_keeps_unless_a_cap_forces_it(
    scenario: tuple[list[CopyInfo], RetentionPolicy, CopyInfo],
) -> None:
    copies, policy, current = scenario
    plan = plan_rotation(copies, policy, current=current.prefix, now=T0)
    for decision in plan.remove:
        assert decision.reasons[0] in ((NOT_KEPT,) if policy.has_keep_rules else ()) + (
            OVER_COUNT,
            OVER_SIZE,
        )


def test_keep_zero_means_the_rule_is_unset() -> None:
    """restic: `keep-last: 0` (or any keep-* 0) is no rule at all, never 'keep none'."""
    copies = daily(5)
    for rule in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
        alone = RetentionPolicy(**{rule: 0})  # type: ignore[arg-type]
        assert removed(copies, alone, copies[-1]) == [], rule
        with_other = RetentionPolicy(keep_last=2, **{rule: 0} if rule != "keep_last" else {})  # type: ignore[arg-type]
        assert removed(copies, with_other, copies[-1]) == [c.prefix for c in copies[:3]], rule
