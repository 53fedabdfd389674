"""`palhm run --dry-run`: what a run would do, described, with nothing run (doc/operations.md).

restic's `dryrun` idea: the engine has no `if dry_run:` branches; this module reads
the same model and asks the same pure planners (object-group graph, rotation) the
engine uses, plus the backend's read-only `list_copies`. No command is started,
nothing is written, no lock is taken.

For a backup task: the copy that would be made, the objects in dependency order
(waves of groups: a wave starts once every earlier wave is done), each stage's
command line with its env additions, accepted exit statuses and timeout, what
rotation would remove and why every other copy is kept, and the notifications.
For a routine: its items in order, task pointers expanded and indented.
"""

from __future__ import annotations

import graphlib
import os
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from palhm.backends.base import Backend, CopyInfo
from palhm.engine.backup import worker_count
from palhm.engine.graph import group_dependencies
from palhm.engine.pins import read_pins
from palhm.engine.progress import human_size
from palhm.engine.rotating import suspect_copies
from palhm.engine.rotation import RotationPlan, plan_rotation
from palhm.errors import BackendError
from palhm.model import (
    BackupObject,
    BackupTask,
    Builtin,
    Config,
    Exec,
    Hooks,
    RetentionPolicy,
    RoutineTask,
    TaskRef,
)
from palhm.notify.hooks import describe_hook
from palhm.ops.operations import open_backend
from palhm.prefix import make_prefix, parse_prefix
from palhm.records import replace
from palhm.values import DEFAULT_EC, signal_name

INDENT: Final = "  "


def describe_plan(
    config: Config, task_id: str, *, now: datetime | None = None, destination: str | None = None
) -> str:
    """The dry-run description of task `task_id` (known to exist). Runs nothing.

    `now` (aware) stands for the run's start time; default: the current time.
    `destination`: a backup task's plan on that destination only (UsageError when the
    task has none of that name); default: every destination.
    """
    moment = now if now is not None else datetime.now(UTC)
    task = config.tasks[task_id]
    if destination is not None:
        from palhm.ops.operations import at_destination, backup_task

        task = at_destination(backup_task(config, task_id), destination)
        config = replace(config, tasks={**config.tasks, task_id: task})
    lines = _task_lines(config, task_id, moment)
    lines.append("")
    lines.append("dry run: nothing was run or written")
    return "\n".join(lines) + "\n"


def _task_lines(config: Config, task_id: str, now: datetime) -> list[str]:
    task = config.tasks[task_id]
    if isinstance(task, BackupTask):
        lines = backup_lines(config, task, now)
    else:
        lines = routine_lines(config, task, now)
    lines.extend(hook_lines(task.hooks))
    if config.metrics_textfile is not None:
        lines.append(f"{INDENT}metrics: the result goes to {config.metrics_textfile}")
    return lines


# --------------------------------------------------------------------------- routine


def routine_lines(config: Config, task: RoutineTask, now: datetime) -> list[str]:
    """The routine's items, numbered; task pointers expanded below their item."""
    lines = [f"routine task '{task.id}': {len(task.items)} item(s), run one after another"]
    for number, item in enumerate(task.items, start=1):
        head = f"{INDENT}{number}. "
        if isinstance(item, TaskRef):
            nested = _task_lines(config, item.task_id, now)
            lines.append(head + nested[0])
            lines.extend(_indent(nested[1:], 2))
        elif isinstance(item, Builtin):
            lines.append(head + _builtin_text(item))
        else:
            lines.append(head + command_text(item))
            lines.extend(_indent(exec_details(item), 3))
    return lines


def _builtin_text(item: Builtin) -> str:
    if item.builtin_id != "sigmask":
        return f"builtin {item.builtin_id}"
    actions = [f"{a.action} {', '.join(signal_name(s) for s in a.signals)}" for a in item.sigmask]
    return f"builtin sigmask: {'; '.join(actions)}"


# --------------------------------------------------------------------------- backup


def backup_lines(config: Config, task: BackupTask, now: datetime) -> list[str]:
    """Copy location, objects by wave, rotation (on each destination)."""
    destinations = task.all_destinations()
    if len(destinations) > 1:
        return _destinations_lines(config, task, now)
    backend = open_backend(config, task)
    prefix = make_prefix(task.prefix, now)
    head = f"backup task '{task.id}': backend {task.backend}, checksum {task.checksum}"
    if task.backend == "null":  # discards the data: no copy, no lock, no rotation
        lines = [head, f"{INDENT}no copy: the null backend runs the pipelines, discards the data"]
        return lines + _indent(object_lines(task, config.nb_workers), 1)
    lines = [head, f"{INDENT}new copy: {_join(backend.describe(), prefix)}"]
    lines.extend(_indent(object_lines(task, config.nb_workers), 1))
    lines.extend(_indent(rotation_lines(backend, task, prefix, now), 1))
    return lines


def _destinations_lines(config: Config, task: BackupTask, now: datetime) -> list[str]:
    """A task with several destinations: the objects once, then each destination's
    new copy and rotation."""
    prefix = make_prefix(task.prefix, now)
    names = ", ".join(d.name for d in task.all_destinations())
    lines = [
        f"backup task '{task.id}': {len(task.all_destinations())} destinations ({names}),"
        f" require {task.require}, checksum {task.checksum}",
        f"{INDENT}each object's pipeline runs once; its bytes go to every destination",
    ]
    lines.extend(_indent(object_lines(task, config.nb_workers), 1))
    for destination in task.all_destinations():
        seen = task.at(destination)
        backend = open_backend(config, seen)
        lines.append(f"{INDENT}destination '{destination.name}' ({destination.backend}):")
        lines.append(f"{INDENT * 2}new copy: {_join(backend.describe(), prefix)}")
        lines.extend(_indent(rotation_lines(backend, seen, prefix, now), 2))
    return lines


def _join(root: str, prefix: str) -> str:
    return f"{root.rstrip('/')}/{prefix}/"


def group_waves(task: BackupTask) -> list[list[str]]:
    """Group ids in dependency order: each wave's groups depend only on earlier waves."""
    sorter = graphlib.TopologicalSorter(group_dependencies(task.groups, task.objects))
    sorter.prepare()
    declared = {g.id for g in task.groups} | {o.group for o in task.objects}
    waves: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        sorter.done(*ready)
        # the implicit group `default` is shown only when something uses it
        shown = [gid for gid in ready if gid in declared]
        if shown:
            waves.append(shown)
    return waves


def object_lines(task: BackupTask, nb_workers: int) -> list[str]:
    """The objects, grouped by wave and group, each with its pipeline."""
    deps = {g.id: g.depends for g in task.groups}
    lines = [f"objects: {len(task.objects)}, at most {_workers_text(nb_workers)} at a time"]
    for number, wave in enumerate(group_waves(task), start=1):
        lines.append(f"{INDENT}wave {number}:")
        for gid in wave:
            members = [o for o in task.objects if o.group == gid]
            after = f" after {', '.join(deps[gid])}" if deps.get(gid) else ""
            empty = " no objects" if not members else ""
            lines.append(f"{INDENT * 2}group {gid}{after}:{empty}")
            for obj in members:
                lines.extend(_indent(pipeline_lines(obj), 3))
    return lines


def _workers_text(nb_workers: int) -> str:
    count = worker_count(nb_workers)  # the engine's own reading of nb-workers
    if count is None:
        return f"{min(32, (os.cpu_count() or 1) + 4)} (Python's default)"
    return f"{count} (CPUs available)" if nb_workers == 0 else str(count)


def pipeline_lines(obj: BackupObject) -> list[str]:
    """`PATH:` then one line per stage, `| ` before every stage but the first."""
    hint = f" (alloc-size {human_size(obj.alloc_size)})" if obj.alloc_size else ""
    lines = [f"{obj.path}{hint}:"]
    for index, stage in enumerate(obj.pipeline):
        pipe = "| " if index else "  "
        lines.append(f"{INDENT}{pipe}{command_text(stage)}")
        lines.extend(_indent(exec_details(stage), 3))
    return lines


def command_text(cmd: Exec) -> str:
    """The argv as a shell would need it quoted (palhm itself runs no shell)."""
    label = f"  [exec {cmd.id}]" if cmd.id else ""
    return shlex.join(cmd.argv) + label


def exec_details(cmd: Exec) -> list[str]:
    """env additions, accepted exit statuses (when not ==0) and timeout of a command."""
    details = [f"env {name}={shlex.quote(value)}" for name, value in sorted(cmd.env.items())]
    if cmd.ec != DEFAULT_EC:
        details.append(f"accepts exit status {cmd.ec.text}")
    if cmd.timeout is not None:
        details.append(f"timeout {cmd.timeout:g} s")
    return details


# --------------------------------------------------------------------------- rotation


def rotation_lines(backend: Backend, task: BackupTask, prefix: str, now: datetime) -> list[str]:
    """What rotation would remove and why each copy is kept, after this run."""
    lines = [f"rotation: {policy_text(task.retention)}"]
    try:
        copies = backend.list_copies()
    except BackendError as error:
        return [*lines, f"{INDENT}cannot list the existing copies: {error}"]
    if not copies:
        return [*lines, f"{INDENT}{_no_copies_text(backend)}"]
    if any(c.prefix == prefix for c in copies):
        lines.append(f"{INDENT}a copy named {prefix} exists: the run would stop (collision)")
        return lines
    planned = _planned_copy(backend, task, prefix)
    plan = plan_rotation(
        [*copies, planned],
        task.retention,
        current=prefix,
        now=now.astimezone(),
        suspect=suspect_copies(backend, copies),
        pinned=read_pins(backend),
    )
    lines.extend(_indent(decision_lines(plan, prefix, copies), 1))
    return lines


def _no_copies_text(backend: Backend) -> str:
    root = getattr(backend, "root", None)  # localfs: a directory that may not exist yet
    if isinstance(root, Path) and not root.exists():
        return f"{root} does not exist yet: the run would create it"
    return f"no copies yet in {backend.describe()}: nothing to remove"


def _planned_copy(backend: Backend, task: BackupTask, prefix: str) -> CopyInfo:
    # Its size is unknown before the run: the alloc-size hints are the best estimate.
    estimate = sum(o.alloc_size or 0 for o in task.objects)
    return CopyInfo(
        prefix, "complete", estimate, len(task.objects), _join(backend.describe(), prefix)
    )


def decision_lines(plan: RotationPlan, current: str, copies: Sequence[CopyInfo]) -> list[str]:
    """One line per copy, oldest first: keep/remove with the rule or limit deciding."""
    decisions = [("keep", d) for d in plan.keep] + [("remove", d) for d in plan.remove]
    decisions.sort(key=lambda entry: _when(entry[1].copy))
    lines = []
    for verb, decision in decisions:
        copy = decision.copy
        size = "new copy" if copy.prefix == current else human_size(copy.size)
        state = " legacy" if copy.state == "legacy" else ""
        lines.append(f"{verb:<6} {copy.prefix}{state} ({size}): {', '.join(decision.reasons)}")
    for copy in copies:
        if not copy.counted:
            lines.append(
                f"remove {copy.prefix} incomplete ({human_size(copy.size)}): left by an "
                "interrupted or failed run"
            )
    return lines


def _when(copy: CopyInfo) -> tuple[datetime, str]:
    return (parse_prefix(copy.prefix) or datetime.min.replace(tzinfo=UTC), copy.prefix)


def policy_text(policy: RetentionPolicy) -> str:
    """`keep-daily 7, keep-monthly 12, nb-copy-limit 30` (set rules only)."""
    rules = [
        ("keep-last", policy.keep_last),
        ("keep-hourly", policy.keep_hourly),
        ("keep-daily", policy.keep_daily),
        ("keep-weekly", policy.keep_weekly),
        ("keep-monthly", policy.keep_monthly),
        ("keep-yearly", policy.keep_yearly),
    ]
    parts = [f"{name} {value}" for name, value in rules if value is not None]
    if policy.keep_within is not None:
        parts.insert(0, f"keep-within {policy.keep_within}")
    for name, limit in (
        ("nb-copy-limit", policy.nb_copy_limit),
        ("root-size-limit", policy.root_size_limit),
    ):
        if not limit.infinite:
            parts.append(f"{name} {limit}")
    return ", ".join(parts) if parts else "no limits: every copy is kept"


# --------------------------------------------------------------------------- helpers


def hook_lines(hooks: Hooks) -> list[str]:
    """The notifications of a task, by event."""
    lines: list[str] = []
    for event, items in (
        ("on-start", hooks.on_start),
        ("on-success", hooks.on_success),
        ("on-failure", hooks.on_failure),
        ("finally", hooks.always),
    ):
        lines.extend(f"{INDENT}{event}: {describe_hook(hook)}" for hook in items)
    return lines


def _indent(lines: Sequence[str], levels: int) -> list[str]:
    pad = INDENT * levels
    return [pad + line for line in lines]
