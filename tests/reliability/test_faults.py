"""The fault injection facility itself (palhm.faults): parsing, counting, actions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from palhm import faults
from palhm.faults import CRASHPOINTS, crashpoint, parse_fault

SRC = Path(faults.__file__).resolve().parent  # the palhm being tested
CALL = re.compile(r"""faults\.crashpoint\(\s*["']([^"']+)["']\s*\)""")


@pytest.mark.parametrize(
    ("text", "point", "occurrence", "action"),
    [
        ("before-rename", "before-rename", 1, "kill"),
        ("before-rename:3", "before-rename", 3, "kill"),
        ("before-rename:term", "before-rename", 1, "term"),
        ("chunk-written:12:int", "chunk-written", 12, "int"),
        (" committed:2:stop ", "committed", 2, "stop"),
    ],
)
def test_fault_specs_parse(text: str, point: str, occurrence: int, action: str) -> None:
    fault = parse_fault(text)
    assert (fault.point, fault.occurrence, fault.action) == (point, occurrence, action)


@pytest.mark.parametrize(
    "text",
    ["befor-rename", "before-rename:0", "before-rename:1:explode", "before-rename:1:kill:x", ":1"],
)
def test_bad_fault_specs_are_refused_loudly(text: str) -> None:
    with pytest.raises(ValueError, match="PALHM_FAULT="):
        parse_fault(text)


def test_crashpoint_does_nothing_when_unset() -> None:
    assert "PALHM_FAULT" not in os.environ
    assert faults.armed() is None
    for name in sorted(CRASHPOINTS):
        crashpoint(name)  # returns: nothing is armed


def _count_to(fault: str, calls: int, *, setup: str = "") -> subprocess.CompletedProcess[str]:
    """A process that reaches `lock-acquired` `calls` times, printing each arrival."""
    code = (
        "import sys\n"
        f"{setup}\n"
        "from palhm.faults import crashpoint\n"
        f"for i in range(1, {calls} + 1):\n"
        "    crashpoint('committed')\n"
        "    crashpoint('lock-acquired')\n"
        "    print(i, flush=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PALHM_FAULT": fault},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kill_acts_exactly_at_the_nth_arrival() -> None:
    result = _count_to("lock-acquired:3:kill", 5)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2"]


def test_term_goes_through_palhm_signal_handlers_and_continues() -> None:
    setup = "from palhm.engine import interrupts; interrupts.install_handlers()"
    result = _count_to(
        "lock-acquired:2:term",
        3,
        setup=setup + "\nimport atexit\n"
        "atexit.register(lambda: print('signal', interrupts.received_signal()))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "2", "3", "signal", str(int(signal.SIGTERM))]


def test_int_without_handlers_is_a_keyboard_interrupt() -> None:
    result = _count_to("lock-acquired:1:int", 2)
    # Python ends an unhandled KeyboardInterrupt by dying of SIGINT itself
    assert result.returncode == -signal.SIGINT and "KeyboardInterrupt" in result.stderr
    assert result.stdout == ""


def test_a_malformed_variable_fails_at_import() -> None:
    result = _count_to("lock-acquired:x:y:z", 1)
    assert result.returncode == 1
    assert "ValueError: PALHM_FAULT='lock-acquired:x:y:z'" in result.stderr


def test_stop_freezes_the_process_until_sigcont() -> None:
    code = "from palhm.faults import crashpoint\ncrashpoint('committed')\nprint('resumed')\n"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PALHM_FAULT": "committed:stop"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _, status = os.waitpid(process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        os.kill(process.pid, signal.SIGCONT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert output == "resumed\n"


def test_every_crash_point_is_placed_once_and_every_call_names_a_known_point() -> None:
    calls = [
        (path.relative_to(SRC).as_posix(), name)
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "faults.py"  # its docstring shows a call
        for name in CALL.findall(path.read_text())
    ]
    names = [name for _, name in calls]
    assert set(names) <= CRASHPOINTS, sorted(set(names) - CRASHPOINTS)
    assert set(names) == CRASHPOINTS, f"not placed: {sorted(CRASHPOINTS - set(names))}"
    assert len(names) == len(set(names)), calls
