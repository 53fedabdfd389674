"""Hook templates: placeholders, JSON bodies, what the PALHM_* environment holds."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from palhm.errors import PipelineError
from palhm.notify.hooks import RunReport, exit_code, render, render_json


def test_known_placeholders_are_replaced_and_everything_else_kept() -> None:
    values = {"task": "db", "exit-code": "1"}
    assert render("{task}/{exit-code} {nope} {} {{task}} {Task}", values) == (
        "db/1 {nope} {} {db} {Task}"
    )


@given(st.text())
def test_rendering_with_no_values_changes_nothing(text: str) -> None:
    assert render(text, {}) == text


@given(st.text())
def test_json_bodies_stay_valid_json_whatever_the_error_holds(error: str) -> None:
    body = render_json({"text": "{error}", "n": 8, "list": ["{error}", None]}, {"error": error})
    assert json.loads(json.dumps(body)) == {"text": error, "n": 8, "list": [error, None]}


def test_environment_of_a_failed_run() -> None:
    error = PipelineError("task 'db', object 'x', stage 1 (tar)", ["tar"], "exited with status 2")
    report = RunReport(
        "db", "failure", 0.0, 1.5, error="\n".join(error.lines()), exit_code=exit_code(error)
    )
    env = report.environment("on-failure")
    assert env["PALHM_TASK"] == "db"
    assert env["PALHM_STATUS"] == "failure"
    assert env["PALHM_EXIT_CODE"] == "1"
    assert env["PALHM_ERROR"].startswith("task 'db', object 'x', stage 1 (tar): tar exited")
    assert env["PALHM_PREFIX"] == "" and env["PALHM_SIZE"] == ""
    assert env["PALHM_DURATION"] == "1.5"
    assert env["PALHM_EVENT"] == "on-failure"
    fields = report.fields()
    assert fields["error-line"] == env["PALHM_ERROR"].splitlines()[0]
    assert json.loads(fields["json"])["status"] == "failure"
