"""The messages a new user meets in the first hour, through the real CLI: tracebacks
only with --debug, -f on either side of the command, `help COMMAND`, octal modes,
keys at the wrong level, YAML files, host warnings of `config check`, `mods`, and a
backup root that does not exist."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from palhm.cli import main as cli
from tests.helpers import run_palhm, write_config


def backup_doc(root: Path, *, argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "tasks": [
            {
                "id": "backup",
                "type": "backup",
                "backend": "localfs",
                "backend-param": {"root": str(root)},
                "objects": [
                    {"path": "a", "pipeline": [{"type": "exec-inline", "argv": argv or ["true"]}]}
                ],
            }
        ]
    }


# --------------------------------------------------------------------------- tracebacks


@pytest.mark.parametrize("verbose", [["-v"], ["-vv"], ["-v", "-v", "-v"]])
def test_verbose_never_prints_a_traceback_on_a_failed_task(
    tmp_path: Path, verbose: list[str]
) -> None:
    config = write_config(tmp_path / "p.json", backup_doc(tmp_path / "root", argv=["false"]))
    done = run_palhm([*verbose, "-f", str(config), "run", "backup"])
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "palhm: error:" in done.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_the_traceback(tmp_path: Path, where: str) -> None:
    config = write_config(tmp_path / "p.json", backup_doc(tmp_path / "root", argv=["false"]))
    args = ["-f", str(config), "run", "backup"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    done = run_palhm(args)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "palhm: error:" in done.stderr


# --------------------------------------------------------------------------- -f / help


def test_file_after_the_command_is_accepted(tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.json", backup_doc(tmp_path / "root"))
    after = run_palhm(["config", "check", "-f", str(config)])
    assert after.returncode == 0, after.stderr
    assert f"{config}: OK" in after.stdout
    # given on both sides, the one after the command wins (the nearest to the command)
    both = run_palhm(["-f", "/nonexistent.conf", "config", "check", "-f", str(config)])
    assert both.returncode == 0, both.stderr
    # given only before it, it is not undone by the command's own -f default
    before = run_palhm(["-f", str(config), "config", "tasks"])
    assert before.stdout == "backup\n"


@pytest.mark.parametrize("option", ["-v", "-q", "--version"])
def test_global_only_options_after_the_command_are_explained(option: str) -> None:
    done = run_palhm(["-f", "builtin:demo", "run", "-n", option])
    assert done.returncode == 2
    assert "go before the command" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_of_every_command_says_what_it_does_exit_statuses_and_an_example() -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert commands.choices
    for name in commands.choices:
        done = run_palhm(["help", name])
        assert done.returncode == 0, done.stderr
        text = done.stdout
        assert f"usage: palhm {name}" in text
        assert "exit status: 0 success" in text, name
        assert "2 usage or config error" in text, name
        summary = next(a.help for a in commands._choices_actions if a.dest == name)
        assert summary and summary in text, name
    run_help = run_palhm(["help", "run"]).stdout
    assert "example:\n  palhm -v run backup" in run_help


# --------------------------------------------------------------------------- config text


@pytest.mark.parametrize(
    "text",
    [
        '{"tasks": [], "x": {"fmode": 0640}}',
        '{"tasks": [], "x": {"dmode":0750, "fmode": "0640"}}',
        '{"tasks": [],\n  "x": [\n    00,\n  ]\n}',
        '{"vl": 03}',
        '{"x": -0644}',
    ],
)
def test_leading_zero_numbers_get_the_string_hint(tmp_path: Path, text: str) -> None:
    config = tmp_path / "p.jsonc"
    config.write_text(text)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 2
    assert 'write modes as strings: "0640"' in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("text", ['{"fmode": "0640" 5}', '{"a": 10 20}', '{"a": 1.05.0}'])
def test_other_number_errors_get_no_octal_hint(tmp_path: Path, text: str) -> None:
    config = tmp_path / "p.jsonc"
    config.write_text(text)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 2
    assert "write modes as strings" not in done.stderr


@pytest.mark.parametrize(
    ("key", "where", "belongs"),
    [
        ("nb-copy-limit", "tasks[0]", "backend-param"),
        ("fmode", "tasks[0]", "backend-param"),
        ("objects", "", "a backup task"),
        ("mail-to", "tasks[0]", "a hook"),
        ("nb-workers", "tasks[0]", "the top level"),
        ("part-size", "tasks[0].objects[0]", "backend-param"),
    ],
)
def test_a_key_at_the_wrong_level_names_where_it_belongs(
    tmp_path: Path, key: str, where: str, belongs: str
) -> None:
    doc = backup_doc(tmp_path / "root")
    node: Any = doc
    for part in where.replace("[", ".").replace("]", "").split(".") if where else []:
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = 3
    config = write_config(tmp_path / "p.json", doc)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 2
    place = f"at '{where}': " if where else ""
    assert f"{config}: {place}unknown key '{key}' here (it belongs in {belongs}" in done.stderr


def test_a_key_valid_for_another_backend_gets_no_wrong_level_hint(tmp_path: Path) -> None:
    doc = {"modules": ["aws"], **backup_doc(tmp_path / "root")}
    doc["tasks"][0]["backend"] = "aws-s3"
    doc["tasks"][0]["backend-param"] = {"bucket": "b", "root": "r", "fmode": "640"}
    done = run_palhm(["-f", str(write_config(tmp_path / "p.json", doc)), "config", "check"])
    assert done.returncode == 2
    assert "at 'tasks[0].backend-param': unknown key 'fmode'" in done.stderr
    assert "belongs" not in done.stderr


@pytest.mark.parametrize(
    "text",
    [
        "tasks:\n  - id: x\n",
        "---\nvl: 3\n",
        "# palhm config\n\nnb-workers: 2\n",
        "%YAML 1.2\n---\n{}\n",
        "- a\n- b\n",
    ],
)
def test_a_yaml_file_is_recognised(tmp_path: Path, text: str) -> None:
    config = tmp_path / "palhm.yaml"
    config.write_text(text)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 2
    assert f"{config}: this looks like YAML" in done.stderr
    assert "JSON with comments" in done.stderr


@pytest.mark.parametrize("text", ['{"vl": 3,,}', "// a comment\n{ oops }", '{"a": "b"'])
def test_broken_json_is_not_called_yaml(tmp_path: Path, text: str) -> None:
    config = tmp_path / "palhm.jsonc"
    config.write_text(text)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 2
    assert "YAML" not in done.stderr
    assert "line 1" in done.stderr or "line 2" in done.stderr


# --------------------------------------------------------------------------- host checks


def test_config_check_warns_about_a_command_not_on_path(tmp_path: Path) -> None:
    doc = backup_doc(tmp_path / "root", argv=["palhm-no-such-command", "-x"])
    doc["execs"] = [
        {"id": "unused", "argv": ["/nonexistent/bin/unused"]},
        {"id": "used", "argv": ["/nonexistent/bin/dump"]},
    ]
    doc["tasks"][0]["objects"].append(
        {"path": "b", "pipeline": [{"type": "exec", "exec-id": "used"}]}
    )
    config = write_config(tmp_path / "p.json", doc)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 0, done.stderr
    assert f"{config}: OK" in done.stdout
    lines = done.stderr.splitlines()
    assert (
        "palhm: warning: task 'backup': command 'palhm-no-such-command' not found on PATH" in lines
    )
    assert "palhm: warning: task 'backup': command '/nonexistent/bin/dump' not an executable file"
    assert not any("unused" in line for line in lines)  # defined but never run: no warning
    assert len(lines) == 2


def test_config_check_warns_about_the_mailx_of_a_boot_report(tmp_path: Path) -> None:
    doc = backup_doc(tmp_path / "root")
    doc["boot-report"] = {
        "mua": "mailx",
        "mua-param": {"exec": str(tmp_path / "mailx")},
        "mail-to": ["root"],
    }
    config = write_config(tmp_path / "p.json", doc)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 0
    assert f"boot-report: command '{tmp_path / 'mailx'}' not an executable file" in done.stderr
    mailx = tmp_path / "mailx"
    mailx.write_text("#!/bin/sh\nexit 0\n")
    mailx.chmod(0o755)
    assert run_palhm(["-f", str(config), "config", "check"]).stderr == ""


def test_missing_boto3_is_a_warning_of_check_and_shown_by_mods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"modules": ["aws"], **backup_doc(tmp_path / "root")}
    config = write_config(tmp_path / "p.json", doc)
    assert cli.main(["mods"]) == 0
    assert capsys.readouterr().out.startswith("aws\tavailable\t")
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    assert cli.main(["mods"]) == 0
    assert capsys.readouterr().out.startswith("aws\tUNAVAILABLE: boto3 not installed\t")
    assert cli.main(["-f", str(config), "config", "check"]) == 0
    captured = capsys.readouterr()
    assert f"{config}: OK" in captured.out
    assert "module 'aws' needs the Python library boto3" in captured.err


# --------------------------------------------------------------------------- missing root


@pytest.mark.parametrize(
    "args", [["list", "backup"], ["verify", "backup"], ["get", "backup", "latest", "a"]]
)
def test_a_missing_root_is_an_error_not_no_copies(tmp_path: Path, args: list[str]) -> None:
    config = write_config(tmp_path / "p.json", backup_doc(tmp_path / "unmounted"))
    done = run_palhm(["-f", str(config), *args])
    assert done.returncode == 1
    assert f"the backup root {tmp_path / 'unmounted'} does not exist" in done.stderr
    assert "mounted" in done.stderr
    assert not (tmp_path / "unmounted").exists()


# --------------------------------------------------------------------------- init


def test_init_writes_a_config_that_passes_check_and_runs(tmp_path: Path) -> None:
    target, root = tmp_path / "etc" / "palhm.conf", tmp_path / "backups"
    done = run_palhm(["init", str(target), "--root", str(root)], input=b"")
    assert done.returncode == 0, done.stderr
    assert f"{target}: OK" in done.stdout
    assert f"palhm: wrote {target}" in done.stderr
    assert target.stat().st_mode & 0o777 == 0o640
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp file
    text = target.read_text()
    assert text.startswith("// palhm config written by `palhm init`")
    assert "apt-get" not in text
    ran = run_palhm(["-f", str(target), "run"], timeout=600)
    assert ran.returncode == 0, ran.stderr
    (copy,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert (copy / "etc.tar.zst").stat().st_size > 0
    assert (copy / "meta" / "os-release").read_bytes() == Path("/etc/os-release").read_bytes()


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / "palhm.conf"
    target.write_text("// mine\n{}\n")
    done = run_palhm(["-f", str(target), "init"], input=b"")
    assert done.returncode == 2
    assert "exists: not overwritten (use --force" in done.stderr
    assert target.read_text() == "// mine\n{}\n"
    forced = run_palhm(["-f", str(target), "init", "--force"], input=b"")
    assert forced.returncode == 0, forced.stderr
    assert "palhm init" in target.read_text()


@pytest.mark.parametrize("root", ["backups", "./b", "../b"])
def test_init_refuses_a_relative_root(tmp_path: Path, root: str) -> None:
    target = tmp_path / "palhm.conf"
    done = run_palhm(["init", str(target), "--root", root], input=b"")
    assert done.returncode == 2
    assert "is relative: give an absolute path" in done.stderr
    assert not target.exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_init_asks_on_a_terminal_only(tmp_path: Path) -> None:
    from palhm.ops.init import init

    shown = io.StringIO()
    init(tmp_path / "a.conf", stdin=_Terminal("/srv/bk\nops@example.org\n"), stdout=shown)
    assert "backup root [/var/backups/palhm]: " in shown.getvalue()
    text = (tmp_path / "a.conf").read_text()
    assert '"root": "/srv/bk"' in text and '"ops@example.org"' in text
    quiet = io.StringIO()
    init(tmp_path / "b.conf", stdin=io.StringIO("/ignored\n"), stdout=quiet)
    assert quiet.getvalue() == ""
    assert '"root": "/var/backups/palhm"' in (tmp_path / "b.conf").read_text()


@pytest.mark.parametrize("mail", ["mailx", "smtp", "none"])
def test_init_configs_for_every_host_kind_pass_check(tmp_path: Path, mail: str) -> None:
    """Every database found and each way to mail: the written config is valid."""
    from palhm.ops.init import DATABASES, Host, render

    host = Host(
        mailx="/usr/bin/s-nail" if mail == "mailx" else None,
        smtp=mail == "smtp",
        databases=list(DATABASES),
    )
    text = render(
        host, root="/var/backups/palhm", mail_to="root", include="builtin:conf.d/core.json"
    )
    config = tmp_path / "palhm.conf"
    config.write_text(text)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 0, done.stderr
    for db in DATABASES:
        assert f'"path": "db/{db.name}.zst"' in text
    assert {"mailx": '"mua": "mailx"', "smtp": '"mua": "smtp"', "none": '"mua": "stdout"'}[
        mail
    ] in text


def test_init_detects_a_server_by_connecting_to_its_socket(tmp_path: Path) -> None:
    import socket

    from palhm.ops.init import socket_answers

    path = str(tmp_path / "db.sock")
    assert not socket_answers(path)  # no socket file
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        assert not socket_answers(path)  # a socket file nobody listens on (stale)
        server.listen(1)
        assert socket_answers(path)


# --------------------------------------------------------------------------- docs drift


def test_dry_run_of_a_null_backend_says_no_copy(tmp_path: Path) -> None:
    doc = backup_doc(tmp_path / "unused")
    doc["tasks"][0]["backend"] = "null"
    del doc["tasks"][0]["backend-param"]
    config = write_config(tmp_path / "p.json", doc)
    done = run_palhm(["-f", str(config), "run", "-n", "backup"])
    assert done.returncode == 0, done.stderr
    assert "no copy: the null backend" in done.stdout
    assert "new copy" not in done.stdout and "rotation" not in done.stdout


@pytest.mark.parametrize(
    ("root", "warned"), [("rel/backups", True), ("./b", True), ("/abs", False)]
)
def test_config_check_warns_about_a_relative_root(tmp_path: Path, root: str, warned: bool) -> None:
    doc = backup_doc(Path(root))
    config = write_config(tmp_path / "p.json", doc)
    done = run_palhm(["-f", str(config), "config", "check"])
    assert done.returncode == 0, done.stderr
    assert ("is relative: it is resolved from palhm's working directory" in done.stderr) is warned


def test_make_install_examples_installs_configs_that_check_in_place(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["make", "-C", str(repo), "install-examples", f"DESTDIR={tmp_path}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    examples = sorted((tmp_path / "usr/local/share/doc/palhm/examples").glob("*.jsonc"))
    shipped = sorted(p.name for p in (repo / "src/palhm/data/examples").glob("*.jsonc"))
    assert "dnssec.jsonc" in shipped
    assert [p.name for p in examples] == shipped
    for example in examples:
        checked = run_palhm(["-f", str(example), "config", "check"], cwd="/")
        assert checked.returncode == 0, checked.stderr
        assert all(line.startswith("palhm: warning: ") for line in checked.stderr.splitlines())


def test_quiet_config_check_prints_no_warnings(tmp_path: Path) -> None:
    doc = backup_doc(tmp_path / "root", argv=["palhm-no-such-command"])
    config = write_config(tmp_path / "p.json", doc)
    done = run_palhm(["-q", "-f", str(config), "config", "check"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
