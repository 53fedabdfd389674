"""Which old copies to delete (doc/design.md#rotation-order). Pure: no I/O, no clock.

`plan_rotation` looks only at counted copies (complete or legacy); incomplete ones
are never counted, kept or removed here (the backup run cleans them up first).

0. Copies dated in the future (made while the clock was ahead: their prefix is later
   than both `now` and the current copy's own time) are set apart: kept, never
   counted by any rule or limit, so a stale copy from a wrong clock never pushes a
   real copy out (the caller warns).
1. keep-* rules, when any is set, with restic's semantics: walking the copies newest
   first, `keep-daily: N` keeps the newest copy of each of the N most recent days that
   have copies (likewise hourly, weekly (ISO weeks), monthly, yearly); `keep-last: N`
   keeps the N newest. A copy survives when any rule keeps it. Calendar buckets are
   taken in the time zone of `now`, so the caller decides what "a day" is. As in
   restic, `keep-*: 0` means the rule is unset (config check refuses a policy whose
   only keep-* rules are 0).
2. Hard caps: while the survivors number more than `nb-copy-limit` or weigh more than
   `root-size-limit`, the oldest survivor goes.
3. The current copy is always kept, whatever the rules and limits.
4. A copy the store locks (S3 Object Lock: its retain-until date is after `now`) is
   never removed: it is kept with the reason "locked until DATE" whatever the rules.
   It still counts toward `nb-copy-limit` and `root-size-limit` (it holds a place
   and space in the root, like a pinned copy), so the caps remove older unlocked
   copies first; `locked_over_limits` says when the locked copies alone exceed a cap.

`lock_periods` derives how long to lock a new copy from the time-based rules.

The plan lists the copies to remove oldest first (the order to delete them in) and,
for each kept copy, why it is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Final

from palhm.backends.base import CopyInfo
from palhm.durations import Duration
from palhm.model import RetentionPolicy
from palhm.prefix import parse_prefix
from palhm.records import record

Bucket = Callable[[datetime], tuple[int, ...]]

# rule name -> calendar bucket of a copy's time. keep-last has no bucket: every copy
# is a bucket of its own.
_BUCKETS: Final[dict[str, Bucket]] = {
    "keep-hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "keep-daily": lambda t: (t.year, t.month, t.day),
    "keep-weekly": lambda t: tuple(t.isocalendar()[:2]),
    "keep-monthly": lambda t: (t.year, t.month),
    "keep-yearly": lambda t: (t.year,),
}

CURRENT: Final = "current copy"
WITHIN_LIMITS: Final = "within nb-copy-limit and root-size-limit"
NOT_KEPT: Final = "kept by no keep-* rule"
OVER_COUNT: Final = "nb-copy-limit"
OVER_SIZE: Final = "root-size-limit"
FUTURE: Final = "dated in the future: never counted, never removed"
PINNED: Final = "pinned"
SUPERSEDED: Final = "suspect copy, superseded by a newer good copy"
LOCKED: Final = "locked until"  # + the date: the store refuses deletion before it


def locked_reason(until: datetime) -> str:
    """'locked until 2026-12-31T06:00:00+00:00' (UTC, seconds)."""
    return f"{LOCKED} {until.astimezone(UTC).isoformat(timespec='seconds')}"


@record
class Decision:
    """A copy and why it is kept (rule names) or removed (the limit or rule)."""

    copy: CopyInfo
    reasons: tuple[str, ...]


@record
class RotationPlan:
    keep: tuple[Decision, ...]  # oldest first
    remove: tuple[Decision, ...]  # oldest first: the order to delete in

    @property
    def doomed(self) -> tuple[CopyInfo, ...]:
        return tuple(d.copy for d in self.remove)


def plan_rotation(
    copies: Sequence[CopyInfo],
    policy: RetentionPolicy,
    *,
    current: str,
    now: datetime,
    suspect: Collection[str] = frozenset(),
    pinned: Collection[str] = frozenset(),
) -> RotationPlan:
    """Decide which counted copies to delete; see the module docstring.

    `current` is the prefix of the copy just committed (or the newest copy, when
    rotation runs alone); `now` (aware) gives the time zone of calendar buckets and
    tells locked copies (retain-until after it) from expired ones. `suspect`: prefixes
    of copies marked suspect (they take no keep-* slot, do not count against the
    limits, and go once a newer good copy exists); `pinned`: prefixes never removed.
    Raises ValueError if a copy's prefix does not parse.
    """
    everything = _oldest_first(copies)
    current_time = parse_prefix(current)
    horizon = max(now, current_time) if current_time is not None else now
    future = [c for c, when in everything if when > horizon and c.prefix != current]
    everything = [(c, when) for c, when in everything if c not in future]
    dated = [(c, t) for c, t in everything if c.prefix not in suspect or c.prefix == current]
    reasons: dict[str, list[str]] = {c.prefix: [] for c, _ in everything}
    removed: dict[str, str] = {}
    if has_keep_rules(policy):
        _apply_keep_rules(dated, policy, now, reasons)
        removed = {c.prefix: NOT_KEPT for c, _ in dated if not reasons[c.prefix]}
    for prefix in (current, *(p for p in pinned if p in reasons)):
        if prefix in reasons:
            reasons[prefix].insert(0, CURRENT if prefix == current else PINNED)
            removed.pop(prefix, None)
    locked = {c.prefix: c.retain_until for c, _ in everything if c.locked(now)}
    for prefix, until in locked.items():
        if until is not None:
            reasons[prefix].append(locked_reason(until))
            removed.pop(prefix, None)
    survivors = [c for c, _ in dated if c.prefix not in removed]
    protected = {current, *pinned, *locked}
    removed.update(_apply_caps(survivors, policy, protected))
    removed.update(_suspect_removals(everything, dated, suspect, protected - {current}, current))
    keep = tuple(
        Decision(c, tuple(reasons[c.prefix]) or (WITHIN_LIMITS,))
        for c, _ in everything
        if c.prefix not in removed
    ) + tuple(Decision(c, (FUTURE,)) for c in future)
    remove = tuple(Decision(c, (removed[c.prefix],)) for c, _ in everything if c.prefix in removed)
    return RotationPlan(keep, remove)


def _suspect_removals(
    everything: Sequence[tuple[CopyInfo, datetime]],
    good: Sequence[tuple[CopyInfo, datetime]],
    suspect: Collection[str],
    pinned: Collection[str],
    current: str,
) -> dict[str, str]:
    """Suspect copies older than the newest good copy go (unless pinned)."""
    if not good:
        return {}
    newest_good = good[-1][1]
    return {
        c.prefix: SUPERSEDED
        for c, when in everything
        if c.prefix in suspect and c.prefix != current and c.prefix not in pinned
        and when < newest_good
    }  # fmt: skip


def locked_over_limits(
    copies: Sequence[CopyInfo], policy: RetentionPolicy, *, now: datetime
) -> list[str]:
    """The caps that the counted copies locked at `now` exceed on their own (rotation
    can do nothing about those until their locks expire): ["nb-copy-limit 3: 5 locked
    copies", ...]."""
    locked = [c for c in copies if c.counted and c.locked(now)]
    found = []
    if policy.nb_copy_limit.exceeded_by(len(locked)):
        found.append(f"{OVER_COUNT} {policy.nb_copy_limit}: {len(locked)} locked copies")
    size = sum(c.size for c in locked)
    if policy.root_size_limit.exceeded_by(size):
        found.append(f"{OVER_SIZE} {policy.root_size_limit}: locked copies hold {size} bytes")
    return found


TIME_RULES: Final = (
    ("keep-hourly", "keep_hourly", Duration(hours=1)),
    ("keep-daily", "keep_daily", Duration(days=1)),
    ("keep-weekly", "keep_weekly", Duration(days=7)),
    ("keep-monthly", "keep_monthly", Duration(days=31)),
    ("keep-yearly", "keep_yearly", Duration(days=366)),
)
"""Calendar-bucket rules and the longest time one bucket spans (a month: 31 days, a
year: 366): `keep-daily: N` never keeps a copy longer than N days after it was made."""


def lock_periods(policy: RetentionPolicy) -> list[tuple[str, Duration]]:
    """How long each time-based rule could keep a new copy, as ("keep-daily 7",
    Duration(days=7)): keep-within its duration, keep-hourly N: N hours, keep-daily N:
    N days, keep-weekly N: N weeks, keep-monthly N: N x 31 days, keep-yearly N: N x
    366 days. Empty when only count or size rules are set (keep-last, the caps): no
    date follows from those."""
    found: list[tuple[str, Duration]] = []
    if policy.keep_within is not None:
        found.append((f"keep-within {policy.keep_within}", policy.keep_within))
    for rule, attribute, unit in TIME_RULES:
        count = getattr(policy, attribute)
        if count:
            span = Duration(days=unit.days * count, hours=unit.hours * count)
            found.append((f"{rule} {count}", span))
    return found


def has_keep_rules(policy: RetentionPolicy) -> bool:
    """Whether any keep-* rule is set to keep at least one copy (0 = unset)."""
    return (
        bool(policy.keep_last)
        or policy.keep_within is not None
        or any(count for _, count in _bucket_rules(policy))
    )


def _oldest_first(copies: Sequence[CopyInfo]) -> list[tuple[CopyInfo, datetime]]:
    dated: list[tuple[CopyInfo, datetime]] = []
    for copy in copies:
        if not copy.counted:
            continue
        when = parse_prefix(copy.prefix)
        if when is None:
            raise ValueError(f"'{copy.prefix}' is not a copy prefix")
        dated.append((copy, when))
    dated.sort(key=lambda entry: (entry[1], entry[0].prefix))
    return dated


def _apply_keep_rules(
    dated: Sequence[tuple[CopyInfo, datetime]],
    policy: RetentionPolicy,
    now: datetime,
    reasons: dict[str, list[str]],
) -> None:
    """Add the name of every keep-* rule that keeps a copy to its reasons."""
    newest_first = dated[::-1]
    if policy.keep_within is not None and newest_first:
        # restic: measured from the newest copy, not from now; strictly after the cut
        cut = policy.keep_within.before(newest_first[0][1].astimezone(now.tzinfo))
        for copy, when in newest_first:
            if when > cut:
                reasons[copy.prefix].append(f"keep-within {policy.keep_within}")
    if policy.keep_last:
        for copy, _ in newest_first[: policy.keep_last]:
            reasons[copy.prefix].append("keep-last")
    for rule, budget in _bucket_rules(policy):
        bucket_of = _BUCKETS[rule]
        last: tuple[int, ...] | None = None
        for copy, when in newest_first:
            if budget <= 0:
                break
            bucket = bucket_of(when.astimezone(now.tzinfo))
            if bucket != last:
                reasons[copy.prefix].append(rule)
                last = bucket
                budget -= 1


def _bucket_rules(policy: RetentionPolicy) -> list[tuple[str, int]]:
    rules = {
        "keep-hourly": policy.keep_hourly,
        "keep-daily": policy.keep_daily,
        "keep-weekly": policy.keep_weekly,
        "keep-monthly": policy.keep_monthly,
        "keep-yearly": policy.keep_yearly,
    }
    return [(rule, count) for rule, count in rules.items() if count]


def _apply_caps(
    survivors: list[CopyInfo], policy: RetentionPolicy, protected: Collection[str]
) -> dict[str, str]:
    """Remove the oldest survivors (never the current or a pinned copy) until both caps hold."""
    removed: dict[str, str] = {}
    count = len(survivors)
    size = sum(c.size for c in survivors)
    for copy in survivors:  # oldest first
        over_count = policy.nb_copy_limit.exceeded_by(count)
        over_size = policy.root_size_limit.exceeded_by(size)
        if not (over_count or over_size):
            break
        if copy.prefix in protected:
            continue
        removed[copy.prefix] = OVER_COUNT if over_count else OVER_SIZE
        count -= 1
        size -= copy.size
    return removed
