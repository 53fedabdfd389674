"""Object groups as a DAG (doc/design.md#backups-objects-and-groups).

A group's objects may start once every object of every group it depends on
(transitively) has finished successfully. `GroupSchedule` hands out objects as they
become ready; the caller reports each finished object back. Groups are released in
dependency order by `graphlib.TopologicalSorter`, so diamonds are fine, and an empty
group is finished the moment it is released (a group depending only on empty groups
starts at once).

The implicit group `default` exists whenever an object names it without the config
declaring it. A schedule is built per run: running the same task twice builds two.
Not thread-safe: the scheduler thread owns it.
"""

from __future__ import annotations

import graphlib
from collections.abc import Sequence

from palhm.model import DEFAULT_GROUP, BackupObject, ObjectGroup


class GroupGraphError(ValueError):
    """Unknown, duplicate or cyclic groups (config validation reports these first)."""


def group_dependencies(
    groups: Sequence[ObjectGroup], objects: Sequence[BackupObject]
) -> dict[str, tuple[str, ...]]:
    """group id -> ids it depends on, with the implicit `default` group added.

    Raises GroupGraphError for a duplicate id, an unknown group (in `depends` or in an
    object's `group`) or a self-dependency.
    """
    deps: dict[str, tuple[str, ...]] = {}
    for group in groups:
        if group.id in deps:
            raise GroupGraphError(f"object group '{group.id}' is defined twice")
        deps[group.id] = tuple(group.depends)
    if DEFAULT_GROUP not in deps:
        deps[DEFAULT_GROUP] = ()
    for gid, depends in deps.items():
        for dep in depends:
            if dep == gid:
                raise GroupGraphError(f"object group '{gid}' depends on itself")
            if dep not in deps:
                raise GroupGraphError(f"object group '{gid}' depends on unknown group '{dep}'")
    for obj in objects:
        if obj.group not in deps:
            raise GroupGraphError(f"object '{obj.path}' names unknown group '{obj.group}'")
    return deps


def find_cycle(deps: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A dependency cycle as a path `[a, b, a]`, or None when the groups form a DAG."""
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError as error:
        cycle: list[str] = list(error.args[1])
        return cycle
    return None


class GroupSchedule:
    """Release objects in group dependency order (see module docstring)."""

    def __init__(self, groups: Sequence[ObjectGroup], objects: Sequence[BackupObject]) -> None:
        deps = group_dependencies(groups, objects)
        self._sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(deps)
        try:
            self._sorter.prepare()
        except graphlib.CycleError as error:
            path = " -> ".join(error.args[1])
            raise GroupGraphError(f"object groups form a cycle: {path}") from None
        self._members: dict[str, list[BackupObject]] = {gid: [] for gid in deps}
        for obj in objects:
            self._members[obj.group].append(obj)
        self._remaining = {gid: len(members) for gid, members in self._members.items()}

    def ready(self) -> list[BackupObject]:
        """Objects that may start now and were not handed out before."""
        released: list[BackupObject] = []
        while self._sorter.is_active():
            groups = self._sorter.get_ready()
            if not groups:
                break
            for gid in groups:
                if self._remaining[gid] == 0:
                    self._sorter.done(gid)  # empty: finished as soon as released
                released.extend(self._members[gid])
        return released

    def finished(self, obj: BackupObject) -> None:
        """Record that `obj` (handed out by `ready`) succeeded."""
        gid = obj.group
        self._remaining[gid] -= 1
        if self._remaining[gid] == 0:
            self._sorter.done(gid)

    @property
    def complete(self) -> bool:
        """Every object of every group has finished."""
        return not self._sorter.is_active()
