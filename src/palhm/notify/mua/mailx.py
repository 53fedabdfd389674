"""The `mailx` MUA: pipes the body into a mailx-compatible program (doc/boot-report.md)."""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Sequence
from typing import Final

from palhm.errors import MailError
from palhm.notify.mua.base import Mua

log = logging.getLogger(__name__)

DEFAULT_EXEC: Final = "/usr/bin/mailx"
# Tried on PATH when DEFAULT_EXEC does not exist: Debian's s-nail installs only
# /usr/bin/s-nail, and other mailx packages only a `mail` command.
FALLBACK_PROGRAMS: Final = ("mailx", "s-nail", "mail")
# mailx talks to an MTA or SMTP server; a dead server must not hang the boot forever.
SEND_TIMEOUT: Final = 300.0
# How many trailing stderr lines of a failed mailx go into the error message.
STDERR_TAIL: Final = 10


class MailxMua(Mua):
    """Runs `EXEC -S OPT ... -s SUBJECT RCPT...` (no shell) with the body on stdin.

    Parameters: `exec` (path of mailx; default /usr/bin/mailx), `int_opts` (list of
    strings, each passed as `-S OPT`, e.g. "smtp=localhost"). mailx's stderr is
    captured: a non-zero exit raises MailError carrying the status and that text;
    on success it is logged as a warning (s-nail prints deprecation notes there).
    """

    name = "mailx"

    def argv(self, *, subject: str, recipients: Sequence[str]) -> list[str]:
        """The command line for one message (options before the subject, as PALHM did)."""
        argv = [find_exec(self.params.get("exec"))]
        for option in self.params.get("int_opts") or ():
            argv += ["-S", str(option)]
        return [*argv, "-s", subject, *recipients]

    def send(self, *, subject: str, body: str, recipients: Sequence[str]) -> None:
        argv = self.argv(subject=subject, recipients=recipients)
        try:
            done = subprocess.run(
                argv,
                input=body.encode(),
                capture_output=True,
                timeout=SEND_TIMEOUT,
                check=False,
            )
        except OSError as exc:
            raise MailError(f"mailx: cannot run {argv[0]}: {exc.strerror}") from exc
        except subprocess.TimeoutExpired as exc:
            raise MailError(f"mailx: {argv[0]} did not finish within {SEND_TIMEOUT:g} s") from exc
        stderr = done.stderr.decode(errors="replace").strip()
        if done.returncode != 0:
            raise MailError(_failure_message(argv[0], done.returncode, stderr))
        if stderr:
            log.warning("mailx: %s said: %s", argv[0], stderr)
        log.debug("mailx: %s delivered the message to %s", argv[0], ", ".join(recipients))


def _failure_message(program: str, status: int, stderr: str) -> str:
    """One line when mailx said one line; else its last lines indented below."""
    if status < 0:
        outcome = f"killed by {signal.Signals(-status).name}"
    else:
        outcome = f"exited with status {status}"
    lines = stderr.splitlines()[-STDERR_TAIL:]
    if len(lines) <= 1:
        return f"mailx: {program} {outcome}: {lines[0] if lines else '(nothing on stderr)'}"
    return f"mailx: {program} {outcome}:\n" + "\n".join(f"  | {line}" for line in lines)


def find_exec(configured: object) -> str:
    """The mailx program to run: `exec` as configured, except that the default
    /usr/bin/mailx, when this host does not have it, is looked up on PATH as mailx,
    s-nail or mail (the first found; the default itself when none is)."""
    import os
    import shutil

    program = str(configured or DEFAULT_EXEC)
    if program != DEFAULT_EXEC or os.path.exists(program):
        return program
    for name in FALLBACK_PROGRAMS:
        found = shutil.which(name)
        if found:
            return found
    return program
