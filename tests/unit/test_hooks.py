"""Notifications around a task run (doc/design.md#notifications): pings to a real HTTP receiver on
127.0.0.1, mails through the real stdout MUA, the metrics textfile, and the rule that
a failing notification never changes the run's outcome."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from palhm.backends.base import CopyInfo
from palhm.engine.backup import BackupResult
from palhm.engine.rotation import Decision, RotationPlan
from palhm.errors import PipelineError
from palhm.manifest import Manifest, ObjectRecord
from palhm.model import (
    BackupObject,
    BackupTask,
    Config,
    Exec,
    Hooks,
    MailHook,
    PingHook,
    RoutineTask,
)
from palhm.notify.hooks import RunReport, describe_hook, run_with_hooks
from tests.ping_receiver import PingReceiver, dead_url


def backup_result(size: int, kept: int) -> BackupResult:
    """A result as the backup engine returns it: one object of `size` bytes, `kept`
    copies left after rotation."""
    now = datetime.now(UTC)
    record = ObjectRecord("x", size, "blake3", "00", now, now, ())
    manifest = Manifest("db", "2024-01-01T00:00:00+00:00", now, now, (record,))
    decisions = tuple(
        Decision(CopyInfo(f"2024-01-0{i + 1}T00:00:00+00:00", "complete", 1, 1, "/r"), ("x",))
        for i in range(kept)
    )
    plan = RotationPlan(keep=decisions, remove=())
    return BackupResult("db", manifest.prefix, "/r/p", manifest, plan)


def backup_task(hooks: Hooks) -> BackupTask:
    obj = BackupObject("x", (Exec(("true",)),))
    return BackupTask("db", "null", (obj,), hooks=hooks)


def config_for(task: BackupTask | RoutineTask, textfile: Path | None = None) -> Config:
    return Config(source=Path("test.jsonc"), tasks={task.id: task}, metrics_textfile=textfile)


def failing_action() -> None:
    raise PipelineError(
        "task 'db', object 'x', stage 1 (tar)", ["tar", "-c"], "exited with status 2"
    )


def healthchecks_hooks(receiver: PingReceiver, method: str = "GET") -> Hooks:
    return Hooks(
        on_start=(PingHook(receiver.url("/uuid/start"), method=method),),
        on_success=(PingHook(receiver.url("/uuid"), method=method),),
        on_failure=(PingHook(receiver.url("/uuid/fail"), method=method),),
    )


def test_successful_run_pings_start_then_success_and_returns_the_result() -> None:
    with PingReceiver() as receiver:
        task = backup_task(healthchecks_hooks(receiver))
        outcome = backup_result(10, 2)
        result = run_with_hooks(config_for(task), task, lambda: outcome)
    assert result is outcome
    assert receiver.paths() == ["/uuid/start", "/uuid"]
    assert receiver.requests[0].user_agent.startswith("palhm/")


def test_failed_run_pings_fail_with_the_error_and_reraises_it_unchanged() -> None:
    with PingReceiver() as receiver:
        task = backup_task(healthchecks_hooks(receiver, method="POST"))
        with pytest.raises(PipelineError) as raised:
            run_with_hooks(config_for(task), task, failing_action)
    assert "exited with status 2" in str(raised.value)
    assert receiver.paths() == ["/uuid/start", "/uuid/fail"]
    body = receiver.requests[1].body.decode()
    assert "status: failure" in body
    assert "task: db" in body
    assert "exited with status 2" in body


def test_post_success_ping_carries_bytes_and_copies_in_its_body() -> None:
    with PingReceiver() as receiver:
        task = backup_task(Hooks(on_success=(PingHook(receiver.url("/ok"), method="POST"),)))
        run_with_hooks(config_for(task), task, lambda: backup_result(4096, 3))
    body = receiver.requests[0].body.decode()
    assert "bytes-written: 4096" in body
    assert "copies-kept: 3" in body


def test_dead_receiver_is_a_warning_and_the_run_still_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = backup_task(Hooks(on_success=(PingHook(dead_url("/secret-uuid"), timeout=2),)))
    with caplog.at_level(logging.WARNING):
        assert run_with_hooks(config_for(task), task, lambda: 42) == 42
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "on-success" in warnings[0] and "task 'db'" in warnings[0]
    assert "secret-uuid" not in warnings[0]  # the URL path is often the secret


def test_http_error_answer_is_a_warning_and_the_failure_keeps_its_own_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with PingReceiver(status=500) as receiver:
        task = backup_task(healthchecks_hooks(receiver))
        with caplog.at_level(logging.WARNING), pytest.raises(PipelineError):
            run_with_hooks(config_for(task), task, failing_action)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("HTTP 500" in w and "on-failure" in w for w in warnings)
    assert any("on-start" in w for w in warnings)


def test_mail_hook_sends_the_report_through_the_mua(capsys: pytest.CaptureFixture[str]) -> None:
    hook = MailHook("stdout", ("admin@example.test",), subject="[{hostname}] {task}: {status}")
    task = backup_task(Hooks(on_failure=(hook,)))
    with pytest.raises(PipelineError):
        run_with_hooks(config_for(task), task, failing_action)
    out = capsys.readouterr().out
    assert "To: admin@example.test" in out
    subject = next(line for line in out.splitlines() if line.startswith("Subject: "))
    assert subject.endswith("] db: failure")
    assert "exited with status 2" in out


def test_broken_mail_hook_does_not_stop_the_next_hook(caplog: pytest.LogCaptureFixture) -> None:
    broken = MailHook("mailx", ("a@example.test",), mua_param={"exec": "/nonexistent/mailx"})
    with PingReceiver() as receiver:
        task = backup_task(Hooks(on_success=(broken, PingHook(receiver.url("/after")))))
        with caplog.at_level(logging.WARNING):
            run_with_hooks(config_for(task), task, lambda: None)
    assert receiver.paths() == ["/after"]
    assert any("mail via mailx" in r.getMessage() for r in caplog.records)


def test_metrics_textfile_records_success_and_failure(tmp_path: Path) -> None:
    textfile = tmp_path / "palhm.prom"
    task = backup_task(Hooks())
    config = config_for(task, textfile)
    run_with_hooks(config, task, lambda: backup_result(777, 4))
    assert 'palhm_last_run_bytes_written{task="db"} 777' in textfile.read_text()
    assert 'palhm_copies_kept{task="db"} 4' in textfile.read_text()
    with pytest.raises(PipelineError):
        run_with_hooks(config, task, failing_action)
    text = textfile.read_text()
    assert 'palhm_last_run_success{task="db"} 0' in text
    assert 'palhm_copies_kept{task="db"} 4' in text


def test_unwritable_metrics_file_is_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = backup_task(Hooks())
    config = config_for(task, tmp_path / "missing-dir" / "palhm.prom")
    with caplog.at_level(logging.WARNING):
        assert run_with_hooks(config, task, lambda: "done") == "done"
    assert any("cannot write metrics" in r.getMessage() for r in caplog.records)


def test_report_text_is_yaml_like_and_indents_a_multi_line_error() -> None:
    report = RunReport("db", "failure", 0.0, 1.5, error="line one\nline two")
    text = report.text()
    assert "duration-seconds: 1.5" in text
    assert "error: |\n  line one\n  line two\n" in text


def test_hooks_are_named_without_their_secret_path() -> None:
    assert describe_hook(PingHook("https://hc-ping.com/abcd-1234/fail")) == (
        "ping GET https://hc-ping.com/..."
    )
    assert describe_hook(MailHook("smtp", ("a@b.test", "c@d.test"))) == (
        "mail via smtp to a@b.test, c@d.test"
    )
