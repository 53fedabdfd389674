"""Object Lock, the pure parts: the retain-until date from `period` or from the
retention rules, config check refusals, the manifest field, and rotation planning
around locked copies (engine/rotation.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from palhm.backends.base import CopyInfo
from palhm.config import load_config
from palhm.durations import Duration, parse_duration
from palhm.engine.rotation import (
    CURRENT,
    OVER_COUNT,
    lock_periods,
    locked_over_limits,
    locked_reason,
    plan_rotation,
)
from palhm.manifest import Manifest, encode_manifest, parse_manifest
from palhm.model import BackupTask, ObjectLock, RetentionPolicy
from palhm.values import Limit
from tests.unit.config.util import obj, problems, write

T0 = datetime(2024, 1, 31, 6, 0, tzinfo=UTC)


def copy(moment: datetime, *, until: datetime | None = None, size: int = 10) -> CopyInfo:
    name = moment.isoformat(timespec="seconds")
    return CopyInfo(name, "complete", size, 1, f"s3://b/r/{name}", retain_until=until)


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("36h", datetime(2024, 2, 1, 18, 0, tzinfo=UTC)),
        ("1w3d", datetime(2024, 2, 10, 6, 0, tzinfo=UTC)),
        ("1m", datetime(2024, 3, 2, 6, 0, tzinfo=UTC)),  # 31 February -> 2 March (2024)
        ("1y", datetime(2025, 1, 31, 6, 0, tzinfo=UTC)),
    ],
)
def test_duration_after_adds_calendar_steps_then_days_and_hours(
    text: str, expected: datetime
) -> None:
    assert parse_duration(text).after(T0) == expected


def test_duration_after_beyond_the_calendar_is_the_last_date() -> None:
    assert Duration(years=9000).after(T0).year == 9999


def test_lock_periods_take_the_longest_time_each_time_rule_could_keep_a_copy() -> None:
    policy = RetentionPolicy(
        keep_last=30,
        keep_within=parse_duration("10d"),
        keep_hourly=48,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=2,
        nb_copy_limit=Limit(5),
    )
    periods = dict(lock_periods(policy))
    assert periods == {
        "keep-within 10d": Duration(days=10),
        "keep-hourly 48": Duration(hours=48),
        "keep-daily 7": Duration(days=7),
        "keep-weekly 4": Duration(days=28),
        "keep-monthly 12": Duration(days=372),
        "keep-yearly 2": Duration(days=732),
    }
    lock = ObjectLock("GOVERNANCE", tuple(periods.values()))
    assert lock.retain_until(T0) == T0 + timedelta(days=732)


def test_count_and_size_rules_give_no_period() -> None:
    policy = RetentionPolicy(keep_last=3, nb_copy_limit=Limit(3), root_size_limit=Limit(10))
    assert lock_periods(policy) == []


def test_retain_until_is_rounded_up_to_whole_seconds() -> None:
    lock = ObjectLock("COMPLIANCE", (Duration(days=1),))
    start = T0.replace(microsecond=250_000)
    assert lock.retain_until(start) == T0 + timedelta(days=1, seconds=1)


# --------------------------------------------------------------------------- config


def s3_task(**params: Any) -> dict[str, Any]:
    return {
        "id": "b",
        "type": "backup",
        "backend": "aws-s3",
        "backend-param": {"bucket": "k", "root": "r", **params},
        "objects": [obj("x")],
    }


def test_object_lock_without_period_or_time_rule_is_a_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.json",
        {"modules": ["aws"], "tasks": [s3_task(**{"object-lock": {"mode": "GOVERNANCE"},
                                                  "keep-last": 3, "nb-copy-limit": 5})]},
    )  # fmt: skip
    [line] = problems(path)
    assert line.startswith(f"{path}: at 'tasks[0].backend-param.object-lock': no retain-until")
    assert 'give object-lock a "period"' in line


def test_object_lock_refuses_a_bad_period_and_checksums_off(tmp_path: Path) -> None:
    lock = {"mode": "COMPLIANCE", "period": "forever"}
    params = {"object-lock": lock, "request-checksums": "off"}
    path = write(tmp_path, "c.json", {"modules": ["aws"], "tasks": [s3_task(**params)]})
    found = problems(path)
    assert any(
        "'tasks[0].backend-param.object-lock.period': expected a duration" in p for p in found
    )
    assert any("'tasks[0].backend-param.request-checksums': S3 requires" in p for p in found)
    assert len(found) == 2


def test_object_lock_is_built_from_the_rules(tmp_path: Path) -> None:
    params = {"object-lock": {"mode": "GOVERNANCE"}, "keep-daily": 7, "keep-weekly": 2}
    path = write(tmp_path, "c.json", {"modules": ["aws"], "tasks": [s3_task(**params)]})
    task = load_config(path).tasks["b"]
    assert isinstance(task, BackupTask)
    lock = task.backend_param["object_lock"]
    assert lock == ObjectLock(
        "GOVERNANCE", (Duration(days=7), Duration(days=14)), "keep-daily 7, keep-weekly 2"
    )


# --------------------------------------------------------------------------- manifest


def test_manifest_records_retain_until_and_older_manifests_still_parse() -> None:
    until = T0 + timedelta(days=7)
    manifest = Manifest("b", "p", T0, T0, retain_until=until)
    data = encode_manifest(manifest)
    assert b'"retain-until": "2024-02-07T06:00:00.000000+00:00"' in data
    assert parse_manifest(data).retain_until == until
    old = encode_manifest(Manifest("b", "p", T0, T0))
    assert b"retain-until" not in old
    assert parse_manifest(old).retain_until is None


# --------------------------------------------------------------------------- rotation


def test_a_locked_copy_is_kept_whatever_the_rules_and_an_expired_one_goes() -> None:
    now = T0 + timedelta(days=3)
    expired = copy(T0, until=T0 + timedelta(days=1))
    locked = copy(T0 + timedelta(days=1), until=T0 + timedelta(days=5))
    current = copy(T0 + timedelta(days=2))
    plan = plan_rotation(
        [expired, locked, current], RetentionPolicy(keep_last=1), current=current.prefix, now=now
    )
    assert [d.copy for d in plan.remove] == [expired]
    kept = {d.copy.prefix: d.reasons for d in plan.keep}
    assert kept[locked.prefix] == (locked_reason(T0 + timedelta(days=5)),)
    assert kept[locked.prefix][0] == "locked until 2024-02-05T06:00:00+00:00"
    assert kept[current.prefix] == (CURRENT, "keep-last")


def test_locked_copies_count_toward_the_caps_so_older_unlocked_ones_go_first() -> None:
    now = T0 + timedelta(days=3)
    unlocked = [copy(T0 + timedelta(hours=h)) for h in range(2)]
    locked = [
        copy(T0 + timedelta(days=1, hours=h), until=now + timedelta(days=1)) for h in range(3)
    ]
    current = copy(T0 + timedelta(days=2))
    everything = [*unlocked, *locked, current]
    policy = RetentionPolicy(nb_copy_limit=Limit(2))
    plan = plan_rotation(everything, policy, current=current.prefix, now=now)
    assert [d.copy for d in plan.remove] == unlocked
    assert {d.reasons[0] for d in plan.remove} == {OVER_COUNT}
    assert locked_over_limits(everything, policy, now=now) == ["nb-copy-limit 2: 3 locked copies"]
    assert locked_over_limits(everything, policy, now=now + timedelta(days=2)) == []


def test_locked_suspect_copies_are_not_superseded_before_their_date() -> None:
    now = T0 + timedelta(days=1)
    suspect = copy(T0, until=now + timedelta(hours=1))
    current = copy(T0 + timedelta(hours=12))
    plan = plan_rotation(
        [suspect, current], RetentionPolicy(), current=current.prefix, now=now,
        suspect={suspect.prefix},
    )  # fmt: skip
    assert plan.remove == ()
