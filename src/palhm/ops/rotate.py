"""`palhm rotate TASK [-n]`: rotation alone (doc/operations.md#rotate).

Lists the task's copies, plans as a backup run would after its commit, and removes
the copies the plan drops and the incomplete copies crashed runs left, under the
root's lock. Meant for a host with delete rights when backup hosts write only
(`delete: delegated`, doc/aws.md). The newest copy is always kept. `-n` prints the
plan and removes nothing (no lock: it only reads, like `list`).
"""

from __future__ import annotations

from palhm.backends.base import Backend
from palhm.engine.backup import task_lock
from palhm.engine.rotating import remove_incomplete, rotate_task
from palhm.engine.rotation import RotationPlan
from palhm.model import BackupTask, Config
from palhm.ops.operations import existing_backend


def rotate(config: Config, task: BackupTask, *, dry_run: bool) -> str:
    """Rotate the task's copies (or only plan it); the report to print."""
    backend = existing_backend(config, task)
    if dry_run:
        incomplete = remove_incomplete(backend, task, dry_run=True)
        plan = rotate_task(backend, task, dry_run=True)
    else:
        with task_lock(backend, task):  # this host deletes: a refusal is an error
            incomplete = remove_incomplete(backend, task, delegate=False)
            plan = rotate_task(backend, task, delegate=False)
    return report_text(task, backend, plan, incomplete, dry_run=dry_run)


def report_text(
    task: BackupTask,
    backend: Backend,
    plan: RotationPlan,
    incomplete: list[str],
    *,
    dry_run: bool,
) -> str:
    """One line per copy, oldest first: keep or remove, and why."""
    verb = ("would remove", "would keep") if dry_run else ("removed", "kept")
    rows = sorted(
        [(d.copy.prefix, verb[0], ", ".join(d.reasons)) for d in plan.remove]
        + [(d.copy.prefix, verb[1], ", ".join(d.reasons)) for d in plan.keep]
    )
    width = max((len(what) for _, what, _ in rows), default=0)
    title = "rotation plan (nothing removed)" if dry_run else "rotation"
    lines = [f"task '{task.id}': {title} of {backend.describe()}, oldest first"]
    lines.extend(f"{what:<{width}}  {prefix}  {why}" for prefix, what, why in rows)
    lines.extend(f"{verb[0]} incomplete copy {location}" for location in incomplete)
    done = "would be removed" if dry_run else "removed"
    lines.append(
        f"{len(plan.remove)} of {len(plan.remove) + len(plan.keep)} counted copies {done},"
        f" {len(incomplete)} incomplete"
    )
    return "\n".join(lines) + "\n"
