"""schema.json itself, and schema errors put in plain words (doc/design.md#configuration)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from palhm import model
from palhm.backends import BACKENDS
from palhm.config import load_config, schema_text
from palhm.config.validate import schema
from palhm.model import BackupTask
from palhm.modules import MODULES, backend_names
from palhm.notify.mua import MUAS
from tests.unit.config.util import backup, inline, obj, problems, routine, write


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            yield f"{where}.{key}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{where}.{key}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            yield from _properties(sub, f"{where}[{index}]")


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(schema())


def test_schema_text_is_the_shipped_schema() -> None:
    assert json.loads(schema_text()) == schema()
    assert schema_text().endswith("}\n")


def test_every_property_has_a_description() -> None:
    definitions = schema()["definitions"]
    missing = []
    for where, sub in _properties(schema()):
        if sub is True or ".if." in where:  # placeholders; `if` conditions are not keys
            continue
        target = definitions.get(sub.get("$ref", "").removeprefix("#/definitions/"), {})
        if "description" not in sub and "description" not in target:
            missing.append(where)
    assert missing == []


def test_every_default_is_valid_for_its_own_schema() -> None:
    for where, sub in _properties(schema()):
        if isinstance(sub, dict) and "default" in sub:
            checked = {**sub, "definitions": schema()["definitions"]}
            errors = list(jsonschema.Draft7Validator(checked).iter_errors(sub["default"]))
            assert errors == [], where


def test_model_defaults_agree_with_the_schema() -> None:
    definitions = schema()["definitions"]
    exec_props = definitions["exec"]["properties"]
    assert model.Exec(argv=("x",)).vl_stderr == exec_props["vl-stderr"]["default"]
    assert model.Exec(argv=("x",)).vl_stdout == exec_props["vl-stdout"]["default"]
    assert model.Exec(argv=("x",)).ec.text == exec_props["ec"]["default"]
    report = definitions["boot-report"]["properties"]
    assert model.BootReport(mua="m", mail_to=()).subject == report["subject"]["default"]
    assert schema()["properties"]["vl"]["default"] == model.DEFAULT_VL
    assert definitions["backup-object"]["properties"]["group"]["default"] == model.DEFAULT_GROUP
    ping = definitions["hook-ping"]["properties"]
    assert model.PingHook(url="u").timeout == ping["timeout"]["default"]


def test_backends_and_muas_match_the_registries() -> None:
    definitions = schema()["definitions"]
    backends = definitions["backup-task"]["properties"]["backend"]["enum"]
    assert sorted(backends) == sorted(BACKENDS) == sorted(backend_names(set(MODULES)))
    assert all(f"{name}-param" in definitions for name in backends)
    assert sorted(definitions["mua"]["enum"]) == sorted(MUAS)
    assert all(f"mua-param-{name}" in definitions for name in MUAS)


def test_backends_list_every_common_parameter() -> None:
    definitions = schema()["definitions"]
    common = set(definitions["backend-param-common"]["properties"])
    for name in ("localfs-param", "aws-s3-param"):
        placeholders = {k for k, v in definitions[name]["properties"].items() if v is True}
        assert placeholders == common, name


# --------------------------------------------------------------------------- messages


def test_unknown_key_suggests_the_closest_one(tmp_path: Path) -> None:
    task = backup("b", backend="localfs")
    task["backend-param"] = {"root": "/r", "nb-copy-limt": 2}
    path = write(tmp_path, "site.jsonc", {"tasks": [task]})
    assert problems(path) == [
        f"{path}: at 'tasks[0].backend-param': unknown key 'nb-copy-limt' (did you mean "
        "'nb-copy-limit'?)"
    ]


def test_unknown_key_without_a_close_match_has_no_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "site.json", {"execs": [{"id": "a", "argv": ["a"], "zzz": 1}]})
    assert problems(path) == [f"{path}: at 'execs[0]': unknown key 'zzz'"]


def test_enum_error_lists_the_choices(tmp_path: Path) -> None:
    task = {"id": "b", "type": "backup", "backend": "aws-s4"}
    path = write(tmp_path, "site.json", {"tasks": [task]})
    assert problems(path) == [
        f"{path}: at 'tasks[0].backend': 'aws-s4' is not one of null, localfs, aws-s3 (did you "
        "mean 'aws-s3'?)"
    ]


@pytest.mark.parametrize(
    ("document", "line"),
    [
        ({"vl": True}, "at 'vl': expected an integer, found a boolean (true)"),
        ({"vl": 2.5}, "at 'vl': expected an integer, found a number (2.5)"),
        ({"execs": {}}, "at 'execs': expected a list, found an object"),
        (
            {"execs": [{"id": "a", "argv": "ls -l"}]},
            "at 'execs[0].argv': expected a list, found a string ('ls -l')",
        ),
        (
            {"execs": [{"id": "a", "argv": ["a"], "ec": None}]},
            "at 'execs[0].ec': expected a string or an integer, found null",
        ),
        ({"execs": [{"argv": ["a"]}]}, "at 'execs[0]': missing required key 'id'"),
        (
            {"execs": [{"id": "a", "argv": ["a"], "timeout": -1}]},
            "at 'execs[0].timeout': expected more than 0, found -1",
        ),
        (
            {"boot-report": {"uptime": "yes"}},
            "at 'boot-report.uptime': expected true or false, found a string ('yes')",
        ),
    ],
)
def test_type_and_range_errors_say_what_was_expected(
    tmp_path: Path, document: dict[str, Any], line: str
) -> None:
    path = write(tmp_path, "site.json", document)
    assert f"{path}: {line}" in problems(path)


def test_stage_errors_come_from_the_stage_type_not_a_oneof_dump(tmp_path: Path) -> None:
    stage = {"type": "exec-append", "exec-id": "x", "argv": "-l", "ec": 1}
    path = write(
        tmp_path,
        "site.json",
        {"execs": [{"id": "x", "argv": ["x"]}], "tasks": [routine("r", stage)]},
    )
    assert problems(path) == [
        f"{path}: at 'tasks[0].routine[0]': unknown key 'ec' here"
        " (it belongs in an exec (execs[]))",
        f"{path}: at 'tasks[0].routine[0].argv': expected a list, found a string ('-l')",
    ]


def test_missing_stage_type(tmp_path: Path) -> None:
    path = write(tmp_path, "site.json", {"tasks": [backup("b", obj("x", {"argv": ["ls"]}))]})
    assert problems(path) == [
        f"{path}: at 'tasks[0].objects[0].pipeline[0]': missing required key 'type'"
    ]


def test_every_schema_error_of_a_big_config_is_found(tmp_path: Path) -> None:
    objects = [obj(f"o{i}", inline("/usr/bin/true")) for i in range(300)]
    objects[5]["pipeline"][0]["vl-stdrr"] = 1
    objects[250]["alloc-size"] = "1G"
    path = write(tmp_path, "big.json", {"tasks": [backup("b", *objects)]})
    assert problems(path) == [
        f"{path}: at 'tasks[0].objects[5].pipeline[0]': unknown key 'vl-stdrr' (did you mean "
        "'vl-stderr'?)",
        f"{path}: at 'tasks[0].objects[250].alloc-size': expected an integer, found a string "
        "('1G')",
    ]


def test_null_backend_accepts_other_backends_parameters(tmp_path: Path) -> None:
    task = backup("b", obj("x"))
    task["backend-param"] = {"root": "/r", "dmode": "700", "bucket": "b", "nb-copy-limit": 2}
    path = write(tmp_path, "site.json", {"tasks": [task]})
    task_built = load_config(path).tasks["b"]
    assert isinstance(task_built, BackupTask) and task_built.backend == "null"
