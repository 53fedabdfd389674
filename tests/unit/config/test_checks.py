"""Logic checks on the merged config: references, cycles, paths, value grammars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from palhm.config import load_config
from palhm.config.checks import find_cycles
from tests.unit.config.util import backup, inline, obj, problems, routine, write

CORE_IDS = ("filter-zstd-plain", "filter-zstd-parallel")


def check(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    """Problem lines of a one-file config, without the file name."""
    path = write(tmp_path, "site.jsonc", document)
    return [line.removeprefix(f"{path}: ") for line in problems(path)]


def exec_stage(exec_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "exec", "exec-id": exec_id, **extra}


# --------------------------------------------------------------------------- references


def test_unknown_exec_lists_similar_known_ones_first(tmp_path: Path) -> None:
    document = {
        "include": ["builtin:conf.d/core.json"],
        "tasks": [
            backup(
                "b", obj("x"), obj("y"), obj("z", inline("/usr/bin/true"), exec_stage("zstd-fast"))
            )
        ],
    }
    (line,) = check(tmp_path, document)
    assert line.startswith(
        "at 'tasks[0].objects[2].pipeline[1].exec-id': unknown exec 'zstd-fast' "
        "(known: filter-zstd-plain, filter-zstd-parallel, "
    )
    assert line.endswith(", ...)")
    assert line.count(",") == 8  # eight names, then '...'


def test_unknown_exec_in_routine_and_exec_append(tmp_path: Path) -> None:
    document = {
        "execs": [{"id": "ls", "argv": ["/usr/bin/ls"]}],
        "tasks": [routine("r", {"type": "exec-append", "exec-id": "lls", "argv": ["-l"]})],
    }
    assert check(tmp_path, document) == [
        "at 'tasks[0].routine[0].exec-id': unknown exec 'lls' (known: ls)"
    ]


def test_unknown_exec_with_none_defined(tmp_path: Path) -> None:
    assert check(tmp_path, {"tasks": [routine("r", exec_stage("x"))]}) == [
        "at 'tasks[0].routine[0].exec-id': unknown exec 'x' (known: none are defined)"
    ]


def test_unknown_task_pointer(tmp_path: Path) -> None:
    document = {
        "tasks": [routine("default", {"type": "task", "task-id": "bakup"}), backup("backup")]
    }
    assert check(tmp_path, document) == [
        "at 'tasks[0].routine[0].task-id': unknown task 'bakup' (known: backup, default)"
    ]


def test_task_pointer_cycle_prints_the_cycle(tmp_path: Path) -> None:
    document = {
        "tasks": [
            routine("a", {"type": "task", "task-id": "b"}),
            routine("b", inline("/usr/bin/true"), {"type": "task", "task-id": "a"}),
            routine("c", {"type": "task", "task-id": "a"}),
        ]
    }
    assert check(tmp_path, document) == [
        "at 'tasks[1].routine[1].task-id': task cycle: a -> b -> a"
    ]


def test_task_pointers_may_share_a_target_without_a_cycle(tmp_path: Path) -> None:
    document = {
        "tasks": [
            routine("top", {"type": "task", "task-id": "l"}, {"type": "task", "task-id": "r"}),
            routine("l", {"type": "task", "task-id": "leaf"}),
            routine("r", {"type": "task", "task-id": "leaf"}),
            routine("leaf", inline("/usr/bin/true")),
        ]
    }
    assert list(load_config(write(tmp_path, "ok.json", document)).tasks) == [
        "top",
        "l",
        "r",
        "leaf",
    ]


# --------------------------------------------------------------------------- groups


def groups_task(
    *groups: dict[str, Any], objects: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return backup("b", *objects, **{"object-groups": list(groups)})


def test_group_cycle_is_printed_as_a_path(tmp_path: Path) -> None:
    task = groups_task(
        {"id": "a", "depends": ["c"]}, {"id": "b", "depends": ["a"]}, {"id": "c", "depends": ["b"]}
    )
    assert check(tmp_path, {"tasks": [task]}) == [
        "at 'tasks[0].object-groups[1].depends[0]': object group cycle: a -> c -> b -> a"
    ]


def test_group_self_dependency(tmp_path: Path) -> None:
    task = groups_task({"id": "sql", "depends": ["http", "sql"]}, {"id": "http"})
    assert check(tmp_path, {"tasks": [task]}) == [
        "at 'tasks[0].object-groups[0].depends[1]': group 'sql' depends on itself"
    ]


def test_group_diamond_and_empty_groups_are_fine(tmp_path: Path) -> None:
    task = groups_task(
        {"id": "d", "depends": ["b", "c"]},
        {"id": "b", "depends": ["a"]},
        {"id": "c", "depends": ["a"]},
        {"id": "a"},
        {"id": "e", "depends": ["default"]},
        objects=(obj("x", group="a"), obj("y")),
    )
    config = load_config(write(tmp_path, "ok.json", {"tasks": [task]}))
    assert [g.id for g in config.tasks["b"].groups] == ["d", "b", "c", "a", "e"]  # type: ignore[union-attr]


def test_unknown_and_duplicate_groups(tmp_path: Path) -> None:
    task = groups_task(
        {"id": "meta"},
        {"id": "data", "depends": ["mta"]},
        {"id": "meta"},
        objects=(obj("x", group="dta"),),
    )
    # in document order: the helper writes "objects" before "object-groups"
    assert check(tmp_path, {"tasks": [task]}) == [
        "at 'tasks[0].objects[0].group': unknown group 'dta' (known: data, meta, default)",
        "at 'tasks[0].object-groups[1].depends[0]': unknown group 'mta' (known: meta, data, "
        "default)",
        "at 'tasks[0].object-groups[2].id': duplicate group id 'meta' (first defined at "
        "'tasks[0].object-groups[0]')",
    ]


def test_find_cycles_reports_each_cycle() -> None:
    edges = {"a": [("b", 1)], "b": [("a", 2), ("c", 3)], "c": [("c", 4)], "d": [("a", 5)]}
    assert find_cycles(edges) == [(["a", "b", "a"], 2), (["c", "c"], 4)]


# --------------------------------------------------------------------------- object paths


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "'/etc/passwd' is absolute (expected a path relative to the copy)"),
        ("../x", "'../x' contains '..' (expected a path inside the copy)"),
        ("a/b/../../c", "'a/b/../../c' contains '..' (expected a path inside the copy)"),
        ("", "'' names no file (expected a relative file path)"),
        ("./", "'./' names no file (expected a relative file path)"),
        ("a\0b", "an object path cannot contain a NUL character"),
    ],
)
def test_unsafe_object_paths(tmp_path: Path, path: str, message: str) -> None:
    assert check(tmp_path, {"tasks": [backup("b", obj(path))]}) == [
        f"at 'tasks[0].objects[0].path': {message}"
    ]


@pytest.mark.parametrize(
    ("first", "second", "normal"),
    [("x", "./x", "x"), ("a/b", "a//./b/", "a/b"), ("./d/f", "d/f", "d/f")],
)
def test_paths_that_normalise_alike_clash(
    tmp_path: Path, first: str, second: str, normal: str
) -> None:
    assert check(tmp_path, {"tasks": [backup("b", obj(first), obj("other"), obj(second))]}) == [
        f"at 'tasks[0].objects[2].path': duplicate object path '{normal}' (first used at "
        "'tasks[0].objects[0]')"
    ]


def test_same_path_in_two_tasks_is_fine(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "ok.json", {"tasks": [backup("a", obj("x")), backup("b", obj("./x"))]})
    )
    assert config.tasks["b"].objects[0].path == "x"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- value grammars


def test_bad_ec_in_definitions_and_inline_stages(tmp_path: Path) -> None:
    document = {
        "execs": [{"id": "a", "argv": ["a"], "ec": "<<2"}, {"id": "b", "argv": ["b"], "ec": 256}],
        "tasks": [routine("r", inline("/usr/bin/false", ec="3-1"))],
    }
    assert check(tmp_path, document) == [
        "at 'execs[0].ec': '<<2' is not an exit status spec (expected MIN-MAX or [<|<=|>|>=|==]N)",
        "at 'execs[1].ec': exit status 256 is outside 0-255",
        "at 'tasks[0].routine[0].ec': '3-1' is an empty range (expected MIN-MAX with MIN <= MAX)",
    ]


def test_bad_signals(tmp_path: Path) -> None:
    item = {
        "type": "builtin",
        "builtin-id": "sigmask",
        "param": [{"action": "block", "sig": ["TERM", "TERMM", 99]}],
    }
    assert check(tmp_path, {"tasks": [routine("r", item)]}) == [
        "at 'tasks[0].routine[0].param[0].sig[1]': 'TERMM' is not a signal name (such as TERM, "
        "SIGHUP, INT)",
        "at 'tasks[0].routine[0].param[0].sig[2]': '99' is not a signal number on this system",
    ]


def localfs(**params: Any) -> dict[str, Any]:
    return {
        "id": "b",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": "/r", **params},
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"nb-copy-limit": "ten"},
            "at 'tasks[0].backend-param.nb-copy-limit': 'ten' is not a decimal number (or "
            "'Infinity')",
        ),
        (
            {"nb-copy-limit": -2},
            "at 'tasks[0].backend-param.nb-copy-limit': -2: a limit cannot be negative",
        ),
        (
            {"root-size-limit": "-0.5"},
            "at 'tasks[0].backend-param.root-size-limit': '-0.5': a limit cannot be negative",
        ),
        (
            {"root-size-limit": "1e"},
            "at 'tasks[0].backend-param.root-size-limit': '1e' is not a decimal number (or "
            "'Infinity')",
        ),
        (
            {"dmode": "999"},
            "at 'tasks[0].backend-param.dmode': '999' is not an octal mode such as \"750\"",
        ),
        (
            {"fmode": 648},
            "at 'tasks[0].backend-param.fmode': '648' is not an octal mode such as \"750\"",
        ),
    ],
)
def test_bad_limits_and_modes(tmp_path: Path, params: dict[str, Any], message: str) -> None:
    assert check(tmp_path, {"tasks": [localfs(**params)]}) == [message]


def test_non_finite_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "site.jsonc",
        """{
          "execs": [{"id": "a", "argv": ["a"], "timeout": Infinity}],
          "tasks": [{"id": "r", "type": "routine",
                     "routine": [{"type": "exec", "exec-id": "a", "timeout": NaN}],
                     "on-success": [{"type": "ping", "url": "http://127.0.0.1/",
                                     "timeout": Infinity}]}],
          "boot-report": {"mua": "stdout", "mail-to": ["root"], "delay": Infinity},
        }""",
    )
    assert problems(path) == [
        f"{path}: at 'execs[0].timeout': expected a finite number, found Infinity",
        f"{path}: at 'tasks[0].routine[0].timeout': expected a finite number, found NaN",
        f"{path}: at 'tasks[0].on-success[0].timeout': expected a finite number, found Infinity",
        f"{path}: at 'boot-report.delay': expected a finite number, found Infinity",
    ]


# --------------------------------------------------------------------------- modules, boot report


def test_unknown_module(tmp_path: Path) -> None:
    assert check(tmp_path, {"modules": ["aws", "awz"]}) == [
        "at 'modules[1]': unknown module 'awz' (did you mean 'aws'?) (known: aws)"
    ]


def test_backend_and_muas_need_their_module(tmp_path: Path) -> None:
    task: dict[str, Any] = {
        "id": "b",
        "type": "backup",
        "backend": "aws-s3",
        "backend-param": {"bucket": "k", "root": "r"},
    }
    task["on-failure"] = [{"type": "mail", "mua": "aws-sns", "mail-to": ["arn:x"]}]
    document = {"tasks": [task], "boot-report": {"mua": "aws-sns", "mail-to": ["arn:x"]}}
    assert check(tmp_path, document) == [
        "at 'tasks[0].backend': backend 'aws-s3' needs module 'aws' (\"modules\": [\"aws\"])",
        "at 'tasks[0].on-failure[0].mua': MUA 'aws-sns' needs module 'aws' (\"modules\": "
        '["aws"])',
        "at 'boot-report.mua': MUA 'aws-sns' needs module 'aws' (\"modules\": [\"aws\"])",
    ]
    assert load_config(write(tmp_path, "ok.json", {"modules": ["aws"], **document})).modules == {
        "aws"
    }


def test_module_listed_in_an_included_file_counts(tmp_path: Path) -> None:
    write(tmp_path, "mods.json", {"modules": ["aws"]})
    task = {
        "id": "b",
        "type": "backup",
        "backend": "aws-s3",
        "backend-param": {"bucket": "k", "root": "r"},
    }
    assert load_config(
        write(tmp_path, "main.json", {"include": ["mods.json"], "tasks": [task]})
    ).tasks


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"mua": "mailx"}, "at 'boot-report': missing required key 'mail-to'"),
        (
            {"mail-to": ["root"]},
            "at 'boot-report': missing required key 'mua' (set it in one of the files)",
        ),
        (
            {"mua": "mailx", "mail-to": []},
            "at 'boot-report.mail-to': expected at least one recipient",
        ),
        (
            {"mua": "mailx", "mail-to": ["r"], "mua-param": {"int-opt": []}},
            "at 'boot-report.mua-param': unknown key 'int-opt' (did you mean 'int-opts'?)",
        ),
        (
            {"mua": "smtp", "mail-to": ["r"], "mua-param": {"tls": "ssl"}},
            "at 'boot-report.mua-param.tls': 'ssl' is not one of none, starttls, tls",
        ),
        (
            {"mua": "stdout", "mail-to": ["r"], "bootid": True, "boot-id": False},
            "at 'boot-report.bootid': 'bootid' (true) contradicts 'boot-id' (false) set in",
        ),
    ],
)
def test_boot_report_checks(tmp_path: Path, report: dict[str, Any], message: str) -> None:
    (line,) = check(tmp_path, {"boot-report": report})
    assert line.startswith(message)


def test_mua_param_of_another_file_is_checked_against_the_merged_mua(tmp_path: Path) -> None:
    params = write(
        tmp_path, "params.json", {"boot-report": {"mua-param": {"host": "mx", "exec": "/x"}}}
    )
    main = write(
        tmp_path,
        "main.json",
        {"include": ["params.json"], "boot-report": {"mua": "smtp", "mail-to": ["r"]}},
    )
    assert problems(main) == [f"{params}: at 'boot-report.mua-param': unknown key 'exec'"]


def test_problems_are_sorted_by_file_then_document_order(tmp_path: Path) -> None:
    inc = write(tmp_path, "inc.json", {"tasks": [routine("i", exec_stage("nope"))], "vl": -1})
    main = write(
        tmp_path,
        "main.json",
        {"tasks": [routine("m", exec_stage("gone"))], "include": ["inc.json"], "modules": ["x"]},
    )
    lines = problems(main)
    assert [line.split(": at ")[0] for line in lines] == [str(main)] * 2 + [str(inc)] * 2
    assert "tasks[0]" in lines[0] and "modules[0]" in lines[1]
    assert "tasks[0]" in lines[2] and "'vl'" in lines[3]
