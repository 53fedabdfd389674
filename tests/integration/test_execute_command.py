"""run_command with real processes: exit statuses, environment, stream routing
(doc/design.md#execs-and-pipeline-stages)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from palhm.engine.execute import run_command
from palhm.errors import Cancelled, CommandError
from tests.integration.execute_support import bounded, ex, py

BOTH_STREAMS = "import sys; print('to-stdout'); print('to-stderr', file=sys.stderr)"


def test_accepted_status_is_returned() -> None:
    assert run_command(ex("true"), context="t", verbosity=3) == 0
    assert run_command(ex("sh", "-c", "exit 1", ec="<2"), context="t", verbosity=3) == 1
    assert run_command(ex("sh", "-c", "exit 7", ec="5-9"), context="t", verbosity=3) == 7


def test_status_outside_ec_raises_with_context_argv_and_status() -> None:
    with pytest.raises(CommandError) as caught:
        run_command(ex("sh", "-c", "exit 3"), context="task 'r', item 2", verbosity=0)
    error = caught.value
    assert error.outcome == "exited with status 3"
    assert error.argv == ["sh", "-c", "exit 3"]
    assert str(error).startswith("task 'r', item 2: sh -c 'exit 3' exited with status 3")


def test_non_default_ec_is_shown_when_refused() -> None:
    with pytest.raises(CommandError) as caught:
        run_command(ex("sh", "-c", "exit 2", ec="<2"), context="t", verbosity=0)
    assert caught.value.outcome == "exited with status 2 (accepted: <2)"


def test_signal_never_matches_even_an_ec_accepting_everything() -> None:
    with pytest.raises(CommandError) as caught:
        run_command(ex("sh", "-c", "kill -TERM $$", ec=">=0"), context="t", verbosity=0)
    assert caught.value.outcome == "killed by SIGTERM"


def test_missing_program_is_reported_not_raised_as_oserror() -> None:
    with pytest.raises(CommandError) as caught:
        run_command(ex("/nonexistent/palhm-test-prog"), context="task 'x', item 1", verbosity=0)
    assert "could not be started" in caught.value.outcome
    assert "No such file" in caught.value.outcome


def test_env_is_added_to_palhm_environment_not_replacing_it(
    capfd: pytest.CaptureFixture[str],
) -> None:
    code = (
        "import os; print(os.environ['PATH']); print(os.environ.get('HOME'));"
        " print(os.environ['PALHM_ADDED'])"
    )
    run_command(py(code, env={"PALHM_ADDED": "yes it is"}), context="t", verbosity=3)
    lines = capfd.readouterr().out.splitlines()
    assert lines == [os.environ["PATH"], os.environ.get("HOME", "None"), "yes it is"]


def test_env_value_overrides_the_same_variable() -> None:
    code = "import os, sys; sys.exit(0 if os.environ['LANG'] == 'C.test' else 9)"
    assert run_command(py(code, env={"LANG": "C.test"}), context="t", verbosity=0) == 0


def test_stdin_is_dev_null() -> None:
    code = "import sys; sys.exit(0 if sys.stdin.buffer.read() == b'' else 9)"
    assert run_command(py(code), context="t", verbosity=0) == 0


@pytest.mark.parametrize(
    ("verbosity", "stdout_shown", "stderr_shown"),
    [(0, False, False), (1, False, True), (2, False, True), (3, True, True), (5, True, True)],
)
def test_streams_reach_palhm_only_at_their_verbosity(
    capfd: pytest.CaptureFixture[str], verbosity: int, stdout_shown: bool, stderr_shown: bool
) -> None:
    # defaults: vl-stderr 1, vl-stdout 3 (A3.1); stderr shown at -q (vl 1), unlike B4
    run_command(py(BOTH_STREAMS), context="t", verbosity=verbosity)
    captured = capfd.readouterr()
    assert ("to-stdout" in captured.out) is stdout_shown
    assert ("to-stderr" in captured.err) is stderr_shown


def test_per_exec_levels_are_honoured(capfd: pytest.CaptureFixture[str]) -> None:
    run_command(py(BOTH_STREAMS, vl_stdout=0, vl_stderr=4), context="t", verbosity=2)
    captured = capfd.readouterr()
    assert "to-stdout" in captured.out
    assert "to-stderr" not in captured.err


def test_stderr_tail_is_kept_when_stderr_is_discarded(capfd: pytest.CaptureFixture[str]) -> None:
    code = "import sys\nfor i in range(100): print(f'line {i}', file=sys.stderr)\nsys.exit(4)"
    with pytest.raises(CommandError) as caught:
        run_command(py(code), context="t", verbosity=0)
    assert capfd.readouterr().err == ""
    tail = caught.value.stderr_tail
    assert tail[-1] == "line 99"
    assert "line 0" not in tail
    assert 1 <= len(tail) <= 25
    assert "  | line 99" in str(caught.value)


def test_stderr_tail_is_kept_when_stderr_is_shown(capfd: pytest.CaptureFixture[str]) -> None:
    code = (
        "import sys; print('first', file=sys.stderr); sys.stderr.write('no newline'); sys.exit(4)"
    )
    with pytest.raises(CommandError) as caught:
        run_command(py(code), context="t", verbosity=3)
    assert caught.value.stderr_tail == ["first", "no newline"]
    assert capfd.readouterr().err == "first\nno newline\n"


def test_huge_stderr_does_not_block_the_child() -> None:
    code = "import sys; sys.stderr.write('x' * 3_000_000 + '\\n'); print('done')"
    assert bounded(lambda: run_command(py(code), context="t", verbosity=0)) == 0


def test_timeout_kills_the_command_and_reports_it() -> None:
    with pytest.raises(CommandError) as caught:
        bounded(lambda: run_command(ex("sleep", "100", timeout=0.3), context="t", verbosity=0))
    assert caught.value.outcome == "timed out after 0.3 s"


def test_cancel_already_set_runs_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    marker = tmp_path / "ran"
    with pytest.raises(Cancelled):
        run_command(ex("touch", str(marker)), context="t", verbosity=0, cancel=cancel)
    assert not marker.exists()


def test_a_daemon_left_by_a_successful_command_is_not_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {pid_file}"
    assert run_command(ex("sh", "-c", script), context="t", verbosity=0) == 0
    pid = int(pid_file.read_text())
    try:
        assert Path(f"/proc/{pid}").exists()
    finally:
        os.kill(pid, 9)
