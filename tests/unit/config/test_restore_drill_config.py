"""The `restore` pipeline of an object and the `drill` sections: validation and model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from palhm.config import load_config
from palhm.model import BackupTask
from tests.unit.config.util import backup, inline, obj, problems, write


def check(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    path = write(tmp_path, "site.jsonc", document)
    return [line.removeprefix(f"{path}: ") for line in problems(path)]


def exec_stage(exec_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "exec", "exec-id": exec_id, **extra}


EXECS = [{"id": "zstd-d", "argv": ["/usr/bin/zstd", "-d"]}]


def test_every_problem_in_restore_and_drill_is_reported_with_its_json_path(
    tmp_path: Path,
) -> None:
    document = {
        "execs": EXECS,
        "tasks": [
            backup(
                "db",
                obj(
                    "a",
                    restore=[exec_stage("zstd-x"), {"type": "exec-inline", "argv": []}],
                    drill={"restore": [exec_stage("nope")], "extra": 1},
                ),
                obj("b", restore=[]),
                drill={
                    "set-up": [exec_stage("zstd-dd")],
                    "checks": [
                        {"run": inline("/bin/true"), "expect-status": "<<1"},
                        {"run": inline("/bin/true"), "expect-output": "(["},
                        {"expect-output": "x"},
                    ],
                    "tear-down": [{"type": "task", "task-id": "db"}],
                    "use-restore-pipelines": "yes",
                    "on-failure": [{"type": "ping"}],
                },
            )
        ],
    }
    lines = check(tmp_path, document)
    expected = [
        "at 'tasks[0].objects[0].restore[0].exec-id': unknown exec 'zstd-x'",
        "at 'tasks[0].objects[0].restore[1].argv': expected a non-empty list",
        "at 'tasks[0].objects[0].drill': unknown key 'extra'",
        "at 'tasks[0].objects[0].drill.restore[0].exec-id': unknown exec 'nope'",
        "at 'tasks[0].objects[1].restore': ",
        "at 'tasks[0].drill.set-up[0].exec-id': unknown exec 'zstd-dd' (known: zstd-d",
        "at 'tasks[0].drill.checks[0].expect-status': '<<1' is not an exit status spec",
        "at 'tasks[0].drill.checks[1].expect-output': expected a Python regular expression",
        "at 'tasks[0].drill.checks[2]': missing required key 'run'",
        "at 'tasks[0].drill.tear-down[0].type': ",
        "at 'tasks[0].drill.use-restore-pipelines': ",
        "at 'tasks[0].drill.on-failure[0]': ",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)


def test_restore_and_drill_build_into_the_model(tmp_path: Path) -> None:
    document = {
        "execs": EXECS,
        "tasks": [
            backup(
                "db",
                obj(
                    "a",
                    restore=[exec_stage("zstd-d"), inline("/usr/bin/mariadb")],
                    drill={"restore": [exec_stage("zstd-d", **{"vl-stderr": 3})]},
                ),
                obj("b"),
                drill={
                    "env": {"PGHOST": "{drill-dir}"},
                    "set-up": [inline("/bin/mkdir", "x")],
                    "checks": [
                        {
                            "run": exec_stage("zstd-d"),
                            "expect-status": "0-1",
                            "expect-output": "^3$",
                        },
                        {"name": "second", "run": inline("/bin/true")},
                    ],
                    "on-success": [],
                },
            )
        ],
    }
    config = load_config(write(tmp_path, "site.jsonc", document))
    task = config.tasks["db"]
    assert isinstance(task, BackupTask)
    a, b = task.objects
    assert [s.label for s in a.restore] == ["zstd-d", "/usr/bin/mariadb"]
    assert a.drill_restore[0].vl_stderr == 3
    assert config.execs["zstd-d"].vl_stderr == 1  # the shared definition is untouched
    assert b.restore == () and b.drill_restore == ()
    drill = task.drill
    assert drill is not None
    assert dict(drill.env) == {"PGHOST": "{drill-dir}"}
    assert drill.use_restore_pipelines is False
    first, second = drill.checks
    assert (first.name, first.command.ec.text, first.expect_output) == ("check 1", "0-1", "^3$")
    assert config.execs["zstd-d"].ec.text == "==0"
    assert (second.name, second.expect_output) == ("second", None)
    # on-success given (even empty): the drill's own hooks, not the task's
    assert drill.hooks is not None and drill.hooks.on_success == ()


def test_a_task_without_drill_has_none(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "site.jsonc", {"tasks": [backup("db", obj("a"))]}))
    task = config.tasks["db"]
    assert isinstance(task, BackupTask) and task.drill is None


def test_config_show_and_schema_include_restore_and_drill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from palhm.cli.main import main

    document = {
        "tasks": [
            backup(
                "db",
                obj("a", restore=[inline("/usr/bin/zstd", "-d")]),
                drill={"checks": [{"run": inline("/bin/true"), "expect-output": "x"}]},
            )
        ]
    }
    path = write(tmp_path, "site.jsonc", document)
    assert main(["-f", str(path), "config", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    (task,) = shown["tasks"]
    assert task["objects"][0]["restore"][0]["argv"] == ["/usr/bin/zstd", "-d"]
    assert task["drill"]["checks"][0]["expect-output"] == "x"
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"drill", "drill-check", "object-drill"} <= set(schema["definitions"])
    assert "restore" in schema["definitions"]["backup-object"]["properties"]
