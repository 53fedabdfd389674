"""Part-size schedule of the aws-s3 streaming upload (pure arithmetic, no server)."""

from __future__ import annotations

import pytest

from palhm.backends.s3.upload import (
    AWS_LIMITS,
    GiB,
    MiB,
    PartSchedule,
    S3Limits,
    TiB,
    first_part_size,
    in_flight_parts,
    plan_parts,
)

FIRST_SIZES = [
    5 * MiB,
    6 * MiB,
    8 * MiB,
    13 * MiB,
    64 * MiB,
    100 * MiB,
    524 * MiB,
    525 * MiB,
    5 * GiB,
]
ALLOC_SIZES = [None, 1, 10 * MiB, 78 * GiB, 100 * GiB, 1 * TiB, 4 * TiB, 5 * TiB]


def parts_needed(schedule: PartSchedule, size: int) -> list[int]:
    """The part sizes an object of `size` bytes is cut into."""
    sizes, total, number = [], 0, 0
    while total < size:
        number += 1
        sizes.append(min(schedule.size(number), size - total))
        total += sizes[-1]
    return sizes


@pytest.mark.parametrize("first", FIRST_SIZES)
def test_five_tib_fits_in_ten_thousand_parts_whatever_the_first_part(first: int) -> None:
    schedule = PartSchedule.plan(first)
    assert schedule.capacity(10_000) >= 5 * TiB
    assert len(parts_needed(schedule, 5 * TiB)) <= 10_000


@pytest.mark.parametrize("alloc_size", ALLOC_SIZES)
@pytest.mark.parametrize("part_size", [None, 5 * MiB, 16 * MiB])
def test_five_tib_fits_whatever_the_alloc_size_hint(
    alloc_size: int | None, part_size: int | None
) -> None:
    schedule = plan_parts(part_size, alloc_size)
    assert schedule.capacity() >= 5 * TiB


@pytest.mark.parametrize("first", FIRST_SIZES)
def test_parts_stay_within_s3_bounds_and_never_shrink(first: int) -> None:
    schedule = PartSchedule.plan(first)
    sizes = [schedule.size(n) for n in range(1, 10_001)]
    assert min(sizes) >= 5 * MiB
    assert max(sizes) <= 5 * GiB
    assert sizes == sorted(sizes)


def test_default_schedule_is_eight_mib_doubling_every_thousand_parts() -> None:
    schedule = plan_parts(None, None)
    assert (schedule.first, schedule.hold, schedule.step) == (8 * MiB, 1000, 1000)
    assert [schedule.size(n) for n in (1, 1000, 1001, 2001, 9001, 10_000)] == [
        8 * MiB,
        8 * MiB,
        16 * MiB,
        32 * MiB,
        4 * GiB,
        4 * GiB,
    ]


def test_minimum_first_part_grows_sooner_to_still_fit() -> None:
    schedule = PartSchedule.plan(5 * MiB)
    assert schedule.step < 1000
    assert PartSchedule(5 * MiB, 1000, 1000).capacity() < 5 * TiB


def test_objects_past_the_original_80_gib_limit_upload_without_alloc_size() -> None:
    sizes = parts_needed(plan_parts(None, None), 500 * GiB)
    assert len(sizes) <= 10_000
    assert max(sizes) <= 512 * MiB


def test_accurate_alloc_size_keeps_the_first_part_size_to_the_end() -> None:
    schedule = plan_parts(None, 1 * TiB)
    sizes = parts_needed(schedule, 1 * TiB)
    assert len(sizes) <= 9000
    assert set(sizes[:-1]) == {schedule.first}
    assert schedule.first == 117 * MiB  # 1 TiB / 9,000 rounded up to a MiB


def test_object_larger_than_announced_still_fits() -> None:
    schedule = plan_parts(None, 10 * GiB)
    assert len(parts_needed(schedule, 5 * TiB)) <= 10_000


def test_small_alloc_size_does_not_shrink_the_part_size() -> None:
    assert first_part_size(None, 1000) == 8 * MiB
    assert first_part_size(6 * MiB, 10 * MiB) == 6 * MiB


def test_part_size_parameter_is_clamped_to_s3_bounds() -> None:
    assert first_part_size(1, None) == AWS_LIMITS.min_part_size
    assert first_part_size(10 * GiB, None) == AWS_LIMITS.max_part_size


def test_in_flight_parts_keep_memory_bounded_as_parts_grow() -> None:
    assert in_flight_parts(8 * MiB) == 8
    assert in_flight_parts(32 * MiB) == 2
    assert in_flight_parts(4 * GiB) == 1
    assert max(in_flight_parts(s) * s for s in (8 * MiB, 16 * MiB, 32 * MiB)) <= 64 * MiB


def test_small_test_limits_give_a_fast_growing_schedule() -> None:
    limits = S3Limits(
        min_part_size=1024, max_part_size=64 * 1024, max_parts=40, max_object_size=400 * 1024
    )
    schedule = PartSchedule.plan(1024, limits=limits)
    assert schedule.capacity() >= 400 * 1024
    assert schedule.size(40) <= 64 * 1024
    assert schedule.size(schedule.hold + 1) == 2048
