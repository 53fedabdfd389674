"""A backup run imports only what it needs: start-up is most of a small run's time."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from palhm.cli import main as cli
from tests.integration.backup_support import TASK, backup_config, inline, obj

# Imported only when their feature is used: a ping hook (urllib.request, http.client,
# ssl, email), a config error (jsonschema), the schema compiler (never at run time),
# another checksum (xxhash), an S3 backend (boto3), a metrics textfile (its module and
# `secrets`), the host name (os.uname, not `socket`), a config that is plain JSON
# (pyjson5, and dataclasses, which palhm.records replaces and pyjson5's pprint loads),
# argparse's terminal width (shutil: cli.main asks os).
NOT_NEEDED = (
    "pyjson5",
    "dataclasses",
    "inspect",
    "shutil",
    "palhm.notify.metrics",
    "secrets",
    "socket",
    "urllib.request",
    "http.client",
    "ssl",
    "email",
    "jsonschema",
    "fastjsonschema",
    "xxhash",
    "importlib.resources",
    "boto3",
    "shlex",  # quoting argvs for messages: only for an error or a debug line
)


def test_a_small_backup_run_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    config = backup_config(tmp_path / "c.json", tmp_path / "root", [obj("a", inline("echo", "a"))])
    code = (
        "import json, sys\n"
        "from palhm.cli.main import main\n"
        f"status = main(['-q', '-f', {str(config)!r}, 'run', {TASK!r}])\n"
        "print(json.dumps([status, sorted(sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    status, modules = json.loads(done.stdout.splitlines()[-1])
    assert status == 0, done.stderr
    unwanted = [m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_NEEDED)]
    assert unwanted == []


def test_the_debug_level_still_shows_each_stage_quoted(tmp_path: Path) -> None:
    """The stage line is formatted only when debug is on; with -vv it is there, quoted."""
    config = backup_config(
        tmp_path / "c.json", tmp_path / "root", [obj("a", inline("echo", "two words"))]
    )
    code = (
        "from palhm.cli.main import main\n"
        f"raise SystemExit(main(['-vv', '-f', {str(config)!r}, 'run', {TASK!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "running echo 'two words'" in done.stderr


def test_only_the_named_command_s_parser_is_built() -> None:
    """argparse's parsers cost start-up time: `palhm run` builds `run` alone, and what the
    others would parse stays untouched (help, man pages and typos get them all)."""
    one = cli.build_parser("run")
    commands = next(a for a in one._actions if isinstance(a, argparse._SubParsersAction))
    assert list(commands.choices) == ["run"]
    every = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert {"run", "list", "verify", "get", "restore", "help"} <= set(every.choices)
    assert one.parse_args(["-f", "x", "run", "-n", "t"]).task == "t"


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["run"], "run"),
        (["-q", "-f", "run", "list"], "list"),  # a config file named "run"
        (["--file", "c.json", "-v", "verify", "t"], "verify"),
        (["-v", "--", "get"], "get"),
        (["--version"], None),
        ([], None),
    ],
)
def test_the_command_word_skips_options_and_the_config_file(
    argv: list[str], word: str | None
) -> None:
    assert cli._command_word(argv) == word


def test_a_mistyped_command_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-q", "lsit", "backup"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lsit'" in err and "'list'" in err and "'restore'" in err
