"""Service fixtures: real SMTP receivers (aiosmtpd) storing every mail in a Maildir.

- `smtp_receiver` (session): `python -m aiosmtpd` on 127.0.0.1, plain SMTP, no auth.
- `smtp_inbox` (function): the same receiver with its Maildir emptied first.
- `smtp_auth_receiver` (session): AUTH LOGIN/PLAIN required (user `palhm`, password
  `s3cret pass`), over plain SMTP (auth_require_tls off, test only).
- `smtp_tls_receivers` (session): one SMTPS (implicit TLS) and one STARTTLS receiver
  with a self-signed certificate for 127.0.0.1; `.ca_file` is the certificate, to be
  given to clients as SSL_CERT_FILE.

The auth and TLS receivers are this module run as a program (`python -m
tests.services.smtp ...`), because the aiosmtpd command line cannot require AUTH.
Each fixture starts exactly one process, records its PID and stops only that one.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, free_port, need_program, require_services

AUTH_USER = "palhm"
AUTH_PASSWORD = "s3cret pass"
READY_TIMEOUT = 20.0


def make_maildir(path: Path) -> Path:
    # aiosmtpd's Mailbox answers "500 FileNotFoundError" unless all three exist.
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class SmtpReceiver:
    """A running receiver: where it listens and what it has received."""

    host: str
    port: int
    maildir: Path
    process: subprocess.Popen[bytes]
    ca_file: Path | None = None

    def messages(self) -> list[EmailMessage]:
        """Every received mail, oldest first, parsed with the modern email policy."""
        files = [f for sub in ("new", "cur") for f in (self.maildir / sub).iterdir()]
        files.sort(key=lambda f: (f.stat().st_mtime_ns, f.name))
        parsed = []
        for file in files:
            message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed

    def clear(self) -> None:
        for sub in ("new", "cur", "tmp"):
            for file in (self.maildir / sub).iterdir():
                file.unlink()


def _wait_until_listening(process: subprocess.Popen[bytes], host: str, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"SMTP receiver exited with {process.returncode}: {output[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    _stop(process)
    pytest.fail(f"SMTP receiver not listening on {host}:{port} after {READY_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop exactly this process (it has no children)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()


def _need_aiosmtpd() -> None:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        if require_services():
            pytest.fail("aiosmtpd is not installed (pip install aiosmtpd)")
        pytest.skip("aiosmtpd is not installed")


def _start(argv: Sequence[str], *, port: int, maildir: Path, **extra: Any) -> SmtpReceiver:
    process = subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _wait_until_listening(process, "127.0.0.1", port)
    return SmtpReceiver("127.0.0.1", port, maildir, process, **extra)


@pytest.fixture(scope="session")
def smtp_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpReceiver]:
    """Plain SMTP receiver on 127.0.0.1 (aiosmtpd's own command line, Mailbox handler)."""
    _need_aiosmtpd()
    maildir = make_maildir(tmp_path_factory.mktemp("smtp") / "maildir")
    port = free_port()
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    argv += ["-c", "aiosmtpd.handlers.Mailbox", str(maildir)]
    receiver = _start(argv, port=port, maildir=maildir)
    yield receiver
    _stop(receiver.process)


@pytest.fixture
def smtp_inbox(smtp_receiver: SmtpReceiver) -> SmtpReceiver:
    """The session receiver with an empty Maildir."""
    smtp_receiver.clear()
    return smtp_receiver


@pytest.fixture(scope="session")
def smtp_auth_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpReceiver]:
    """Receiver that refuses mail until AUTH succeeds with AUTH_USER / AUTH_PASSWORD."""
    _need_aiosmtpd()
    maildir = make_maildir(tmp_path_factory.mktemp("smtp-auth") / "maildir")
    port = free_port()
    argv = [sys.executable, "-m", "tests.services.smtp", "--port", str(port)]
    argv += ["--maildir", str(maildir), "--auth"]
    receiver = _start(argv, port=port, maildir=maildir)
    yield receiver
    _stop(receiver.process)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate valid for 127.0.0.1 and localhost: (cert, key)."""
    need_program("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key)]
        + ["-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class TlsReceivers:
    smtps: SmtpReceiver
    starttls: SmtpReceiver
    ca_file: Path


@pytest.fixture(scope="session")
def smtp_tls_receivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsReceivers]:
    """An SMTPS and a STARTTLS receiver sharing one self-signed certificate."""
    _need_aiosmtpd()
    base = tmp_path_factory.mktemp("smtp-tls")
    cert, key = make_certificate(base)
    started: list[SmtpReceiver] = []
    try:
        for mode in ("smtps", "starttls"):
            maildir = make_maildir(base / f"maildir-{mode}")
            port = free_port()
            argv = [sys.executable, "-m", "tests.services.smtp", "--port", str(port)]
            argv += ["--maildir", str(maildir), f"--{mode}", str(cert), str(key)]
            started.append(_start(argv, port=port, maildir=maildir, ca_file=cert))
        yield TlsReceivers(smtps=started[0], starttls=started[1], ca_file=cert)
    finally:
        for receiver in started:
            _stop(receiver.process)


# --- the receiver program for auth / TLS modes ------------------------------------


def _server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (
        isinstance(data, LoginPassword)
        and data.login == AUTH_USER.encode()
        and data.password == AUTH_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


async def _serve(options: argparse.Namespace) -> None:
    from aiosmtpd.handlers import Mailbox
    from aiosmtpd.smtp import SMTP

    handler = Mailbox(options.maildir)
    smtp_args: dict[str, Any] = {}
    if options.auth:
        smtp_args.update(authenticator=_authenticator, auth_required=True, auth_require_tls=False)
    if options.starttls:
        smtp_args.update(tls_context=_server_context(*options.starttls), require_starttls=True)
    smtps = _server_context(*options.smtps) if options.smtps else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **smtp_args), "127.0.0.1", options.port, ssl=smtps
    )
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="aiosmtpd receiver with AUTH / TLS for tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--auth", action="store_true", help="require AUTH (plain text, tests)")
    parser.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    options = parser.parse_args()
    asyncio.run(_serve(options))


if __name__ == "__main__":
    main()
