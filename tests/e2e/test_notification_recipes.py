"""The shipped notification recipes (data/examples/notifications.jsonc), run through the
CLI against a local HTTP receiver that checks method, path, headers and body the way
healthchecks.io, ntfy, Gotify, Slack-style webhooks and Uptime Kuma read them; plus
retries, header sources and templates (doc/operations.md, "Notifications")."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from palhm.config.jsonc import parse_jsonc
from tests.helpers import REPO, run_palhm, write_config
from tests.ping_receiver import Ping, PingReceiver

RECIPES = REPO / "src" / "palhm" / "data" / "examples" / "notifications.jsonc"
SERVICES = (
    "https://hc-ping.com",
    "https://ntfy.sh",
    "https://gotify.example.org",
    "https://hooks.slack.com",
    "https://kuma.example.org",
)
FAIL = {"type": "exec-inline", "argv": ["sh", "-c", "echo 'disk on fire' >&2; exit 3"]}


def recipe(receiver: PingReceiver, task_id: str, tmp_path: Path, *, fail: bool) -> Path:
    """The shipped recipe `task_id`, pointed at the receiver, its routine failing or not."""
    text = RECIPES.read_text()
    for service in SERVICES:
        text = text.replace(service, receiver.url(""))
    text = text.replace("/etc/palhm/gotify.token", str(tmp_path / "gotify.token"))
    document = parse_jsonc(text)
    (task,) = [t for t in document["tasks"] if t["id"] == task_id]
    if fail:
        task["routine"] = [FAIL]
    for hooks in (task.get(k, []) for k in ("on-start", "on-success", "on-failure", "finally")):
        for hook in hooks:
            hook["retry-delay"] = 0  # keep the test fast; retries themselves stay
    return write_config(tmp_path / "palhm.conf", {"tasks": [task]})


def run(path: Path, task_id: str, **env: str) -> Any:
    return run_palhm(["-f", str(path), "run", task_id], env=env)


@pytest.mark.parametrize(("fail", "code"), [(False, "0"), (True, "1")])
def test_healthchecks_start_then_exit_code_url_with_the_log(
    tmp_path: Path, fail: bool, code: str
) -> None:
    with PingReceiver() as receiver:
        result = run(recipe(receiver, "healthchecks", tmp_path, fail=fail), "healthchecks")
    assert result.returncode == int(code)
    start, end = receiver.requests
    assert (start.method, start.path, start.body) == ("GET", "/YOUR-CHECK-UUID/start", b"")
    assert (end.method, end.path) == ("POST", f"/YOUR-CHECK-UUID/{code}")
    assert end.headers["content-type"] == "text/plain; charset=utf-8"
    assert end.user_agent.startswith("palhm/")
    body = end.body.decode()
    assert body.startswith("success after" if not fail else "failure after")
    assert "task 'healthchecks': starting" in body  # the log tail
    if fail:
        assert "exited with status 3" in body and "disk on fire" in body


@pytest.mark.parametrize(
    ("fail", "path"), [(False, "/YOUR-CHECK-UUID"), (True, "/YOUR-CHECK-UUID/fail")]
)
def test_healthchecks_success_and_fail_urls(tmp_path: Path, fail: bool, path: str) -> None:
    with PingReceiver() as receiver:
        run(recipe(receiver, "healthchecks-fail-url", tmp_path, fail=fail), "healthchecks-fail-url")
    (ping,) = receiver.requests
    assert (ping.method, ping.path) == ("POST", path)


def test_ntfy_failure_push_has_title_priority_tags_and_the_token_from_env(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        path = recipe(receiver, "ntfy", tmp_path, fail=True)
        result = run(path, "ntfy", NTFY_AUTH="Bearer tk_secret123")
    assert result.returncode == 1
    (ping,) = receiver.requests
    assert (ping.method, ping.path) == ("POST", "/YOUR-TOPIC")
    assert ping.headers["title"].startswith("palhm: ntfy failed on ")
    assert ping.headers["priority"] == "high"
    assert ping.headers["tags"] == "warning,floppy_disk"
    assert ping.headers["authorization"] == "Bearer tk_secret123"
    assert b"exited with status 3" in ping.body
    assert "tk_secret123" not in result.stderr


def test_ntfy_without_its_token_variable_warns_and_sends_nothing(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        result = run(recipe(receiver, "ntfy", tmp_path, fail=True), "ntfy")
    assert result.returncode == 1  # the run's own failure, not the hook's
    assert receiver.requests == []
    assert "environment variable NTFY_AUTH is not set" in result.stderr


def test_gotify_json_message_with_the_key_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "gotify.token").write_text("AbCdEf.123\n")
    with PingReceiver() as receiver:
        result = run(recipe(receiver, "gotify", tmp_path, fail=True), "gotify")
    assert result.returncode == 1
    (ping,) = receiver.requests
    assert (ping.method, ping.path) == ("POST", "/message")
    assert ping.headers["x-gotify-key"] == "AbCdEf.123"
    assert ping.headers["content-type"] == "application/json"
    message = json.loads(ping.body)
    assert message["title"] == "palhm: gotify failure"
    assert message["priority"] == 8
    assert message["message"].startswith("task 'gotify', item 1: sh -c")


def test_slack_webhook_body_is_valid_json_even_with_quotes_and_newlines(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        path = recipe(receiver, "slack", tmp_path, fail=True)
        run(path, "slack")
    (ping,) = receiver.requests
    assert ping.path == "/services/T000/B000/XXXXXXXX"
    text = json.loads(ping.body)["text"]
    assert text.startswith(":warning: palhm task *slack* failed on ")
    assert "(exit 1)" in text and "'echo '\"'\"'disk on fire" in text and "\n" in text


@pytest.mark.parametrize("fail", [False, True])
def test_uptime_kuma_push_up_or_down_with_an_encoded_message(tmp_path: Path, fail: bool) -> None:
    with PingReceiver() as receiver:
        run(recipe(receiver, "uptime-kuma", tmp_path, fail=fail), "uptime-kuma")
    (ping,) = receiver.requests
    url = urllib.parse.urlsplit(ping.path)
    assert (ping.method, url.path) == ("GET", "/api/push/PUSH-TOKEN")
    query = urllib.parse.parse_qs(url.query)
    if fail:
        assert query["status"] == ["down"]
        assert query["msg"][0].startswith("task 'uptime-kuma', item 1: sh -c")
    else:
        assert query["status"] == ["up"] and query["msg"] == ["OK"]
        assert float(query["ping"][0]) >= 0


# ------------------------------------------------------------------ retries, methods


def ping_task(receiver: PingReceiver, tmp_path: Path, **hook: Any) -> Path:
    task = {
        "id": "default",
        "type": "routine",
        "routine": [],
        "finally": [{"type": "ping", "url": receiver.url("/hook"), **hook}],
    }
    return write_config(tmp_path / "palhm.conf", {"tasks": [task]})


def test_retries_until_the_receiver_answers(tmp_path: Path) -> None:
    with PingReceiver(fail_first=2) as receiver:
        path = ping_task(receiver, tmp_path, retries=3, **{"retry-delay": 0.05})
        result = run_palhm(["-v", "-f", str(path), "run"])
    assert result.returncode == 0
    assert len(receiver.requests) == 3
    assert "attempt 1 failed (HTTP 503), retrying" in result.stderr
    assert "hook" not in result.stderr.split("failed:")[-1] or "warning" not in result.stderr


def test_retries_exhausted_is_one_warning_and_the_run_still_succeeds(tmp_path: Path) -> None:
    with PingReceiver(status=500) as receiver:
        path = ping_task(receiver, tmp_path, retries=2, **{"retry-delay": 0})
        result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0
    assert len(receiver.requests) == 3
    assert "finally hook ping GET http://127.0.0.1" in result.stderr
    assert "HTTP 500" in result.stderr


def test_put_sends_the_short_report_when_no_body_is_set(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        run_palhm(["-f", str(ping_task(receiver, tmp_path, method="PUT")), "run"])
    (ping,) = receiver.requests
    assert ping.method == "PUT"
    assert b"task: default\nstatus: success\n" in ping.body


def test_json_placeholder_is_the_run_json_document(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        path = ping_task(receiver, tmp_path, method="POST", body="{json}")
        result = run_palhm(["-f", str(path), "run", "--json"])
    (ping,) = receiver.requests
    sent, printed = json.loads(ping.body), json.loads(result.stdout)
    assert sent["task"] == printed["task"] == "default"
    assert sent["status"] == printed["status"] == "success"


def test_body_and_body_json_together_are_a_config_error(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        path = ping_task(receiver, tmp_path, method="POST", body="x", **{"body-json": {}})
    result = run_palhm(["-f", str(path), "config", "check"])
    assert result.returncode == 2
    assert "tasks[0].finally[0]" in result.stderr


def test_header_from_a_missing_file_is_a_warning_naming_it(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        missing = tmp_path / "no-such-token"
        path = ping_task(receiver, tmp_path, headers={"X-Key": {"file": str(missing)}})
        result = run_palhm(["-f", str(path), "run"])
    assert result.returncode == 0
    assert receiver.requests == []
    assert str(missing) in result.stderr


def test_unused_placeholder_and_other_braces_are_left_alone(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        body = '{"a": 1} {nope} {task}'
        run_palhm(["-f", str(ping_task(receiver, tmp_path, method="POST", body=body)), "run"])
    assert receiver.requests[0].body == b'{"a": 1} {nope} default'


def test_request_bodies_never_reach_a_get(tmp_path: Path) -> None:
    with PingReceiver() as receiver:
        run_palhm(["-f", str(ping_task(receiver, tmp_path, body="ignored")), "run"])
    ping: Ping = receiver.requests[0]
    assert (ping.method, ping.body) == ("GET", b"")


def test_http_proxy_from_the_environment_is_used_like_urllib_does(tmp_path: Path) -> None:
    """The receiver plays the proxy: it gets the absolute URL (no name is resolved)."""
    with PingReceiver() as proxy:
        task = {
            "id": "default",
            "type": "routine",
            "routine": [],
            "finally": [{"type": "ping", "url": "http://monitor.invalid/ping/{status}"}],
        }
        path = write_config(tmp_path / "palhm.conf", {"tasks": [task]})
        env = {"http_proxy": proxy.url(""), "no_proxy": "", "NO_PROXY": ""}
        result = run_palhm(["-f", str(path), "run"], env=env)
    assert result.returncode == 0, result.stderr
    (ping,) = proxy.requests
    assert ping.path == "http://monitor.invalid/ping/success"
    assert ping.headers["host"] == "monitor.invalid"
