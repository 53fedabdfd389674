"""The smtp MUA (doc/boot-report.md) against real aiosmtpd receivers: plain, AUTH, SMTPS,
STARTTLS."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from palhm.bootreport import send_boot_report
from palhm.errors import MailError
from palhm.model import BootReport
from palhm.notify.mua import create_mua
from palhm.notify.mua.smtp import SmtpSettings
from tests.services.smtp import AUTH_PASSWORD, AUTH_USER, SmtpReceiver, TlsReceivers, free_port

RCPT = ["root@example.test"]


def send(params: dict[str, object], subject: str = "Test subject", body: str = "hello\n") -> None:
    create_mua("smtp", params).send(subject=subject, body=body, recipients=RCPT)


def test_default_port_follows_tls_mode() -> None:
    ports = {
        tls: SmtpSettings.from_params({"tls": tls}).port for tls in ("none", "starttls", "tls")
    }
    assert ports == {"none": 25, "starttls": 587, "tls": 465}
    assert SmtpSettings.from_params({"tls": "tls", "port": 2465}).port == 2465


def test_boot_report_over_smtp_is_a_complete_mime_message(smtp_inbox: SmtpReceiver) -> None:
    report = BootReport(
        mua="smtp",
        mail_to=("root@example.test", "ops@example.test"),
        mua_param={"host": "127.0.0.1", "port": smtp_inbox.port, "from": "palhm@host.test"},
        subject="Booted {hostname}",
    )
    send_boot_report(report, verbosity=3)

    [message] = smtp_inbox.messages()
    assert message["Subject"] == f"Booted {socket.gethostname()}"
    assert message["To"] == "root@example.test, ops@example.test"
    assert message["X-RcptTo"] == "root@example.test, ops@example.test"
    assert message["X-MailFrom"] == "palhm@host.test"
    assert message["Date"] is not None
    assert message["Message-ID"].endswith("@host.test>")
    fields = yaml.safe_load(message.get_content())["boot-report"]
    assert fields["hostname"] == socket.gethostname()
    assert fields["boot-id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_sender_defaults_to_palhm_at_hostname(smtp_inbox: SmtpReceiver) -> None:
    send({"host": "127.0.0.1", "port": smtp_inbox.port})
    [message] = smtp_inbox.messages()
    assert message["X-MailFrom"] == f"palhm@{socket.gethostname()}"


def test_non_ascii_body_arrives_intact(smtp_inbox: SmtpReceiver) -> None:
    send({"host": "127.0.0.1", "port": smtp_inbox.port}, body="Grüße aus dem Rechenzentrum\n")
    [message] = smtp_inbox.messages()
    assert message.get_content() == "Grüße aus dem Rechenzentrum\n"


def test_connection_refused_is_a_mail_error_naming_the_server() -> None:
    port = free_port()
    with pytest.raises(MailError, match=rf"smtp: cannot talk to 127\.0\.0\.1:{port}: .*refused"):
        send({"host": "127.0.0.1", "port": port})


def test_login_with_password_file(smtp_auth_receiver: SmtpReceiver, tmp_path: Path) -> None:
    smtp_auth_receiver.clear()
    secret = tmp_path / "smtp-password"
    secret.write_text(AUTH_PASSWORD + "\n")  # as `echo pw > file` writes it
    params = {"host": "127.0.0.1", "port": smtp_auth_receiver.port, "username": AUTH_USER}
    send({**params, "password_file": str(secret)}, subject="with file")
    assert [m["Subject"] for m in smtp_auth_receiver.messages()] == ["with file"]


def test_login_with_password_env(
    smtp_auth_receiver: SmtpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp_auth_receiver.clear()
    monkeypatch.setenv("PALHM_TEST_SMTP_PW", AUTH_PASSWORD)
    params = {"host": "127.0.0.1", "port": smtp_auth_receiver.port, "username": AUTH_USER}
    send({**params, "password_env": "PALHM_TEST_SMTP_PW"}, subject="with env")
    assert [m["Subject"] for m in smtp_auth_receiver.messages()] == ["with env"]


def test_wrong_password_reports_the_server_reply(
    smtp_auth_receiver: SmtpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALHM_TEST_SMTP_PW", "not the password")
    params = {"host": "127.0.0.1", "port": smtp_auth_receiver.port, "username": AUTH_USER}
    with pytest.raises(MailError, match=r"smtp: 127\.0\.0\.1:\d+: 535 .*[Aa]uthentication"):
        send({**params, "password_env": "PALHM_TEST_SMTP_PW"})


def test_server_requiring_auth_refuses_anonymous_mail(smtp_auth_receiver: SmtpReceiver) -> None:
    with pytest.raises(MailError, match=r"530 .*[Aa]uthentication required"):
        send({"host": "127.0.0.1", "port": smtp_auth_receiver.port})


def test_unset_password_env_is_named(smtp_inbox: SmtpReceiver) -> None:
    params = {"host": "127.0.0.1", "port": smtp_inbox.port, "username": "u"}
    with pytest.raises(MailError, match="password-env variable PALHM_NO_SUCH_VAR is not set"):
        send({**params, "password_env": "PALHM_NO_SUCH_VAR"})


def test_unreadable_password_file_is_named(smtp_inbox: SmtpReceiver, tmp_path: Path) -> None:
    params = {"host": "127.0.0.1", "port": smtp_inbox.port, "username": "u"}
    missing = tmp_path / "missing"
    with pytest.raises(MailError, match=f"cannot read password-file {missing}: No such file"):
        send({**params, "password_file": str(missing)})


def test_smtps_delivers_when_the_certificate_is_trusted(
    smtp_tls_receivers: TlsReceivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = smtp_tls_receivers.smtps
    receiver.clear()
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_tls_receivers.ca_file))
    send({"host": "127.0.0.1", "port": receiver.port, "tls": "tls"}, subject="over smtps")
    assert [m["Subject"] for m in receiver.messages()] == ["over smtps"]


def test_starttls_delivers_when_the_certificate_is_trusted(
    smtp_tls_receivers: TlsReceivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = smtp_tls_receivers.starttls
    receiver.clear()
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_tls_receivers.ca_file))
    send({"host": "127.0.0.1", "port": receiver.port, "tls": "starttls"}, subject="starttls")
    assert [m["Subject"] for m in receiver.messages()] == ["starttls"]


def test_untrusted_certificate_is_refused(smtp_tls_receivers: TlsReceivers) -> None:
    receiver = smtp_tls_receivers.smtps
    receiver.clear()
    with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
        send({"host": "127.0.0.1", "port": receiver.port, "tls": "tls"})
    assert receiver.messages() == []


def test_starttls_against_a_plain_server_fails_clearly(smtp_inbox: SmtpReceiver) -> None:
    # aiosmtpd without a TLS context does not offer STARTTLS: no silent plain-text fallback.
    with pytest.raises(MailError, match="STARTTLS extension not supported"):
        send({"host": "127.0.0.1", "port": smtp_inbox.port, "tls": "starttls"})
    assert smtp_inbox.messages() == []
