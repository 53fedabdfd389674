"""Routine tasks (SPEC A4): items run one after another; the first failure stops the task.

Items are numbered from 1 in messages ("task 'update', item 2: ..."), like pipeline
stages. An exec item is one process (execute.run_command); a task pointer goes back
to the caller's task runner; a builtin runs in palhm itself (builtins.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from palhm import interrupts
from palhm.builtins import run_builtin
from palhm.errors import Cancelled
from palhm.execute import run_command
from palhm.model import Builtin, Exec, RoutineItem, RoutineTask, TaskRef

log = logging.getLogger(__name__)


def run_routine(task: RoutineTask, *, run_task: Callable[[str], None], verbosity: int) -> None:
    """Run the items of `task` in order.

    `run_task(task_id)` runs a task pointer's target (the runner dispatches routine
    and backup tasks; cycles were rejected when the config was loaded).
    Raises CommandError for the first exec item that fails (naming the task, the
    item's number, its argv, status or signal, and its stderr's last lines),
    whatever run_task or a builtin raised, or errors.Interrupted when SIGINT/SIGTERM
    arrived (the running item's processes are terminated first).
    """
    for index, item in enumerate(task.items, start=1):
        interrupts.check()  # a signal between two items: start no more
        _run_item(task, index, item, run_task=run_task, verbosity=verbosity)


def _run_item(
    task: RoutineTask,
    index: int,
    item: RoutineItem,
    *,
    run_task: Callable[[str], None],
    verbosity: int,
) -> None:
    context = f"task '{task.id}', item {index}"
    if isinstance(item, Exec):
        try:
            run_command(item, context=context, verbosity=verbosity, cancel=interrupts.CANCEL)
        except Cancelled:
            interrupts.check()  # Interrupted(signal) if a signal set CANCEL
            raise
    elif isinstance(item, TaskRef):
        log.debug("%s: running task '%s'", context, item.task_id)
        run_task(item.task_id)
    elif isinstance(item, Builtin):
        run_builtin(item, context=context)
