"""Error messages: one readable line per problem, whatever the input holds."""

from __future__ import annotations

import errno
import os

import pytest

from palhm.cli import main as main_module
from palhm.errors import CommandError, ConfigError, ConfigProblem, ExitStatus, format_argv


def test_format_argv_keeps_a_multi_line_argument_on_one_line() -> None:
    text = format_argv(["python3", "-c", "import sys\nsys.exit(3)"])
    assert "\n" not in text
    assert text == "python3 -c 'import sys\\nsys.exit(3)'"


def test_command_error_names_context_argv_outcome_and_stderr_tail() -> None:
    error = CommandError("task 'x', item 2", ["false", "a b"], "exited with status 1", ["oops"])
    assert error.lines() == ["task 'x', item 2: false 'a b' exited with status 1", "  | oops"]
    assert error.exit_status is ExitStatus.FAILURE


def test_config_error_prints_one_line_per_problem_and_exits_2() -> None:
    error = ConfigError(
        [ConfigProblem("a.jsonc", "tasks[0].id", "expected a string"), ConfigProblem("b", "", "x")]
    )
    assert error.lines() == ["a.jsonc: at 'tasks[0].id': expected a string", "b: x"]
    assert error.exit_status is ExitStatus.USAGE


@pytest.mark.parametrize(
    ("code", "hint"),
    [(errno.EMFILE, "ulimit -n"), (errno.ENFILE, "ulimit -n"), (errno.ENOMEM, "nb-workers")],
)
def test_a_limit_reached_anywhere_is_one_error_line_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], code: int, hint: str
) -> None:
    """A lazy import or any open() outside a stage can meet the limit too (ulimit -n 20)."""

    def refuse(_args: object) -> None:
        raise OSError(code, os.strerror(code), "/usr/lib/python3/dist-packages/blake3")

    monkeypatch.setitem(main_module.COMMANDS, "mods", refuse)
    status = main_module.main(["mods"])
    lines = capsys.readouterr().err.splitlines()
    assert status == ExitStatus.FAILURE
    assert lines == [f"palhm: error: {os.strerror(code)} ({lines[0].split('(', 1)[1]}"]
    assert hint in lines[0] and "internal error" not in lines[0]
