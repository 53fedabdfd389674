"""Shipped systemd units, `make install-units` and the crontab example (doc/systemd.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, need_program

DATA = REPO / "src" / "palhm" / "data"
UNITS = (
    "palhm-boot-report.service",
    "palhm@.service",
    "palhm@.timer",
    "palhm-drill@.service",
    "palhm-drill@.timer",
)
PALHM_BIN = Path(sys.executable).parent / "palhm"  # the venv's console script


def parse_unit(path: Path) -> dict[str, list[str]]:
    """`Section.Key` -> values in order (systemd keys may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def install_units(destdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    need_program("make", "sed", "install")
    argv = ["make", "-s", "-C", str(REPO), "install-units", f"DESTDIR={destdir}", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_install_units_copies_the_units_and_only_prints_enable_commands(tmp_path: Path) -> None:
    done = install_units(tmp_path)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "etc" / "systemd" / "system"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(UNITS)
    for unit in UNITS:
        assert (target / unit).stat().st_mode & 0o777 == 0o644
    assert "systemctl enable palhm-boot-report.service" in done.stdout
    assert "systemctl enable --now palhm@TASK.timer" in done.stdout
    service = parse_unit(target / "palhm@.service")
    assert service["Service.ExecStart"] == ["/usr/local/bin/palhm -q run %i"]


def test_prefix_and_palhm_path_are_written_into_exec_start(tmp_path: Path) -> None:
    assert install_units(tmp_path / "a", "PREFIX=/opt/palhm").returncode == 0
    unit = tmp_path / "a" / "etc" / "systemd" / "system" / "palhm-boot-report.service"
    assert parse_unit(unit)["Service.ExecStart"] == ["/opt/palhm/bin/palhm boot-report"]
    assert install_units(tmp_path / "b", "PALHM=/srv/venv/bin/palhm").returncode == 0
    unit = tmp_path / "b" / "etc" / "systemd" / "system" / "palhm@.service"
    assert parse_unit(unit)["Service.ExecStart"] == ["/srv/venv/bin/palhm -q run %i"]


def test_units_say_what_the_docs_promise() -> None:
    boot = parse_unit(DATA / "systemd" / "palhm-boot-report.service")
    assert boot["Unit.After"] == ["network-online.target"]
    assert boot["Service.Type"] == ["exec"]  # a oneshot would block boot-wait (doc/systemd.md)
    task = parse_unit(DATA / "systemd" / "palhm@.service")
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert f"Service.{key}" in task, key
    assert task["Service.ProtectSystem"] == ["strict"]
    assert task["Service.IOSchedulingClass"] == ["idle"]
    timer = parse_unit(DATA / "systemd" / "palhm@.timer")
    assert timer["Timer.OnCalendar"] == ["daily"]
    assert timer["Timer.Persistent"] == ["true"]
    assert timer["Install.WantedBy"] == ["timers.target"]
    drill = parse_unit(DATA / "systemd" / "palhm-drill@.service")
    assert drill["Service.ExecStart"] == ["/usr/local/bin/palhm -q drill %i"]
    assert drill["Service.PrivateTmp"] == ["yes"]
    drill_timer = parse_unit(DATA / "systemd" / "palhm-drill@.timer")
    assert drill_timer["Install.WantedBy"] == ["timers.target"]


def test_systemd_analyze_accepts_every_directive(tmp_path: Path) -> None:
    need_program("systemd-analyze")
    if not PALHM_BIN.exists():
        pytest.skip(f"no palhm console script at {PALHM_BIN}")
    assert install_units(tmp_path, f"PALHM={PALHM_BIN}").returncode == 0
    target = tmp_path / "etc" / "systemd" / "system"
    # Templates are verified through an instance, as systemd would load them.
    shutil.copy(target / "palhm@.service", target / "palhm@backup.service")
    shutil.copy(target / "palhm@.timer", target / "palhm@backup.timer")
    shutil.copy(target / "palhm-drill@.service", target / "palhm-drill@backup.service")
    shutil.copy(target / "palhm-drill@.timer", target / "palhm-drill@backup.timer")
    units = [
        "palhm-boot-report.service",
        "palhm@backup.service",
        "palhm@backup.timer",
        "palhm-drill@backup.service",
        "palhm-drill@backup.timer",
    ]
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(target / u) for u in units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys and bad values are only warnings (status 0): demand silence.
    assert (done.returncode, done.stderr.strip()) == (0, "")


def test_crontab_example_lines_run_palhm_as_root() -> None:
    jobs = []
    for line in (DATA / "examples" / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" in line.split()[0]:
            continue  # SHELL=, PATH=, MAILTO=
        jobs.append(line.split(None, 6))
    assert [job[6] for job in jobs] == [
        "palhm -q run backup",
        "palhm -q drill backup",
        "palhm -q run check-dnssec",
    ]
    assert all(job[5] == "root" for job in jobs)
