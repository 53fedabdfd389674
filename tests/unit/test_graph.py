"""Object-group DAG scheduling (doc/design.md#backups-objects-and-groups)."""

from __future__ import annotations

import pytest

from palhm.engine.graph import GroupGraphError, GroupSchedule, find_cycle, group_dependencies
from palhm.model import BackupObject, Exec, ObjectGroup

CAT = (Exec(("cat",)),)


def obj(path: str, group: str = "default") -> BackupObject:
    return BackupObject(path=path, pipeline=CAT, group=group)


def run_in_waves(schedule: GroupSchedule) -> list[set[str]]:
    """Finish every ready object at once, wave after wave; the waves in order."""
    waves: list[set[str]] = []
    while ready := schedule.ready():
        waves.append({o.path for o in ready})
        for o in ready:
            schedule.finished(o)
    return waves


def test_objects_of_the_implicit_default_group_start_at_once() -> None:
    schedule = GroupSchedule((), (obj("a"), obj("b")))
    assert run_in_waves(schedule) == [{"a", "b"}]
    assert schedule.complete


def test_diamond_runs_in_dependency_order() -> None:
    groups = (
        ObjectGroup("a"),
        ObjectGroup("b", ("a",)),
        ObjectGroup("c", ("a",)),
        ObjectGroup("d", ("b", "c")),
    )
    objects = (obj("d1", "d"), obj("b1", "b"), obj("c1", "c"), obj("a1", "a"), obj("a2", "a"))
    schedule = GroupSchedule(groups, objects)
    assert run_in_waves(schedule) == [{"a1", "a2"}, {"b1", "c1"}, {"d1"}]


def test_a_group_waits_for_every_object_of_its_dependencies() -> None:
    schedule = GroupSchedule(
        (ObjectGroup("late", ("default",)),), (obj("x"), obj("y"), obj("z", "late"))
    )
    first = schedule.ready()
    assert {o.path for o in first} == {"x", "y"}
    schedule.finished(first[0])
    assert schedule.ready() == []  # y still running
    schedule.finished(first[1])
    assert [o.path for o in schedule.ready()] == ["z"]


def test_group_depending_only_on_empty_groups_starts_at_once() -> None:
    groups = (
        ObjectGroup("empty1"),
        ObjectGroup("empty2", ("empty1",)),
        ObjectGroup("g", ("empty2",)),
    )
    schedule = GroupSchedule(groups, (obj("x", "g"),))
    assert run_in_waves(schedule) == [{"x"}]
    assert schedule.complete


def test_task_without_objects_is_complete_at_once() -> None:
    schedule = GroupSchedule((ObjectGroup("g"),), ())
    assert schedule.ready() == []
    assert schedule.complete


def test_independent_chains_do_not_wait_for_each_other() -> None:
    groups = (ObjectGroup("a"), ObjectGroup("a2", ("a",)), ObjectGroup("b"))
    schedule = GroupSchedule(groups, (obj("a1", "a"), obj("a21", "a2"), obj("b1", "b")))
    first = {o.path: o for o in schedule.ready()}
    assert set(first) == {"a1", "b1"}
    schedule.finished(first["a1"])
    assert [o.path for o in schedule.ready()] == ["a21"]  # b1 still running: no matter


def test_cycle_is_reported_as_a_path() -> None:
    groups = (ObjectGroup("a", ("c",)), ObjectGroup("b", ("a",)), ObjectGroup("c", ("b",)))
    with pytest.raises(GroupGraphError, match="cycle: ([abc]) -> [abc] -> [abc] -> \\1"):
        GroupSchedule(groups, ())
    cycle = find_cycle(group_dependencies(groups, ()))
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


def test_a_dag_has_no_cycle() -> None:
    groups = (ObjectGroup("a"), ObjectGroup("b", ("a",)), ObjectGroup("c", ("a", "b")))
    assert find_cycle(group_dependencies(groups, ())) is None


@pytest.mark.parametrize(
    ("groups", "objects", "message"),
    [
        ((ObjectGroup("a"), ObjectGroup("a")), (), "defined twice"),
        ((ObjectGroup("a", ("a",)),), (), "depends on itself"),
        ((ObjectGroup("a", ("nope",)),), (), "unknown group 'nope'"),
        ((), (obj("x", "nope"),), "object 'x' names unknown group 'nope'"),
    ],
)
def test_bad_groups_are_refused(
    groups: tuple[ObjectGroup, ...], objects: tuple[BackupObject, ...], message: str
) -> None:
    with pytest.raises(GroupGraphError, match=message):
        GroupSchedule(groups, objects)


def test_a_declared_default_group_may_have_dependencies() -> None:
    groups = (ObjectGroup("first"), ObjectGroup("default", ("first",)))
    schedule = GroupSchedule(groups, (obj("later"), obj("early", "first")))
    assert run_in_waves(schedule) == [{"early"}, {"later"}]
