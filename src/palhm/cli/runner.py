"""Runs a task by id: dispatches routine and backup tasks (doc/design.md#routines,
#backups-objects-and-groups).

Task pointers in routines come back here, so a routine may run a backup task.
Notifications and metrics wrap every task run (hooks.run_with_hooks, doc/design.md#notifications).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from palhm.model import BackupTask, Config, RoutineTask

if TYPE_CHECKING:
    from palhm.notify.hooks import RunReport

log = logging.getLogger(__name__)


def run_task(
    config: Config,
    task_id: str,
    *,
    verbosity: int,
    on_report: Callable[[RunReport], None] | None = None,
) -> None:
    """Run one task. Raises PalhmError subclasses; the CLI maps them to exit statuses.
    `on_report` gets this task's final report (`run --json`), failed runs included."""
    from palhm.notify.hooks import run_with_hooks

    task = config.tasks[task_id]

    def run_pointer(pointed: str) -> None:
        run_task(config, pointed, verbosity=verbosity)

    run_with_hooks(
        config,
        task,
        lambda: _run(config, task, verbosity=verbosity),
        run_task=run_pointer,
        verbosity=verbosity,
        on_report=on_report,
    )
    log.info("task '%s': done", task_id)


def _run(config: Config, task: RoutineTask | BackupTask, *, verbosity: int) -> object:
    if isinstance(task, RoutineTask):
        _run_routine(config, task, verbosity=verbosity)
        return None
    return _run_backup(config, task, verbosity=verbosity)


def _run_routine(config: Config, task: RoutineTask, *, verbosity: int) -> None:
    from palhm.engine.routine import run_routine

    def run_pointer(task_id: str) -> None:
        run_task(config, task_id, verbosity=verbosity)

    run_routine(task, run_task=run_pointer, verbosity=verbosity)


def _run_backup(config: Config, task: BackupTask, *, verbosity: int) -> object:
    from palhm.engine.destinations import run_destinations

    return run_destinations(
        task, modules=config.modules, nb_workers=config.nb_workers, verbosity=verbosity
    )


def plan_text(config: Config, task_id: str, *, destination: str | None = None) -> str:
    """What `run --dry-run` prints: the plan, running nothing (`destination`: that
    destination's copy and rotation only)."""
    from palhm.ops.plan import describe_plan

    return describe_plan(config, task_id, destination=destination)
