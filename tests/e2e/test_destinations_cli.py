"""The CLI of a task with several destinations, as a user runs it: config errors,
`--dest` on the operations, `list` of every destination, `run --dry-run`, hooks'
environment and templates (doc/backup.md#several-destinations)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_palhm, write_config

PROGRAM = "import sys; sys.stdout.write('payload of ' + sys.argv[1] + '\\n')"


def task_doc(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "id": "t",
        "type": "backup",
        "destinations": [
            {"name": "near", "backend": "localfs", "backend-param": {"root": str(tmp_path / "a")}},
            {"backend": "localfs", "backend-param": {"root": str(tmp_path / "b")}},
        ],
        "objects": [
            {
                "path": "data.txt",
                "pipeline": [
                    {"type": "exec-inline", "argv": [sys.executable, "-c", PROGRAM, "data"]}
                ],
            }
        ],
        **extra,
    }


def palhm(config: Path, *args: str) -> Any:
    result = run_palhm(["-f", str(config), *args])
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "palhm.json", {"tasks": [task_doc(tmp_path)]})


def test_both_forms_at_once_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    doc = task_doc(tmp_path, backend="localfs", **{"backend-param": {"root": "/tmp/x"}})
    config = write_config(tmp_path / "palhm.json", {"tasks": [doc]})
    result = palhm(config, "config", "check")
    assert result.returncode == 2
    assert f"{config}: at 'tasks[0].backend': give either" in result.stderr
    assert not (tmp_path / "a").exists()


def test_duplicate_names_and_different_prefix_forms_are_config_errors(tmp_path: Path) -> None:
    doc = task_doc(tmp_path)
    doc["destinations"][1]["name"] = "near"
    doc["destinations"][1]["backend-param"]["prefix"] = {"type": "basic"}
    config = write_config(tmp_path / "palhm.json", {"tasks": [doc]})
    result = palhm(config, "run", "t")
    assert result.returncode == 2
    assert "at 'tasks[0].destinations[1].name': destination name 'near' is already used" in (
        result.stderr
    )
    assert "at 'tasks[0].destinations[1].backend-param.prefix': every destination" in (
        result.stderr
    )


def test_dest_selects_the_destination_and_an_unknown_one_lists_the_names(
    config: Path, tmp_path: Path
) -> None:
    assert palhm(config, "run", "t").returncode == 0
    (prefix,) = [p.name for p in (tmp_path / "b").iterdir() if not p.name.startswith(".")]
    got = palhm(config, "get", "--dest", "localfs", "t", "latest", "data.txt")
    assert got.returncode == 0 and got.stdout == "payload of data\n"
    listed = json.loads(palhm(config, "list", "--dest", "localfs", "--json", "t").stdout)
    assert [c["prefix"] for c in listed] == [prefix]
    assert listed[0]["location"].startswith(str(tmp_path / "b"))
    assert palhm(config, "verify", "--dest", "near", "t").returncode == 0
    unknown = palhm(config, "verify", "--dest", "far", "t")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "palhm: usage: task 't' has no destination 'far' (destinations: near, localfs)"
    )


def test_list_without_dest_shows_every_destination(config: Path, tmp_path: Path) -> None:
    assert palhm(config, "run", "t").returncode == 0
    text = palhm(config, "list", "t").stdout
    assert text.index("destination 'near' (localfs):") < text.index(str(tmp_path / "a"))
    assert text.index("destination 'localfs' (localfs):") < text.index(str(tmp_path / "b"))
    document = json.loads(palhm(config, "list", "--json", "t").stdout)
    assert [(d["name"], len(d["copies"])) for d in document] == [("near", 1), ("localfs", 1)]


def test_dry_run_plans_every_destination_or_the_one_named(config: Path, tmp_path: Path) -> None:
    plan = palhm(config, "run", "--dry-run", "t").stdout
    assert "2 destinations (near, localfs), require all" in plan
    assert f"new copy: {tmp_path / 'a'}/" in plan and f"new copy: {tmp_path / 'b'}/" in plan
    one = palhm(config, "run", "--dry-run", "--dest", "localfs", "t").stdout
    assert str(tmp_path / "a") not in one and f"new copy: {tmp_path / 'b'}/" in one
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_hooks_get_the_destinations(tmp_path: Path) -> None:
    out = tmp_path / "hook.txt"
    hook = {
        "type": "exec-inline",
        "argv": [
            sys.executable,
            "-c",
            "import os, sys; open(sys.argv[1], 'w').write(os.environ['PALHM_DESTINATIONS_OK']"
            " + '|' + os.environ['PALHM_DESTINATIONS_FAILED'])",
            str(out),
        ],
    }
    config = write_config(
        tmp_path / "palhm.json", {"tasks": [task_doc(tmp_path, **{"on-success": [hook]})]}
    )
    result = palhm(config, "run", "t")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "near localfs|"


def test_replicate_needs_two_destinations_and_known_names(config: Path, tmp_path: Path) -> None:
    same = palhm(config, "replicate", "--from", "near", "--to", "near", "t")
    assert same.returncode == 2 and "--from and --to are both 'near'" in same.stderr
    single = {"id": "s", "type": "backup", "backend": "null", "objects": []}
    other = write_config(tmp_path / "single.json", {"tasks": [single]})
    result = palhm(other, "replicate", "s")
    assert result.returncode == 2 and "has one destination" in result.stderr


def test_rotate_plans_every_destination_or_the_one_named(config: Path, tmp_path: Path) -> None:
    assert palhm(config, "run", "t").returncode == 0
    both = palhm(config, "rotate", "-n", "t")
    assert both.returncode == 0, both.stderr
    assert f"of {tmp_path / 'a'}," in both.stdout and f"of {tmp_path / 'b'}," in both.stdout
    one = palhm(config, "rotate", "-n", "--dest", "near", "t")
    assert f"of {tmp_path / 'a'}," in one.stdout and str(tmp_path / "b") not in one.stdout
