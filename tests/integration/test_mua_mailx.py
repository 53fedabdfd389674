"""The mailx MUA with a real mailx (s-nail) delivering to a real SMTP receiver."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from palhm.bootreport import send_boot_report
from palhm.errors import MailError
from palhm.model import BootReport
from palhm.notify.mua import create_mua
from palhm.notify.mua.mailx import MailxMua
from tests.helpers import need_program
from tests.services.smtp import SmtpReceiver, free_port

S_NAIL = "/usr/bin/s-nail"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def s_nail_params(port: int) -> dict[str, object]:
    need_program(S_NAIL)
    options = ["v15-compat", "smtp-auth=none", f"mta=smtp://127.0.0.1:{port}"]
    return {"exec": S_NAIL, "int_opts": [*options, "from=palhm@host.test", "nosave"]}


def test_argv_passes_each_int_opt_as_dash_s_before_subject_and_recipients() -> None:
    mua = MailxMua({"exec": "/opt/mailx", "int_opts": ["a=1", "nosave"]})
    argv = mua.argv(subject="Hello there", recipients=["x@t", "y@t"])
    assert argv == ["/opt/mailx", "-S", "a=1", "-S", "nosave", "-s", "Hello there", "x@t", "y@t"]


def test_argv_defaults_to_usr_bin_mailx_without_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mailx, s-nail or mail on PATH
    assert MailxMua({}).argv(subject="s", recipients=["r"]) == ["/usr/bin/mailx", "-s", "s", "r"]


@pytest.mark.parametrize("name", ["mailx", "s-nail", "mail"])
def test_a_missing_default_mailx_is_found_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Debian's s-nail has no /usr/bin/mailx: the default finds it on PATH."""
    if Path("/usr/bin/mailx").exists():
        pytest.skip("/usr/bin/mailx exists here: the default needs no lookup")
    program = tmp_path / name
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert MailxMua({}).argv(subject="s", recipients=["r"])[0] == str(program)
    assert MailxMua({"exec": "/usr/bin/mailx"}).argv(subject="s", recipients=["r"])[0] == str(
        program
    )
    # a configured path other than the default is run as written
    assert MailxMua({"exec": "/opt/x/mailx"}).argv(subject="s", recipients=["r"])[0] == (
        "/opt/x/mailx"
    )


def test_boot_report_through_s_nail_arrives_as_yaml(smtp_inbox: SmtpReceiver) -> None:
    report = BootReport(
        mua="mailx",
        mail_to=("root@example.test", "ops@example.test"),
        mua_param=s_nail_params(smtp_inbox.port),
        header="Booted: {hostname}\nsecond line",
    )
    send_boot_report(report, verbosity=3)

    [message] = smtp_inbox.messages()
    hostname = socket.gethostname()
    assert message["Subject"] == f"Boot Report from {hostname}"
    assert message["X-RcptTo"] == "root@example.test, ops@example.test"
    assert message["From"] == "palhm@host.test"
    body = message.get_content()
    assert body.startswith(f"# Booted: {hostname}\n# second line\n")
    fields = yaml.safe_load(body)["boot-report"]
    assert fields["hostname"] == hostname
    assert fields["boot-id"] == BOOT_ID.read_text().strip()
    assert fields["uptime"].startswith("up ")
    assert all(isinstance(value, str) for value in fields.values())


def test_s_nail_failure_raises_mail_error_with_its_own_message() -> None:
    mua = create_mua("mailx", s_nail_params(free_port()))  # nothing listens there
    with pytest.raises(MailError) as caught:
        mua.send(subject="s", body="b\n", recipients=["root@example.test"])
    message = str(caught.value)
    assert "exited with status 4" in message
    assert "Connection refused" in message  # s-nail's own words, not ours
    assert S_NAIL in message


def test_missing_mailx_program_is_a_clear_mail_error(tmp_path: Path) -> None:
    mua = MailxMua({"exec": str(tmp_path / "no-such-mailx")})
    with pytest.raises(MailError, match=r"mailx: cannot run .*no-such-mailx: No such file"):
        mua.send(subject="s", body="b", recipients=["r@example.test"])
