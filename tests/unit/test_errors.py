"""Error messages: one readable line per problem, whatever the input holds."""

from __future__ import annotations

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
