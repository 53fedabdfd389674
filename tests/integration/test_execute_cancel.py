"""Cancelling, killing and reaping: no process of a run outlives it (doc/design.md#signals)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from palhm.engine.execute import run_command, run_pipeline
from palhm.errors import Cancelled, CommandError, PipelineError
from tests.helpers import descendants
from tests.integration.execute_support import (
    MemorySink,
    alive,
    bounded,
    ex,
    wait_for_file,
    wait_gone,
)

CONTEXT = "task 'b', object 'o'"


def with_grandchild(pid_file: Path, then: str = "wait") -> list[str]:
    """A stage that starts a background `sleep` (same process group), writes its pid."""
    return ["sh", "-c", f"sleep 100 >/dev/null 2>&1 & echo $! > {pid_file}; {then}"]


def cancel_when_written(path: Path, event: threading.Event) -> threading.Thread:
    def target() -> None:
        wait_for_file(path)
        event.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def no_new_children() -> object:
    """Fails the test if it leaves a child of the test process behind."""
    before = set(descendants(os.getpid()))
    yield None
    assert set(descendants(os.getpid())) <= before


@pytest.mark.usefixtures("no_new_children")
def test_cancel_from_another_thread_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    cancel = threading.Event()
    cancel_when_written(pid_file, cancel)
    sink = MemorySink()
    stages = [ex(*with_grandchild(pid_file)), ex("cat")]
    with pytest.raises(Cancelled) as caught:
        bounded(lambda: run_pipeline(stages, sink, context=CONTEXT, verbosity=0, cancel=cancel))
    assert CONTEXT in str(caught.value)
    assert wait_gone(int(pid_file.read_text()))
    assert sink.aborted


@pytest.mark.usefixtures("no_new_children")
def test_cancel_while_data_flows_through_the_hasher() -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(total: int) -> None:
        seen.append(total)
        if total > 4 << 20:
            cancel.set()

    sink = MemorySink()
    with pytest.raises(Cancelled):
        bounded(
            lambda: run_pipeline(
                [ex("yes"), ex("cat")],
                sink,
                context=CONTEXT,
                verbosity=0,
                hasher=hashlib.sha256(),
                cancel=cancel,
                progress=progress,
            )
        )
    assert sink.aborted and not sink.closed
    assert seen


@pytest.mark.usefixtures("no_new_children")
def test_cancel_stops_a_running_command_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    cancel = threading.Event()
    cancel_when_written(pid_file, cancel)
    with pytest.raises(Cancelled):
        bounded(
            lambda: run_command(
                ex(*with_grandchild(pid_file)), context="t", verbosity=0, cancel=cancel
            )
        )
    assert wait_gone(int(pid_file.read_text()))


@pytest.mark.usefixtures("no_new_children")
def test_stage_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    cancel = threading.Event()
    cancel_when_written(ready, cancel)
    stubborn = ex("sh", "-c", f"trap '' TERM; echo up > {ready}; sleep 100")
    with pytest.raises(Cancelled):
        bounded(
            lambda: run_pipeline(
                [stubborn], MemorySink(), context=CONTEXT, verbosity=0, cancel=cancel
            )
        )


@pytest.mark.usefixtures("no_new_children")
def test_failure_kills_the_background_children_of_other_stages(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    stages = [ex(*with_grandchild(pid_file, then="exec cat")), ex("sh", "-c", "sleep 0.2; exit 3")]
    with pytest.raises(PipelineError) as caught:
        bounded(lambda: run_pipeline(stages, MemorySink(), context=CONTEXT, verbosity=0))
    assert caught.value.outcome == "exited with status 3"
    assert wait_gone(int(pid_file.read_text()))


@pytest.mark.usefixtures("no_new_children")
def test_timeout_leaves_no_process_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    stage = ex(*with_grandchild(pid_file), timeout=0.5)
    with pytest.raises(CommandError) as caught:
        bounded(lambda: run_command(stage, context="t", verbosity=0))
    assert caught.value.outcome == "timed out after 0.5 s"
    assert wait_gone(int(pid_file.read_text()))


@pytest.mark.usefixtures("no_new_children")
def test_successful_pipeline_leaves_no_stray_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    sink = MemorySink()
    stage = ex(*with_grandchild(pid_file, then="echo data"))
    bounded(lambda: run_pipeline([stage], sink, context=CONTEXT, verbosity=0))
    assert bytes(sink.data) == b"data\n"
    assert wait_gone(int(pid_file.read_text()))


def test_stages_die_with_a_sigkilled_palhm(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: nothing cleans up after SIGKILL, so the kernel must."""
    pid_file = tmp_path / "stage"
    runner = f"""
import sys
from palhm.engine.execute import run_pipeline
from palhm.model import Exec
from tests.integration.execute_support import FileSink
stage = Exec(argv=("sh", "-c", "echo $$ > {pid_file}; exec sleep 100"))
run_pipeline([stage], FileSink({str(tmp_path / "out")!r}), context="c", verbosity=0)
"""
    proc = subprocess.Popen([sys.executable, "-c", runner], cwd=Path(__file__).parents[2])
    try:
        stage_pid = int(wait_for_file(pid_file))
        assert alive(stage_pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_gone(stage_pid), "the stage outlived its SIGKILLed parent"
