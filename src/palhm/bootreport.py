"""The boot report (doc/boot-report.md): wait for the boot to settle, gather facts, mail them.

Pure core, imperative shell: `compose_report` turns a `BootReport` and the gathered
`BootFacts` into (subject, body) without touching the system; `gather_facts`,
`wait_for_systemd` and `send_boot_report` do the I/O.

The body is machine-readable: optional header lines as YAML comments, then one YAML
document under the key `boot-report:` whose values are all plain strings.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import yaml

from palhm.errors import PalhmError, UsageError
from palhm.model import BootReport
from palhm.notify.mua import create_mua
from palhm.records import record

log = logging.getLogger(__name__)

# How long `boot-wait: systemd` waits for the boot to finish before reporting anyway.
SYSTEMD_WAIT_TIMEOUT: Final = 300.0
# `uptime` answers at once; a bound keeps a wedged /proc from stalling the report.
FACT_COMMAND_TIMEOUT: Final = 10.0
BOOT_ID_PATH: Final = Path("/proc/sys/kernel/random/boot_id")
# States of `systemctl is-system-running` that mean "systemd is not our init".
_NOT_RUNNING_STATES: Final = frozenset({"offline", "unknown", ""})


class BootWaitError(PalhmError):
    """`boot-wait` could not be honoured (e.g. systemd is not the init system)."""


@record
class BootFacts:
    """What the report says about this boot. None = field disabled in the config."""

    hostname: str
    time_zone: str
    utc_offset: str
    uptime_since: str | None = None
    uptime: str | None = None
    boot_id: str | None = None
    systemd_state: str | None = None


def substitute_hostname(template: str, hostname: str) -> str:
    """Replace `{hostname}`; other braces stay as written (no str.format surprises)."""
    return template.replace("{hostname}", hostname)


def compose_report(report: BootReport, *, facts: BootFacts) -> tuple[str, str]:
    """Return (subject, body) for `report` and `facts`. Pure: no I/O.

    The body is the header (each line as a `#` comment, `{hostname}` replaced) and a
    YAML document `boot-report:` with hostname, time zone, UTC offset and each fact
    that is not None, as strings (keys: uptime-since, uptime, boot-id, systemd-state).
    """
    subject = substitute_hostname(report.subject, facts.hostname)
    fields: dict[str, str] = {
        "hostname": facts.hostname,
        "time-zone": facts.time_zone,
        "utc-offset": facts.utc_offset,
    }
    optional = {
        "uptime-since": facts.uptime_since,
        "uptime": facts.uptime,
        "boot-id": facts.boot_id,
        "systemd-state": facts.systemd_state,
    }
    fields.update({key: str(value) for key, value in optional.items() if value is not None})
    document = yaml.safe_dump(
        {"boot-report": fields}, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return subject, _comment_lines(report.header, facts.hostname) + document


def _comment_lines(header: str | None, hostname: str) -> str:
    if not header:
        return ""
    lines = substitute_hostname(header, hostname).splitlines()
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def gather_facts(report: BootReport, *, systemd_state: str | None = None) -> BootFacts:
    """Collect hostname, time zone and the fields `report` enables.

    A fact that cannot be read (uptime missing, no /proc) is reported as
    "unavailable: REASON" and logged as a warning: the mail still goes out.
    """
    name, offset = local_time_zone()
    return BootFacts(
        hostname=os.uname().nodename,
        time_zone=name,
        utc_offset=offset,
        uptime_since=_command_output(["uptime", "--since"]) if report.uptime_since else None,
        uptime=_command_output(["uptime", "-p"]) if report.uptime else None,
        boot_id=_read_boot_id() if report.boot_id else None,
        systemd_state=systemd_state,
    )


def local_time_zone() -> tuple[str, str]:
    """(zone name such as "Europe/Berlin", current UTC offset such as "+01:00")."""
    now = time.localtime()
    gmtoff = now.tm_gmtoff
    sign = "-" if gmtoff < 0 else "+"
    hours, minutes = divmod(abs(gmtoff) // 60, 60)
    return _zone_name(now.tm_zone), f"{sign}{hours:02d}:{minutes:02d}"


def _zone_name(abbreviation: str) -> str:
    # The C library's order: $TZ, then /etc/localtime (a symlink into zoneinfo, whose
    # target names the zone); Debian's /etc/timezone only when that is a plain file.
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz.removeprefix("/usr/share/zoneinfo/")
    try:
        _, found, key = os.readlink("/etc/localtime").partition("/zoneinfo/")
        if found and key:
            return key
    except OSError:
        pass
    try:
        return Path("/etc/timezone").read_text().strip() or abbreviation
    except OSError:
        return abbreviation


def _command_output(argv: Sequence[str]) -> str:
    """First line of a small command's stdout; an "unavailable: ..." text on failure."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=FACT_COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _unavailable(f"{argv[0]}: {exc}")
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return _unavailable(f"{' '.join(argv)}: {detail[0]}")
    return done.stdout.strip()


def _read_boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError as exc:
        return _unavailable(f"{BOOT_ID_PATH}: {exc.strerror}")


def _unavailable(reason: str) -> str:
    log.warning("boot report: %s", reason)
    return f"unavailable: {reason}"


def wait_for_systemd(*, timeout: float = SYSTEMD_WAIT_TIMEOUT) -> str:
    """Wait until systemd has finished booting; return the system state.

    `running` and `degraded` (and any other state systemd settles in) are returned
    for the report. If the wait exceeds `timeout`, the state at that moment is
    returned (a boot that never finishes is worth a report). Raises BootWaitError
    when systemd is not the init system (state offline/unknown, or no systemctl).
    """
    try:
        return _systemctl_state(["--wait"], timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("boot-wait: systemd still booting after %g s; reporting anyway", timeout)
    try:
        return _systemctl_state([], timeout=FACT_COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"unknown (no answer from systemctl after {timeout:g} s)"


def _systemctl_state(options: Sequence[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(
            ["systemctl", "is-system-running", *options],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except OSError as exc:
        raise BootWaitError(
            f"boot-wait: systemd is not running (systemctl: {exc.strerror})"
        ) from exc
    state = done.stdout.strip().splitlines()[-1:]
    if state and state[0] not in _NOT_RUNNING_STATES:
        return state[0]
    reason = state[0] if state else (done.stderr.strip().splitlines() or ["no answer"])[0]
    raise BootWaitError(
        f"boot-wait: systemd is not running (systemctl is-system-running: {reason})"
    )


def send_boot_report(report: BootReport | None, *, verbosity: int) -> None:
    """Honour boot-wait and delay, gather facts, compose and send the boot report.

    `verbosity` is the run's verbosity (messages go through logging, which cli.py
    configured from it). Raises UsageError when the config has no `boot-report`,
    BootWaitError when boot-wait cannot be honoured, MailError (with the MUA's
    own error text) when sending fails.
    """
    if report is None:
        raise UsageError("boot-report: the config has no 'boot-report' object")
    log.debug("boot report: verbosity %d, mua %s", verbosity, report.mua)
    state = wait_for_systemd() if report.boot_wait == "systemd" else None
    if report.delay > 0:
        log.info("boot report: waiting %g s before sending", report.delay)
        time.sleep(report.delay)
    subject, body = compose_report(report, facts=gather_facts(report, systemd_state=state))
    create_mua(report.mua, report.mua_param).send(
        subject=subject, body=body, recipients=report.mail_to
    )
    log.info("boot report sent through %s to %s", report.mua, ", ".join(report.mail_to))
