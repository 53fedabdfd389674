"""From validated config to palhm.model objects, and the effective document."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from palhm import model
from palhm.config import load_config, load_effective
from palhm.values import Limit
from tests.unit.config.util import backup, inline, obj, routine, write

TAR = {"id": "tar", "argv": ["/usr/bin/tar", "-cf", "-"], "env": {"A": "1", "B": "2"}, "ec": "<2"}


def load(tmp_path: Path, document: dict[str, Any] | str) -> model.Config:
    return load_config(write(tmp_path, "site.jsonc", document))


def backup_of(config: model.Config, task_id: str) -> model.BackupTask:
    task = config.tasks[task_id]
    assert isinstance(task, model.BackupTask)
    return task


def test_exec_definition_fields(tmp_path: Path) -> None:
    config = load(
        tmp_path, {"execs": [TAR, {"id": "cat", "argv": ["/usr/bin/cat"], "timeout": 5, "ec": 1}]}
    )
    tar, cat = config.execs["tar"], config.execs["cat"]
    assert tar.argv == ("/usr/bin/tar", "-cf", "-")
    assert dict(tar.env) == {"A": "1", "B": "2"}
    assert (tar.ec.low, tar.ec.high, tar.vl_stderr, tar.vl_stdout, tar.timeout) == (
        0,
        1,
        1,
        3,
        None,
    )
    assert (cat.ec.low, cat.ec.high, cat.timeout) == (1, 1, 5.0)


def test_exec_append_appends_argv_and_merges_env(tmp_path: Path) -> None:
    stage = {
        "type": "exec-append",
        "exec-id": "tar",
        "argv": ["-C", "/", "etc"],
        "env": {"B": "x", "C": "3"},
    }
    config = load(tmp_path, {"execs": [TAR], "tasks": [backup("b", obj("etc.tar", stage))]})
    (built,) = backup_of(config, "b").objects[0].pipeline
    assert built.argv == ("/usr/bin/tar", "-cf", "-", "-C", "/", "etc")
    assert dict(built.env) == {"A": "1", "B": "x", "C": "3"}
    assert built.id == "tar" and built.ec.text == "<2"
    assert config.execs["tar"].argv == ("/usr/bin/tar", "-cf", "-")
    assert dict(config.execs["tar"].env) == {"A": "1", "B": "2"}


def test_overrides_apply_to_one_use_only(tmp_path: Path) -> None:
    pipeline: list[dict[str, Any]] = [
        {"type": "exec", "exec-id": "tar", "vl-stderr": 4, "timeout": 9},
        {"type": "exec", "exec-id": "tar"},
        {"type": "exec-append", "exec-id": "tar", "argv": [], "vl-stdout": 0},
    ]
    config = load(tmp_path, {"execs": [TAR], "tasks": [backup("b", obj("x", *pipeline))]})
    first, second, third = backup_of(config, "b").objects[0].pipeline
    assert (first.vl_stderr, first.timeout) == (4, 9.0)
    assert second == config.execs["tar"]
    assert (second.vl_stderr, second.timeout) == (1, None)
    assert (third.vl_stdout, third.vl_stderr, third.argv) == (0, 1, config.execs["tar"].argv)
    assert config.execs["tar"].vl_stderr == 1


def test_the_same_exec_twice_in_one_pipeline_gives_two_stages(tmp_path: Path) -> None:
    stage = {"type": "exec", "exec-id": "tar"}
    config = load(tmp_path, {"execs": [TAR], "tasks": [backup("b", obj("x", stage, stage))]})
    assert len(backup_of(config, "b").objects[0].pipeline) == 2


def test_exec_inline_has_no_id_and_its_own_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path, {"tasks": [routine("r", inline("/usr/bin/env", env={"X": "1"}, ec=">=0"))]}
    )
    task = config.tasks["r"]
    assert isinstance(task, model.RoutineTask)
    (item,) = task.items
    assert isinstance(item, model.Exec)
    assert (item.id, item.argv, dict(item.env), item.ec.accepts(255)) == (
        None,
        ("/usr/bin/env",),
        {"X": "1"},
        True,
    )
    assert item.label == "/usr/bin/env"


def test_routine_items(tmp_path: Path) -> None:
    sigmask = {
        "type": "builtin",
        "builtin-id": "sigmask",
        "param": [
            {"action": "block", "sig": ["TERM", "sigint", 1, "10"]},
            {"action": "unblock", "sig": ["HUP"]},
        ],
    }
    config = load(
        tmp_path, {"tasks": [routine("r", sigmask, {"type": "task", "task-id": "s"}), routine("s")]}
    )
    task = config.tasks["r"]
    assert isinstance(task, model.RoutineTask)
    builtin, pointer = task.items
    assert pointer == model.TaskRef("s")
    assert builtin == model.Builtin(
        "sigmask",
        (
            model.SigmaskAction(
                "block", (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
            ),
            model.SigmaskAction("unblock", (signal.SIGHUP,)),
        ),
    )
    assert all(type(s) is int for s in builtin.sigmask[0].signals)


def test_object_paths_are_stored_normalised(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {
            "tasks": [
                backup("b", obj("./a//b/./c/"), obj("d", group="default", **{"alloc-size": 5}))
            ]
        },
    )
    first, second = backup_of(config, "b").objects
    assert (first.path, first.group, first.alloc_size) == ("a/b/c", "default", None)
    assert (second.path, second.alloc_size) == ("d", 5)


def test_localfs_backend_param_is_snake_case_with_defaults_and_parsed_modes(tmp_path: Path) -> None:
    params = {
        "root": "/srv/b",
        "fmode": 600,
        "nb-copy-limit": "7.9",
        "root-size-limit": "-Infinity",
        "keep-daily": 7,
        "prefix": {"type": "iso8601", "timespec": "minutes"},
    }
    task = {
        "id": "b",
        "type": "backup",
        "backend": "localfs",
        "backend-param": params,
        "objects": [],
    }
    built = backup_of(load(tmp_path, {"tasks": [task]}), "b")
    assert dict(built.backend_param) == {
        "root": "/srv/b",
        "dmode": 0o750,
        "fmode": 0o600,
        "block_size": 128 << 10,
        "create_root": True,
        "require_mount": False,
    }
    assert built.prefix == model.PrefixSpec(kind="iso8601", timespec="minutes", tz="utc")
    assert built.retention == model.RetentionPolicy(
        nb_copy_limit=Limit(7), root_size_limit=Limit(None), keep_daily=7
    )
    assert built.checksum == "blake3"


def test_aws_s3_backend_param(tmp_path: Path) -> None:
    params = {
        "bucket": "k",
        "root": "/r/",
        "endpoint-url": "http://127.0.0.1:5000",
        "part-size": 8 << 20,
    }
    task = {
        "id": "b",
        "type": "backup",
        "backend": "aws-s3",
        "backend-param": params,
        "checksum": "none",
    }
    built = backup_of(load(tmp_path, {"modules": ["aws"], "tasks": [task]}), "b")
    assert dict(built.backend_param) == {
        "bucket": "k",
        "root": "/r/",
        "endpoint_url": "http://127.0.0.1:5000",
        "part_size": 8 << 20,
        "equal_parts": False,
        "request_checksums": "auto",
        "conditional_writes": "auto",
        "delete": "normal",
    }
    assert (built.objects, built.prefix, built.checksum) == ((), model.PrefixSpec(), "none")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ({"type": "default"}, model.PrefixSpec()),
        ({"type": "basic"}, model.PrefixSpec(kind="basic")),
        (
            {"type": "basic", "tz": "local", "timespec": "hours"},
            model.PrefixSpec("basic", "hours", "local"),
        ),
    ],
)
def test_prefixes(tmp_path: Path, prefix: dict[str, Any], expected: model.PrefixSpec) -> None:
    task = backup("b", **{"backend-param": {"prefix": prefix}})
    assert backup_of(load(tmp_path, {"tasks": [task]}), "b").prefix == expected


def test_limits_beyond_2_53_are_exact(tmp_path: Path) -> None:
    text = (
        '{"tasks": [{"id": "b", "type": "backup", "backend": "null",'
        ' "backend-param": {"root-size-limit": 1152921504606846977}}]}'
    )
    assert backup_of(load(tmp_path, text), "b").retention.root_size_limit == Limit(2**60 + 1)


def test_hooks(tmp_path: Path) -> None:
    task = routine("r")
    task["on-start"] = [{"type": "ping", "url": "http://127.0.0.1:1/start"}]
    task["on-failure"] = [
        {
            "type": "mail",
            "mua": "smtp",
            "mail-to": ["a@b"],
            "mua-param": {"password-env": "P"},
            "subject": "s",
        }
    ]
    hooks = load(tmp_path, {"tasks": [task]}).tasks["r"].hooks
    assert hooks.on_start == (
        model.PingHook(url="http://127.0.0.1:1/start", timeout=10.0, method="GET"),
    )
    assert hooks.on_success == ()
    (mail,) = hooks.on_failure
    assert isinstance(mail, model.MailHook)
    assert (mail.mua, mail.mail_to, mail.subject) == ("smtp", ("a@b",), "s")
    assert dict(mail.mua_param) == {"host": "localhost", "tls": "none", "password_env": "P"}


def test_boot_report_with_defaults_and_the_old_bootid_spelling(tmp_path: Path) -> None:
    report = load(
        tmp_path, {"boot-report": {"mua": "mailx", "mail-to": ["root"], "bootid": False}}
    ).boot_report
    assert report is not None
    assert (report.mua, report.mail_to, report.boot_id) == ("mailx", ("root",), False)
    assert dict(report.mua_param) == {"exec": "/usr/bin/mailx"}
    assert (report.subject, report.uptime, report.uptime_since, report.delay, report.boot_wait) == (
        "Boot Report from {hostname}",
        True,
        True,
        0.0,
        None,
    )


def test_top_level_scalars_and_metrics(tmp_path: Path) -> None:
    config = load(tmp_path, {"vl": 5, "nb-workers": -1, "metrics": {"textfile": "/tmp/p.prom"}})
    assert (config.vl, config.nb_workers, config.metrics_textfile) == (5, -1, Path("/tmp/p.prom"))
    empty = load_config(write(tmp_path, "empty.json", {}))
    assert (empty.vl, empty.nb_workers, empty.boot_report, empty.metrics_textfile) == (
        3,
        0,
        None,
        None,
    )
    assert empty.source == tmp_path / "empty.json"


def test_model_collections_are_read_only(tmp_path: Path) -> None:
    config = load(tmp_path, {"execs": [TAR], "tasks": [routine("r")]})
    with pytest.raises(TypeError):
        config.execs["x"] = config.execs["tar"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.execs["tar"].env["A"] = "2"  # type: ignore[index]


# --------------------------------------------------------------------------- effective document


def test_effective_document_fills_defaults_and_is_json(tmp_path: Path) -> None:
    write(tmp_path, "inc.json", {"execs": [{"id": "cat", "argv": ["/usr/bin/cat"]}], "vl": 4})
    main = write(
        tmp_path,
        "main.jsonc",
        '{"include": ["inc.json"], "tasks": [{"id": "b", "type": "backup", "backend": "localfs",'
        ' "backend-param": {"root": "/r", "nb-copy-limit": Infinity},'
        ' "objects": [{"path": "x", "pipeline": [{"type": "exec", "exec-id": "cat"}]}]}],'
        ' "boot-report": {"mua": "smtp", "mail-to": ["r"], "bootid": false}}',
    )
    config, effective = load_effective(main)
    assert json.loads(json.dumps(effective, allow_nan=False)) == effective
    assert effective["vl"] == 4 and effective["nb-workers"] == 0
    assert effective["execs"] == [
        {"id": "cat", "argv": ["/usr/bin/cat"], "ec": "==0", "vl-stderr": 1, "vl-stdout": 3}
    ]
    (task_out,) = effective["tasks"]
    assert task_out["checksum"] == "blake3"
    assert task_out["backend-param"] == {
        "root": "/r",
        "nb-copy-limit": "Infinity",
        "prefix": {"type": "default"},
        "root-size-limit": "Infinity",
        "dmode": "750",
        "fmode": "640",
        "block-size": 131072,
        "create-root": True,
        "require-mount": False,
    }
    assert task_out["objects"] == [
        {
            "path": "x",
            "pipeline": [{"type": "exec", "exec-id": "cat"}],
            "retries": 0,
            "retry-delay": 10,
            "group": "default",
        }
    ]
    report = effective["boot-report"]
    assert report["boot-id"] is False and "bootid" not in report
    assert report["mua-param"] == {"host": "localhost", "tls": "none"}
    assert report["subject"] == "Boot Report from {hostname}"
    assert config.vl == 4


def test_effective_document_does_not_change_what_was_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, "site.json", {"execs": [{"id": "a", "argv": ["a"]}]})
    first = load_effective(path)[1]
    first["execs"][0]["argv"].append("changed")
    assert load_effective(path)[1]["execs"][0]["argv"] == ["a"]
