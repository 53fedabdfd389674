"""The `smtp` MUA: sends straight to an SMTP server with smtplib (doc/boot-report.md).

No mailx or local MTA needed. The password is never part of the config that palhm
logs or prints: it is read at send time from a file or an environment variable.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Final, Literal

from palhm.errors import MailError
from palhm.notify.mua.base import Mua
from palhm.records import record

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "localhost"
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_PORTS: Final[Mapping[str, int]] = {"none": 25, "starttls": 587, "tls": 465}

TlsMode = Literal["none", "starttls", "tls"]


@record
class SmtpSettings:
    """`mua-param` of the smtp MUA with defaults applied."""

    host: str
    port: int
    tls: TlsMode
    sender: str
    timeout: float
    username: str | None
    password_file: str | None
    password_env: str | None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SmtpSettings:
        tls: TlsMode = params.get("tls") or "none"
        if tls not in DEFAULT_PORTS:
            raise MailError(f"smtp: tls must be none, starttls or tls, not {tls!r}")
        return cls(
            host=params.get("host") or DEFAULT_HOST,
            port=int(params.get("port") or DEFAULT_PORTS[tls]),
            tls=tls,
            sender=params.get("from") or f"palhm@{socket.gethostname()}",
            timeout=float(params.get("timeout") or DEFAULT_TIMEOUT),
            username=params.get("username"),
            password_file=params.get("password_file"),
            password_env=params.get("password_env"),
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class SmtpMua(Mua):
    """Sends one MIME message (From, To, Subject, Date, Message-ID; UTF-8 text body).

    Parameters (snake_case): `host` (default localhost), `port` (default 25, 465 for
    tls, 587 for starttls), `tls` (none | starttls | tls; certificates checked with
    the system's default trust store), `username` with `password_file` (trailing
    newline stripped) or `password_env` (variable name), `from` (default
    palhm@HOSTNAME), `timeout` (seconds, default 30). Every failure (connection,
    TLS, login, a refused sender or recipient) raises MailError with the server's
    reply or the system's error text.
    """

    name = "smtp"

    def send(self, *, subject: str, body: str, recipients: Sequence[str]) -> None:
        settings = SmtpSettings.from_params(self.params)
        message = build_message(
            sender=settings.sender, recipients=recipients, subject=subject, body=body
        )
        password = read_password(settings) if settings.username else None
        try:
            with _connect(settings) as client:
                if settings.username and password is not None:
                    client.login(settings.username, password)
                client.send_message(message)
        except smtplib.SMTPException as exc:
            raise MailError(f"smtp: {settings.where}: {describe_smtp_error(exc)}") from exc
        except OSError as exc:  # refused, unreachable, timeout, TLS (ssl.SSLError)
            raise MailError(
                f"smtp: cannot talk to {settings.where}: {_os_error_text(exc)}"
            ) from exc
        log.debug("smtp: %s accepted the message for %s", settings.where, ", ".join(recipients))


def build_message(
    *, sender: str, recipients: Sequence[str], subject: str, body: str
) -> EmailMessage:
    """A complete RFC 5322 message; the domain of Message-ID is the sender's."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    domain = parseaddr(sender)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=domain or None)
    message.set_content(body)
    return message


def read_password(settings: SmtpSettings) -> str:
    """The login password from `password_file` or `password_env`; MailError if neither works."""
    if settings.password_file:
        try:
            text = Path(settings.password_file).read_text()
        except OSError as exc:
            raise MailError(
                f"smtp: cannot read password-file {settings.password_file}: {exc.strerror}"
            ) from exc
        return text.removesuffix("\n").removesuffix("\r")
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise MailError(f"smtp: password-env variable {settings.password_env} is not set")
        return value
    raise MailError("smtp: username is set but neither password-file nor password-env")


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    """An open session, TLS already negotiated when asked for."""
    if settings.tls == "tls":
        return smtplib.SMTP_SSL(
            settings.host,
            settings.port,
            timeout=settings.timeout,
            context=ssl.create_default_context(),
        )
    client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    if settings.tls == "starttls":
        try:
            client.starttls(context=ssl.create_default_context())
        except BaseException:
            client.close()
            raise
    return client


def describe_smtp_error(exc: smtplib.SMTPException) -> str:
    """The server's own reply text (code and message) for an smtplib exception."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = [f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in exc.recipients.items()]
        return "recipients refused: " + "; ".join(refused)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {exc.sender} refused: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, exc.smtp_error)
    return str(exc) or type(exc).__name__


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(message.split())}"


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return str(exc)  # e.g. "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ..."
    return exc.strerror or str(exc) or type(exc).__name__
