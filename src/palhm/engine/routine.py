"""Routine tasks: items run one after another; the first failure stops the task.

Items are numbered from 1 in messages ("task 'update', item 2: ..."), like pipeline
stages. An exec item is one process (execute.run_command); a task pointer goes back
to the caller's task runner; a builtin runs in palhm itself (builtins.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

from palhm import records
from palhm.engine import interrupts
from palhm.engine.builtins import run_builtin
from palhm.engine.execute import run_command
from palhm.errors import Cancelled
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
        run_item(
            item,
            context=f"task '{task.id}', item {index}",
            run_task=run_task,
            verbosity=verbosity,
        )


def run_item(
    item: RoutineItem,
    *,
    context: str,
    run_task: Callable[[str], None],
    verbosity: int,
    cancel: threading.Event | None = interrupts.CANCEL,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run one routine item (or a command hook: hooks.py passes its own `cancel`, which
    a signal sets only after the clean-up grace, and `env`, the PALHM_* variables).

    Raises what run_command, run_task or the builtin raised; Interrupted instead of
    Cancelled when a signal stopped an item run under interrupts.CANCEL.
    """
    if isinstance(item, Exec):
        if env:
            item = records.replace(item, env=MappingProxyType({**item.env, **env}))
        try:
            run_command(item, context=context, verbosity=verbosity, cancel=cancel)
        except Cancelled:
            if cancel is interrupts.CANCEL:
                interrupts.check()  # Interrupted(signal) if a signal set CANCEL
            raise
    elif isinstance(item, TaskRef):
        log.debug("%s: running task '%s'", context, item.task_id)
        run_task(item.task_id)
    elif isinstance(item, Builtin):
        run_builtin(item, context=context)
