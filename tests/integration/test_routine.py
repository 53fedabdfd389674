"""Routine tasks with real processes: order, first failure stops, pointers, sigmask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from palhm.engine import interrupts
from palhm.engine.routine import run_routine
from palhm.errors import CommandError, Interrupted, PalhmError
from palhm.model import Builtin, RoutineItem, RoutineTask, TaskRef
from tests.integration.execute_support import bounded, ex, py, wait_for_file, wait_gone

REPO = Path(__file__).resolve().parents[2]


def append(log: Path, text: str) -> RoutineItem:
    return ex("sh", "-c", f"echo {text} >> {log}")


def routine(*items: RoutineItem, task_id: str = "r") -> RoutineTask:
    return RoutineTask(id=task_id, items=items)


def no_pointers(task_id: str) -> None:
    raise AssertionError(f"unexpected task pointer {task_id}")


def test_items_run_in_order(tmp_path: Path) -> None:
    log = tmp_path / "log"
    task = routine(append(log, "one"), append(log, "two"), append(log, "three"))
    run_routine(task, run_task=no_pointers, verbosity=0)
    assert log.read_text() == "one\ntwo\nthree\n"


def test_first_failure_stops_the_task_and_names_everything(tmp_path: Path) -> None:
    log = tmp_path / "log"
    failing = py("import sys; print('cannot reach mirror', file=sys.stderr); sys.exit(7)")
    task = routine(append(log, "one"), failing, append(log, "three"), task_id="update")
    with pytest.raises(CommandError) as caught:
        run_routine(task, run_task=no_pointers, verbosity=0)
    assert log.read_text() == "one\n"
    message = str(caught.value)
    assert message.startswith(f"task 'update', item 2: {sys.executable} -c ")
    assert "exited with status 7" in message
    assert message.endswith("  | cannot reach mirror")


def test_killed_item_is_reported_by_signal(tmp_path: Path) -> None:
    task = routine(ex("sh", "-c", "kill -KILL $$", ec=">=0"))
    with pytest.raises(CommandError) as caught:
        run_routine(task, run_task=no_pointers, verbosity=0)
    assert str(caught.value).startswith("task 'r', item 1: sh -c 'kill -KILL $$' killed by SIGKILL")


def test_accepted_nonzero_status_continues(tmp_path: Path) -> None:
    log = tmp_path / "log"
    task = routine(ex("sh", "-c", "exit 1", ec="<2"), append(log, "after"))
    run_routine(task, run_task=no_pointers, verbosity=0)
    assert log.read_text() == "after\n"


def test_task_pointers_run_through_the_callback_in_order(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def run_task(task_id: str) -> None:
        log.open("a").write(f"task {task_id}\n")

    task = routine(append(log, "first"), TaskRef("backup"), append(log, "last"), TaskRef("x"))
    run_routine(task, run_task=run_task, verbosity=0)
    assert log.read_text() == "first\ntask backup\nlast\ntask x\n"


def test_failing_pointer_stops_the_task(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def run_task(task_id: str) -> None:
        raise CommandError(f"task '{task_id}', item 1", ["false"], "exited with status 1")

    task = routine(TaskRef("inner"), append(log, "never"))
    with pytest.raises(CommandError, match="task 'inner', item 1"):
        run_routine(task, run_task=run_task, verbosity=0)
    assert not log.exists()


def test_item_output_follows_verbosity(capfd: pytest.CaptureFixture[str]) -> None:
    task = routine(py("import sys; print('out-line'); print('err-line', file=sys.stderr)"))
    run_routine(task, run_task=no_pointers, verbosity=1)
    quiet = capfd.readouterr()
    run_routine(task, run_task=no_pointers, verbosity=3)
    loud = capfd.readouterr()
    assert "out-line" not in quiet.out and "err-line" in quiet.err
    assert "out-line" in loud.out and "err-line" in loud.err


@pytest.mark.usefixtures("handlers")
def test_signal_between_items_stops_before_the_next_one(tmp_path: Path) -> None:
    log = tmp_path / "log"
    os.kill(os.getpid(), signal.SIGTERM)
    assert interrupts.CANCEL.wait(60)
    with pytest.raises(Interrupted):
        run_routine(routine(append(log, "never")), run_task=no_pointers, verbosity=0)
    assert not log.exists()


@pytest.mark.usefixtures("handlers")
def test_signal_during_an_item_terminates_it_and_raises_interrupted(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    item = ex("sh", "-c", f"echo $$ > {ready}; exec sleep 100")

    def interrupt_when_started() -> None:
        wait_for_file(ready)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(Interrupted) as caught:
        bounded(lambda: run_routine(routine(item), run_task=no_pointers, verbosity=0))
    assert caught.value.signum == signal.SIGINT
    assert wait_gone(int(ready.read_text()))


def run_isolated(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a routine in a fresh interpreter: sigmask must not touch the test process."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sigblk(status_text: str) -> int:
    line = next(line for line in status_text.splitlines() if line.startswith("SigBlk:"))
    return int(line.split()[1], 16)


def bit(signum: int) -> int:
    return 1 << (signum - 1)


def test_sigmask_blocks_signals_for_palhm_and_later_items(tmp_path: Path) -> None:
    child_status = tmp_path / "child-status"
    code = f"""
        import signal
        from palhm.model import Builtin, Exec, RoutineTask, SigmaskAction
        from palhm.engine.routine import run_routine
        block = Builtin("sigmask", sigmask=(
            SigmaskAction("block", (signal.SIGTERM, signal.SIGUSR1)),
            SigmaskAction("unblock", (signal.SIGUSR1,)),
        ))
        show = Exec(argv=("cp", "/proc/self/status", {str(child_status)!r}))
        run_routine(RoutineTask("r", (block, show)), run_task=print, verbosity=0)
        print(open("/proc/self/status").read())
    """
    result = run_isolated(code, tmp_path)
    assert result.returncode == 0, result.stderr
    palhm_mask = sigblk(result.stdout)
    child_mask = sigblk(child_status.read_text())
    for mask in (palhm_mask, child_mask):
        assert mask & bit(signal.SIGTERM)
        assert not mask & bit(signal.SIGUSR1)


def test_sigmask_keeps_palhm_alive_through_a_blocked_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = f"""
        import os, signal
        from palhm.engine import interrupts
        from palhm.model import Builtin, Exec, RoutineTask, SigmaskAction
        from palhm.engine.routine import run_routine
        interrupts.install_handlers()
        block = Builtin("sigmask", sigmask=(SigmaskAction("block", (signal.SIGTERM,)),))
        term_self = Exec(argv=("sh", "-c", "kill -TERM $PPID"))
        after = Exec(argv=("sh", "-c", "echo reboot-ran >> {log}"))
        run_routine(RoutineTask("r", (block, term_self, after)), run_task=print, verbosity=0)
        print("pending:", signal.SIGTERM in signal.sigpending())
    """
    result = run_isolated(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "reboot-ran\n"
    assert "pending: True" in result.stdout


def test_builtin_failure_names_the_item() -> None:
    task = routine(Builtin("nope"), task_id="boot")
    with pytest.raises(PalhmError, match="task 'boot', item 1: unknown builtin 'nope'"):
        run_routine(task, run_task=no_pointers, verbosity=0)
