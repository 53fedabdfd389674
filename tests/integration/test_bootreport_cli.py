"""`palhm -f CFG boot-report` as a user runs it: real mailx, SMTP receiver, exit statuses."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import need_program, run_palhm, write_config
from tests.services.smtp import AUTH_PASSWORD, AUTH_USER, SmtpReceiver, TlsReceivers, free_port

S_NAIL = "/usr/bin/s-nail"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
NO_SYSTEMD = pytest.mark.skipif(
    Path("/run/systemd/system").exists(), reason="systemd is running on this machine"
)


def config(tmp_path: Path, **boot_report: Any) -> Path:
    return write_config(tmp_path / "palhm.json", {"boot-report": boot_report})


def s_nail(port: int) -> dict[str, Any]:
    need_program(S_NAIL)
    options = ["v15-compat", "smtp-auth=none", f"mta=smtp://127.0.0.1:{port}"]
    return {"exec": S_NAIL, "int-opts": [*options, "from=palhm@host.test", "nosave"]}


def body_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = yaml.safe_load(text)["boot-report"]
    return fields


def assert_clean_failure(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert 1 <= len(stderr.strip().splitlines()) <= 6


def test_mailx_boot_report_is_delivered(tmp_path: Path, smtp_inbox: SmtpReceiver) -> None:
    cfg = config(
        tmp_path,
        mua="mailx",
        **{"mua-param": s_nail(smtp_inbox.port), "mail-to": ["root@example.test"]},
        header="Host {hostname} booted",
        bootid=True,  # the spelling the original documented
    )
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 0, done.stderr

    [message] = smtp_inbox.messages()
    hostname = socket.gethostname()
    assert message["Subject"] == f"Boot Report from {hostname}"
    assert message["X-RcptTo"] == "root@example.test"
    body = message.get_content()
    assert body.startswith(f"# Host {hostname} booted\n")
    fields = body_fields(body)
    assert fields["hostname"] == hostname
    assert fields["boot-id"] == BOOT_ID.read_text().strip()
    assert set(fields) >= {"time-zone", "utc-offset", "uptime-since", "uptime"}


def test_smtp_boot_report_is_delivered(tmp_path: Path, smtp_inbox: SmtpReceiver) -> None:
    params = {"host": "127.0.0.1", "port": smtp_inbox.port, "from": "palhm@host.test"}
    cfg = config(
        tmp_path,
        mua="smtp",
        subject="{hostname} is up",
        **{"mua-param": params, "mail-to": ["a@example.test", "b@example.test"]},
    )
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 0, done.stderr
    [message] = smtp_inbox.messages()
    assert message["Subject"] == f"{socket.gethostname()} is up"
    assert message["X-RcptTo"] == "a@example.test, b@example.test"
    assert body_fields(message.get_content())["boot-id"] == BOOT_ID.read_text().strip()


def test_smtp_login_with_password_file(tmp_path: Path, smtp_auth_receiver: SmtpReceiver) -> None:
    smtp_auth_receiver.clear()
    secret = tmp_path / "pw"
    secret.write_text(AUTH_PASSWORD + "\n")
    secret.chmod(0o600)
    params = {"host": "127.0.0.1", "port": smtp_auth_receiver.port, "username": AUTH_USER}
    params["password-file"] = str(secret)
    cfg = config(tmp_path, mua="smtp", **{"mua-param": params, "mail-to": ["root@example.test"]})
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 0, done.stderr
    assert len(smtp_auth_receiver.messages()) == 1
    shown = run_palhm(["-f", str(cfg), "config", "show"])
    assert AUTH_PASSWORD not in shown.stdout + shown.stderr


def test_smtp_over_tls_with_trusted_certificate(
    tmp_path: Path, smtp_tls_receivers: TlsReceivers
) -> None:
    receiver = smtp_tls_receivers.smtps
    receiver.clear()
    params = {"host": "127.0.0.1", "port": receiver.port, "tls": "tls"}
    cfg = config(tmp_path, mua="smtp", **{"mua-param": params, "mail-to": ["root@example.test"]})
    done = run_palhm(
        ["-f", str(cfg), "boot-report"], env={"SSL_CERT_FILE": str(smtp_tls_receivers.ca_file)}
    )
    assert done.returncode == 0, done.stderr
    assert len(receiver.messages()) == 1


def test_mailx_failure_exits_1_with_mailx_own_message(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = config(tmp_path, mua="mailx", **{"mua-param": s_nail(port), "mail-to": ["root@t"]})
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 1
    assert "Connection refused" in done.stderr  # s-nail's words
    assert "status 4" in done.stderr
    assert_clean_failure(done.stderr)


def test_smtp_failure_exits_1_naming_the_server(tmp_path: Path) -> None:
    port = free_port()
    params = {"host": "127.0.0.1", "port": port}
    cfg = config(tmp_path, mua="smtp", **{"mua-param": params, "mail-to": ["root@t"]})
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "refused" in done.stderr
    assert_clean_failure(done.stderr)


@pytest.mark.parametrize("spelling", ["bootid", "boot-id"])
def test_both_boot_id_spellings_switch_the_field_off(tmp_path: Path, spelling: str) -> None:
    cfg = config(tmp_path, mua="stdout", **{"mail-to": ["root"], spelling: False})
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 0, done.stderr
    fields = body_fields(done.stdout.split("\n\n", 1)[1])
    assert "boot-id" not in fields and "bood-id" not in fields
    assert fields["hostname"] == socket.gethostname()


def test_stdout_mua_prints_the_report(tmp_path: Path) -> None:
    cfg = config(tmp_path, mua="stdout", **{"mail-to": ["root", "ops"], "uptime": False})
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 0, done.stderr
    head, body = done.stdout.split("\n\n", 1)
    assert head.splitlines() == [
        f"Subject: Boot Report from {socket.gethostname()}",
        "To: root, ops",
    ]
    fields = body_fields(body)
    assert "uptime" not in fields
    assert fields["boot-id"] == BOOT_ID.read_text().strip()


@NO_SYSTEMD
def test_boot_wait_systemd_without_systemd_fails_clearly(tmp_path: Path) -> None:
    cfg = config(tmp_path, mua="stdout", **{"mail-to": ["root"], "boot-wait": "systemd"})
    done = run_palhm(["-f", str(cfg), "boot-report"])
    assert done.returncode == 1
    assert "boot-wait: systemd is not running (systemctl is-system-running: " in done.stderr
    assert done.stdout == ""  # nothing was "sent"
    assert_clean_failure(done.stderr)
