"""The order `palhm restore` and `palhm drill` restore objects in (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from palhm.manifest import ObjectRecord
from palhm.model import BackupObject, BackupTask, Exec, ObjectGroup
from palhm.ops.restore import restore_order

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAT = (Exec(argv=("cat",)),)


def record(path: str) -> ObjectRecord:
    return ObjectRecord(path, 1, "none", None, NOW, NOW, ())


def task(objects: list[tuple[str, str]], groups: list[ObjectGroup]) -> BackupTask:
    return BackupTask(
        id="t",
        backend="null",
        objects=tuple(BackupObject(path, CAT, group=group) for path, group in objects),
        groups=tuple(groups),
    )


def test_groups_go_in_dependency_order_and_objects_in_config_order_within_a_group() -> None:
    # a diamond: top after left and right, both after base; declared top first
    groups = [
        ObjectGroup("top", ("left", "right")),
        ObjectGroup("right", ("base",)),
        ObjectGroup("left", ("base",)),
        ObjectGroup("base"),
    ]
    the_task = task(
        [("t1", "top"), ("r1", "right"), ("l1", "left"), ("b2", "base"), ("b1", "base")],
        groups,
    )
    # the manifest lists them in completion order, not config order
    records = [record(p) for p in ("b1", "l1", "b2", "r1", "t1")]

    order = [(group, r.path) for group, r in restore_order(the_task, records)]

    assert order == [
        ("base", "b2"),
        ("base", "b1"),
        ("right", "r1"),
        ("left", "l1"),
        ("top", "t1"),
    ]


def test_objects_the_config_no_longer_names_go_with_the_default_group_last_in_it() -> None:
    the_task = task([("a", "default"), ("late", "after")], [ObjectGroup("after", ("default",))])
    records = [record(p) for p in ("late", "gone", "a")]

    order = [(group, r.path) for group, r in restore_order(the_task, records)]

    assert order == [("default", "a"), ("default", "gone"), ("after", "late")]


def test_only_the_selected_records_are_ordered() -> None:
    the_task = task([("a", "default"), ("b", "default")], [])

    order = [r.path for _, r in restore_order(the_task, [record("b")])]

    assert order == ["b"]
