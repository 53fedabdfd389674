"""`palhm drill TASK`: prove that the newest complete copy restores (doc/restore.md).

A drill, in order:
1. finds the newest complete copy (no copy: the drill fails, nothing is set up);
2. makes a work directory (0711, see make_work_dir) for this drill: every drill
   command gets its path as PALHM_DRILL_DIR and may write `{drill-dir}` in its argv
   or in the drill's `env` values, where palhm puts the path;
3. runs `set-up` commands one after another;
4. restores every object of the copy in dependency order: through its
   `drill.restore` pipeline; else through its `restore` pipeline only when the
   drill says `use-restore-pipelines` (the config's statement that those reach the
   throwaway target); else the object is read and checked against the manifest
   only. So a drill never feeds production unless the config says so;
5. runs `checks`: each command's exit status must be accepted (`expect-status`,
   else its `ec`) and its stdout must match `expect-output` when given;
6. runs every `tear-down` command, always (also after a failure or a signal), then
   removes the work directory.

The result goes to the drill's hooks (else the task's), the metrics textfile
(palhm_last_drill_*) and the exit status (1 when the drill failed, naming the phase,
the object and the stage).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

from palhm import records
from palhm.backends.base import Backend
from palhm.engine.execute import Supervisor, run_command
from palhm.errors import PalhmError, UsageError, format_argv
from palhm.model import BackupTask, Config, Drill, DrillCheck, Exec, Hooks
from palhm.notify.hooks import run_with_hooks
from palhm.notify.metrics import DrillMetrics, update_drill_textfile
from palhm.ops.restore import Plan, Step, open_copy, restore_order, restore_step

log = logging.getLogger(__name__)

DRILL_DIR_TOKEN: Final = "{drill-dir}"
DRILL_DIR_VARIABLE: Final = "PALHM_DRILL_DIR"
WORK_DIR_MODE: Final = 0o711
OUTPUT_LIMIT: Final = 4 << 20  # bytes of a check's stdout searched for its pattern
_SHOWN_OUTPUT: Final = 10  # lines of a check's output quoted when it does not match


class DrillError(PalhmError):
    """A drill failed: the message names the phase (set-up, restore, check, tear-down)."""


# --------------------------------------------------------------------------- planning


def drill_of(task: BackupTask) -> Drill:
    if task.drill is None:
        raise UsageError(f"task '{task.id}' has no 'drill' section (see doc/restore.md)")
    return task.drill


def drill_steps(task: BackupTask, plan_records: Plan) -> Plan:
    """The copy's objects in dependency order, each with its drill pipeline (or none:
    checked only)."""
    drill = drill_of(task)
    by_path = {obj.path: obj for obj in task.objects}
    steps = []
    for group, record in restore_order(task, [s.record for s in plan_records.steps]):
        obj = by_path.get(record.path)
        stages: tuple[Exec, ...] = ()
        if obj is not None:
            stages = obj.drill_restore or (obj.restore if drill.use_restore_pipelines else ())
        steps.append(Step(record, group, stages))
    return records.replace(plan_records, steps=tuple(steps))


def _plan(config: Config, task: BackupTask) -> tuple[Backend, Plan]:
    backend, copy, manifest = open_copy(config, task, "latest")
    records = tuple(Step(r, "", ()) for r in manifest.objects)
    plan = Plan(task, copy, backend.describe(), records, ())
    return backend, drill_steps(task, plan)


def plan_text(config: Config, task: BackupTask) -> str:
    """What `drill --dry-run` prints: every command in order, the copy it would use."""
    drill = drill_of(task)
    _, plan = _plan(config, task)
    lines = [f"task '{task.id}': drill of copy {plan.copy.prefix} from {plan.location}"]
    lines.extend(f"  set-up {i}: {format_argv(c.argv)}" for i, c in enumerate(drill.set_up, 1))
    for step in plan.steps:
        how = " | ".join(format_argv(s.argv) for s in step.stages) or "read and check only"
        lines.append(f"  restore {step.record.path} (group '{step.group}'): {how}")
    for check in drill.checks:
        expect = f", output matching /{check.expect_output}/" if check.expect_output else ""
        lines.append(
            f"  {check.name}: {format_argv(check.command.argv)}"
            f" (status {check.command.ec.text}{expect})"
        )
    lines.extend(
        f"  tear-down {i}: {format_argv(c.argv)}" for i, c in enumerate(drill.tear_down, 1)
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running


def run_drill(
    config: Config, task: BackupTask, *, verbosity: int, cancel: threading.Event | None = None
) -> str:
    """Run the drill, report it (hooks, metrics); return the report or raise.

    The hooks are fired by hooks.run_with_hooks for a stand-in task named
    `TASK (drill)` that carries the drill's hooks (else the task's on-success and
    on-failure); the run metrics are left alone and the drill series written here.
    """
    drill = drill_of(task)
    hooks = drill.hooks if drill.hooks is not None else task.hooks
    stand_in = records.replace(
        task,
        id=f"{task.id} (drill)",
        hooks=Hooks(on_success=hooks.on_success, on_failure=hooks.on_failure),
    )
    quiet = records.replace(config, metrics_textfile=None)
    start = time.monotonic()
    success = False
    try:
        lines = run_with_hooks(
            quiet, stand_in, lambda: _run(config, task, drill, verbosity, cancel)
        )
        success = True
    finally:
        duration = time.monotonic() - start
        _write_metrics(config, task, duration, success)
    return "\n".join([f"task '{task.id}': drill passed in {duration:.1f} s", *lines]) + "\n"


def _write_metrics(config: Config, task: BackupTask, duration: float, success: bool) -> None:
    if config.metrics_textfile is None:
        return
    metrics = DrillMetrics(task.id, time.time(), duration, success)
    try:
        update_drill_textfile(config.metrics_textfile, metrics)
    except OSError as error:
        where = config.metrics_textfile
        log.warning("task '%s': cannot write metrics to %s: %s", task.id, where, error)


def _text(error: BaseException) -> str:
    if isinstance(error, PalhmError):
        return "\n".join(error.lines())
    return f"{type(error).__name__}: {error}"


def _run(
    config: Config,
    task: BackupTask,
    drill: Drill,
    verbosity: int,
    cancel: threading.Event | None,
) -> list[str]:
    backend, plan = _plan(config, task)  # no complete copy: fail before any set-up
    work = make_work_dir(task)
    env = {DRILL_DIR_VARIABLE: str(work)}
    env.update({k: v.replace(DRILL_DIR_TOKEN, str(work)) for k, v in drill.env.items()})
    lines = [f"  copy {plan.copy.prefix} from {plan.location}", f"  work directory {work}"]
    runner = _Runner(task, work, env, verbosity, cancel, lines)
    try:
        try:
            runner.guarded(lambda: runner.main(drill, backend, plan))
        finally:  # also after an error that is not palhm's (a bug, MemoryError ...)
            runner.tear_down(drill.tear_down)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # palhm made it, for this drill only
    runner.raise_first()
    return lines


def make_work_dir(task: BackupTask) -> Path:
    """A new directory under the temp dir ($TMPDIR), mode 0711: only palhm (root) can
    list it, while servers that drop to their own user (postgres, mysql) can reach
    the sub-directories a set-up command made for them."""
    parent = Path(tempfile.gettempdir())
    while True:
        path = parent / f"palhm-drill-{_safe(task.id)}-{secrets.token_hex(6)}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, WORK_DIR_MODE)  # exactly, whatever the umask; it is still empty
        return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40]


@records.record(frozen=False)
class _Runner:
    task: BackupTask
    work: Path
    env: dict[str, str]
    verbosity: int
    cancel: threading.Event | None
    lines: list[str]
    errors: list[BaseException] = records.field(default_factory=list)

    def guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (PalhmError, KeyboardInterrupt) as error:
            self.errors.append(error)

    def main(self, drill: Drill, backend: Backend, plan: Plan) -> None:
        for index, command in enumerate(drill.set_up, 1):
            self.command(command, f"set-up {index}")
        for step in plan.steps:
            self.restore(backend, plan, step)
        for check in drill.checks:
            self.check(check)

    def prepared(self, command: Exec) -> Exec:
        """`command` with the drill's env added and `{drill-dir}` replaced."""
        token, path = DRILL_DIR_TOKEN, str(self.work)
        env = {k: v.replace(token, path) for k, v in command.env.items()}
        return records.replace(
            command,
            argv=tuple(arg.replace(token, path) for arg in command.argv),
            env=MappingProxyType({**env, **self.env}),
        )

    def context(self, what: str) -> str:
        return f"task '{self.task.id}', drill, {what}"

    def command(self, command: Exec, what: str, *, cancellable: bool = True) -> None:
        context = self.context(what)
        cancel = self.cancel if cancellable else None
        try:
            prepared = self.prepared(command)
            run_command(prepared, context=context, verbosity=self.verbosity, cancel=cancel)
        except PalhmError as error:
            raise DrillError(f"drill failed at {what}: {error}") from None
        self.lines.append(f"  ok  {what}: {format_argv(command.argv)}")

    def restore(self, backend: Backend, plan: Plan, step: Step) -> None:
        stages = tuple(self.prepared(s) for s in step.stages)
        prepared = records.replace(step, stages=stages)
        try:
            line = restore_step(
                backend, plan, prepared, to_dir=None, verbosity=self.verbosity, cancel=self.cancel
            )
        except PalhmError as error:
            raise DrillError(f"drill failed at restore of '{step.record.path}': {error}") from None
        self.lines.append(f"  {line}")

    def check(self, check: DrillCheck) -> None:
        context = self.context(check.name)
        try:
            output = run_check(
                self.prepared(check.command),
                context=context,
                verbosity=self.verbosity,
                cancel=self.cancel,
            )
        except PalhmError as error:
            raise DrillError(f"drill failed at {check.name}: {error}") from None
        if check.expect_output is not None and not re.search(
            check.expect_output, output, re.MULTILINE
        ):
            raise DrillError(
                f"drill failed at {check.name}: {context}: output does not match"
                f" /{check.expect_output}/; it was:\n{_quote(output)}"
            )
        self.lines.append(f"  ok  {check.name}: {format_argv(check.command.argv)}")

    def tear_down(self, commands: Sequence[Exec]) -> None:
        """Every command, whatever happened before -- a signal included, so these are
        not cancelled (give them a `timeout`); failures are collected."""
        for index, command in enumerate(commands, 1):
            what = f"tear-down {index}"
            self.guarded(lambda c=command, w=what: self.command(c, w, cancellable=False))  # type: ignore[misc]

    def raise_first(self) -> None:
        if not self.errors:
            return
        first, *others = self.errors
        for other in others:  # tear-down failures after the real one: still worth knowing
            log.error("task '%s': also: %s", self.task.id, _text(other).splitlines()[0])
        if isinstance(first, KeyboardInterrupt):
            raise first
        raise first


def _quote(output: str) -> str:
    lines = output.splitlines()[:_SHOWN_OUTPUT] or ["(no output)"]
    return "\n".join("  | " + line for line in lines)


def run_check(
    command: Exec, *, context: str, verbosity: int, cancel: threading.Event | None
) -> str:
    """Run one check command; return (the first OUTPUT_LIMIT bytes of) its stdout as
    text. Raises CommandError when its status is not accepted (with its stderr tail)."""
    with tempfile.TemporaryFile() as out:
        with Supervisor(context=context, verbosity=verbosity, cancel=cancel) as run:
            run.start(command, stdin=None, stdout=out.fileno())
            run.watch(None)
            run.finish(kill_strays=False)
        out.seek(0)
        data = out.read(OUTPUT_LIMIT)
    text = data.decode(errors="replace")
    if verbosity >= command.vl_stdout + 1:
        log.debug("%s: output:\n%s", context, text.rstrip())
    run.raise_failure()
    return text
