"""Boot report: composing (pure), gathering real facts, boot-wait, sending (doc/boot-report.md)."""

from __future__ import annotations

import os
import socket
import stat
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from palhm import bootreport
from palhm.bootreport import BootFacts, BootWaitError, compose_report, gather_facts
from palhm.errors import MailError, UsageError
from palhm.model import BootReport
from tests.services.smtp import free_port

FACTS = BootFacts(
    hostname="web1",
    time_zone="Europe/Berlin",
    utc_offset="+01:00",
    uptime_since="2024-03-01 06:59:17",
    uptime="up 3 minutes",
    boot_id="480a9fb8-2d0e-4123-a859-0a069f6f255c",
)


def report(**changes: object) -> BootReport:
    fields: dict[str, object] = {"mua": "stdout", "mail_to": ("root",), **changes}
    return BootReport(**fields)  # type: ignore[arg-type]


def test_subject_defaults_to_boot_report_from_hostname() -> None:
    subject, _ = compose_report(report(), facts=FACTS)
    assert subject == "Boot Report from web1"


def test_hostname_is_substituted_and_other_braces_kept() -> None:
    subject, _ = compose_report(report(subject="{hostname} up {not-a-field}"), facts=FACTS)
    assert subject == "web1 up {not-a-field}"


def test_body_is_yaml_with_boot_id_key_and_plain_strings() -> None:
    _, body = compose_report(report(), facts=FACTS)
    assert yaml.safe_load(body) == {
        "boot-report": {
            "hostname": "web1",
            "time-zone": "Europe/Berlin",
            "utc-offset": "+01:00",
            "uptime-since": "2024-03-01 06:59:17",
            "uptime": "up 3 minutes",
            "boot-id": "480a9fb8-2d0e-4123-a859-0a069f6f255c",
        }
    }
    assert "bood-id" not in body and "b'" not in body


def test_values_that_look_like_numbers_or_dates_stay_strings() -> None:
    # YAML 1.1 reads 1234 as an int, +10:00 as sexagesimal 600 and yes as True.
    facts = BootFacts(hostname="1234", time_zone="UTC", utc_offset="+10:00", uptime="yes")
    loaded = yaml.safe_load(compose_report(report(), facts=facts)[1])["boot-report"]
    assert loaded == {
        "hostname": "1234",
        "time-zone": "UTC",
        "utc-offset": "+10:00",
        "uptime": "yes",
    }


def test_multi_line_header_becomes_yaml_comments() -> None:
    _, body = compose_report(report(header="Host {hostname}\n\nrebooted?"), facts=FACTS)
    assert body.startswith("# Host web1\n#\n# rebooted?\nboot-report:\n")
    assert yaml.safe_load(body)["boot-report"]["hostname"] == "web1"


def test_disabled_fields_are_left_out() -> None:
    facts = BootFacts(hostname="web1", time_zone="UTC", utc_offset="+00:00")
    loaded = yaml.safe_load(compose_report(report(), facts=facts)[1])["boot-report"]
    assert set(loaded) == {"hostname", "time-zone", "utc-offset"}


def test_degraded_systemd_state_is_reported() -> None:
    facts = BootFacts(hostname="h", time_zone="UTC", utc_offset="+00:00", systemd_state="degraded")
    loaded = yaml.safe_load(compose_report(report(), facts=facts)[1])["boot-report"]
    assert loaded["systemd-state"] == "degraded"


def test_gathered_facts_come_from_this_machine() -> None:
    facts = gather_facts(report())
    assert facts.hostname == socket.gethostname()
    assert facts.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert facts.uptime is not None and facts.uptime.startswith("up ")
    assert facts.uptime_since is not None
    since = datetime.strptime(facts.uptime_since, "%Y-%m-%d %H:%M:%S")
    btime = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    assert abs(since.timestamp() - btime) <= 2  # same boot moment, from another source


def test_gathering_honours_disabled_fields() -> None:
    facts = gather_facts(report(uptime_since=False, uptime=False, boot_id=False))
    assert (facts.uptime_since, facts.uptime, facts.boot_id) == (None, None, None)


def test_time_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    import time

    time.tzset()
    try:
        facts = gather_facts(report())
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert (facts.time_zone, facts.utc_offset) == ("Asia/Kolkata", "+05:30")


def test_missing_uptime_program_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    facts = gather_facts(report())
    assert facts.uptime is not None and facts.uptime.startswith("unavailable: uptime")


@pytest.mark.skipif(Path("/run/systemd/system").exists(), reason="systemd is running here")
def test_boot_wait_without_systemd_is_a_clear_error() -> None:
    with pytest.raises(BootWaitError) as caught:
        bootreport.wait_for_systemd(timeout=30)
    assert str(caught.value).startswith("boot-wait: systemd is not running (")
    assert "offline" in str(caught.value) or "not been booted with systemd" in str(caught.value)


@pytest.mark.skipif(Path("/run/systemd/system").exists(), reason="systemd is running here")
def test_boot_report_with_boot_wait_sends_nothing_without_systemd(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(BootWaitError, match="systemctl is-system-running"):
        bootreport.send_boot_report(report(boot_wait="systemd"), verbosity=3)
    assert capsys.readouterr().out == ""


def fake_systemctl(directory: Path, state: str, *, status: int, sleep: int = 0) -> None:
    """A stand-in systemctl on PATH (beside the real-systemctl tests above)."""
    script = directory / "systemctl"
    script.write_text(f"#!/bin/sh\nsleep {sleep}\necho {state}\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_degraded_system_is_waited_for_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_systemctl(tmp_path, "degraded", status=1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    bootreport.send_boot_report(report(boot_wait="systemd"), verbosity=3)
    out = capsys.readouterr().out
    body = out.split("\n\n", 1)[1]
    assert yaml.safe_load(body)["boot-report"]["systemd-state"] == "degraded"


def test_boot_wait_past_its_bound_reports_the_current_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_systemctl(tmp_path, "starting", status=1, sleep=0)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert bootreport.wait_for_systemd(timeout=30) == "starting"


def test_missing_boot_report_section_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no 'boot-report'"):
        bootreport.send_boot_report(None, verbosity=3)


def test_delay_is_honoured_before_sending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("palhm.bootreport.time.sleep", slept.append)
    bootreport.send_boot_report(report(delay=2.5), verbosity=3)
    assert slept[0] == 2.5  # first: later entries are subprocess's own polling
    assert capsys.readouterr().out.startswith("Subject: Boot Report from ")


def test_failed_send_raises_the_mua_error() -> None:
    port = free_port()
    params = {"host": "127.0.0.1", "port": port}
    with pytest.raises(MailError, match=f"127.0.0.1:{port}"):
        bootreport.send_boot_report(report(mua="smtp", mua_param=params), verbosity=3)
