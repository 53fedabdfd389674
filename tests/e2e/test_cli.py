"""The command line as a user runs it: usage, help, exit statuses, default config path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import run_palhm, write_config

FAIL_ARGV = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]

ROUTINE_CONFIG = {
    "tasks": [
        {
            "id": "default",
            "type": "routine",
            "routine": [{"type": "exec-inline", "argv": ["true"]}],
        },
        {
            "id": "hello",
            "type": "routine",
            "routine": [{"type": "exec-inline", "argv": ["echo", "hello from palhm"]}],
        },
    ]
}


def test_version_prints_package_version() -> None:
    from palhm import __version__

    result = run_palhm(["--version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"palhm {__version__}"


def test_help_without_command_lists_every_command() -> None:
    result = run_palhm(["help"])
    assert result.returncode == 0
    for command in ("run", "config", "schema", "mods", "boot-report", "list", "verify", "get"):
        assert command in result.stdout


def test_help_with_one_word_shows_that_commands_usage() -> None:
    result = run_palhm(["help", "run"])
    assert result.returncode == 0
    assert "--dry-run" in result.stdout
    assert "usage: palhm run" in result.stdout


def test_help_for_unknown_command_is_a_usage_error_listing_commands() -> None:
    result = run_palhm(["help", "frobnicate"])
    assert result.returncode == 2
    assert "no command 'frobnicate'" in result.stderr
    assert "boot-report" in result.stderr


def test_unknown_option_is_a_usage_error_without_traceback() -> None:
    result = run_palhm(["--frobnicate", "run"])
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr or "frobnicate" in result.stderr
    assert "Traceback" not in result.stderr


def test_quiet_and_verbose_together_are_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "palhm.conf", ROUTINE_CONFIG)
    result = run_palhm(["-q", "-v", "-f", str(config), "run"])
    assert result.returncode == 2
    assert "-q and -v" in result.stderr


def test_no_command_is_a_usage_error() -> None:
    result = run_palhm([])
    assert result.returncode == 2
    assert "no command given" in result.stderr


@pytest.mark.parametrize("task_args", [[], [""]], ids=["no-task", "empty-task-name"])
def test_run_without_a_task_name_runs_the_default_task(
    tmp_path: Path, task_args: list[str]
) -> None:
    marker = tmp_path / "ran"
    doc = {
        "tasks": [
            {
                "id": "default",
                "type": "routine",
                "routine": [{"type": "exec-inline", "argv": ["touch", str(marker)]}],
            }
        ]
    }
    config = write_config(tmp_path / "palhm.jsonc", doc)
    result = run_palhm(["-f", str(config), "run", *task_args])
    assert result.returncode == 0, result.stderr
    assert marker.exists()


def test_unknown_task_is_a_usage_error_listing_known_tasks(tmp_path: Path) -> None:
    config = write_config(tmp_path / "palhm.conf", ROUTINE_CONFIG)
    result = run_palhm(["-f", str(config), "run", "nope"])
    assert result.returncode == 2
    assert "unknown task 'nope'" in result.stderr
    assert "default, hello" in result.stderr


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_palhm(["-f", str(tmp_path / "absent.conf"), "config", "check"])
    assert result.returncode == 2
    assert "absent.conf" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_passes_a_valid_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "palhm.conf", ROUTINE_CONFIG)
    result = run_palhm(["-f", str(config), "config", "check"])
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_config_show_prints_the_merged_config_as_json(tmp_path: Path) -> None:
    write_config(
        tmp_path / "conf.d" / "extra.json",
        {"execs": [{"id": "say", "argv": ["echo", "hi"]}]},
    )
    doc = dict(ROUTINE_CONFIG, include=["conf.d/extra.json"])
    config = write_config(tmp_path / "palhm.conf", doc)
    result = run_palhm(["-f", str(config), "config", "show"], cwd="/")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [e["id"] for e in shown["execs"]] == ["say"]
    assert {t["id"] for t in shown["tasks"]} == {"default", "hello"}


def test_bare_config_command_prints_the_effective_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "palhm.conf", ROUTINE_CONFIG)
    result = run_palhm(["-f", str(config), "config"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"][1]["id"] == "hello"


def test_schema_prints_a_json_schema() -> None:
    result = run_palhm(["schema"])
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "$schema" in schema
    assert "tasks" in schema["properties"]


def test_mods_lists_the_aws_module() -> None:
    result = run_palhm(["mods"])
    assert result.returncode == 0
    assert result.stdout.startswith("aws\t")
    assert "aws-s3" in result.stdout and "aws-sns" in result.stdout


def test_mods_does_not_import_boto3() -> None:
    code = (
        "import sys; from palhm.cli.main import main; main(['mods']); print('boto3' in sys.modules)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_failing_routine_exits_1_with_one_readable_message(tmp_path: Path) -> None:
    doc = {
        "tasks": [
            {
                "id": "default",
                "type": "routine",
                "routine": [{"type": "exec-inline", "argv": FAIL_ARGV}],
            }
        ]
    }
    config = write_config(tmp_path / "palhm.conf", doc)
    result = run_palhm(["-f", str(config), "run"])
    assert result.returncode == 1
    assert "task 'default'" in result.stderr
    assert "status 3" in result.stderr
    assert "boom" in result.stderr
    assert "Traceback" not in result.stderr
