"""DNSSEC check (doc/dnssec.md): a null-backend backup task, run through the CLI against the
local DNSSEC lab. dig is always pointed at the lab's resolver (@127.0.0.1 -p PORT),
or runs inside a private network namespace whose resolv.conf names the lab."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CORE_JSON, REPO, need_program, run_palhm, write_config
from tests.services.dnslab import DnsLab

EXAMPLE = REPO / "src" / "palhm" / "data" / "examples" / "dnssec.jsonc"


def check_object(lab: DnsLab, zone: str) -> dict[str, Any]:
    """The shipped pipeline (dig-dnssec + grep-any), aimed at the lab's resolver."""
    query = [*lab.server_args(), "ANY", zone]
    return {
        "path": zone,
        "pipeline": [
            {"type": "exec-append", "exec-id": "dig-dnssec", "argv": query},
            {"type": "exec", "exec-id": "grep-any"},
        ],
    }


def strict_object(lab: DnsLab, zone: str) -> dict[str, Any]:
    """The stricter check of the example: the answer must carry the AD flag."""
    dig = ["/usr/bin/dig", *lab.server_args(), "+dnssec", "+notcp", "+noall", "+comments"]
    return {
        "path": zone,
        "pipeline": [
            {"type": "exec-inline", "argv": [*dig, "SOA", zone]},
            {"type": "exec-inline", "argv": ["/usr/bin/grep", "-E", "^;; flags:[a-z ]* ad[ ;]"]},
        ],
    }


def write_check(tmp_path: Path, objects: list[dict[str, Any]]) -> Path:
    task = {"id": "check-dnssec", "type": "backup", "backend": "null", "objects": objects}
    doc = {"include": [str(CORE_JSON)], "tasks": [task]}
    return write_config(tmp_path / "dnssec.json", doc)


def test_valid_zone_passes(tmp_path: Path, dnssec_lab: DnsLab) -> None:
    cfg = write_check(tmp_path, [check_object(dnssec_lab, "good.test")])
    done = run_palhm(["-f", str(cfg), "run", "check-dnssec"])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("zone", ["expired.test", "bogus.test"])
def test_broken_zone_fails_naming_task_object_and_stage(
    tmp_path: Path, dnssec_lab: DnsLab, zone: str
) -> None:
    # the resolver really answers SERVFAIL with nothing on stdout, so grep is what fails
    assert dnssec_lab.dig("+short", "+dnssec", "+notcp", "ANY", zone).stdout == ""
    cfg = write_check(tmp_path, [check_object(dnssec_lab, zone)])
    done = run_palhm(["-f", str(cfg), "run", "check-dnssec"])
    assert done.returncode == 1
    assert "check-dnssec" in done.stderr
    assert zone in done.stderr
    assert "grep" in done.stderr  # the failing stage
    assert "Traceback" not in done.stderr


def test_one_broken_zone_among_good_ones_fails_the_task(tmp_path: Path, dnssec_lab: DnsLab) -> None:
    zones = ["good.test", "expired.test", "insecure.test"]
    cfg = write_check(tmp_path, [check_object(dnssec_lab, z) for z in zones])
    done = run_palhm(["-f", str(cfg), "run", "check-dnssec"])
    assert done.returncode == 1
    assert "expired.test" in done.stderr


def test_unsigned_zone_passes_the_plain_check_but_not_the_strict_one(
    tmp_path: Path, dnssec_lab: DnsLab
) -> None:
    plain = write_check(tmp_path / "plain", [check_object(dnssec_lab, "insecure.test")])
    assert run_palhm(["-f", str(plain), "run", "check-dnssec"]).returncode == 0
    strict = write_check(tmp_path / "strict", [strict_object(dnssec_lab, "insecure.test")])
    done = run_palhm(["-f", str(strict), "run", "check-dnssec"])
    assert done.returncode == 1
    assert "insecure.test" in done.stderr


def test_strict_check_passes_a_validated_zone(tmp_path: Path, dnssec_lab: DnsLab) -> None:
    cfg = write_check(tmp_path, [strict_object(dnssec_lab, "good.test")])
    done = run_palhm(["-f", str(cfg), "run", "check-dnssec"])
    assert done.returncode == 0, done.stderr


def test_unreachable_resolver_fails_the_check(tmp_path: Path, dnssec_lab: DnsLab) -> None:
    from tests.services.smtp import free_port

    obj = check_object(dnssec_lab, "good.test")
    args = obj["pipeline"][0]["argv"]
    args[args.index("-p") + 1] = str(free_port())  # nothing answers there
    args[:0] = ["+tries=1", "+time=1"]
    done = run_palhm(["-f", str(write_check(tmp_path, [obj])), "run", "check-dnssec"])
    assert done.returncode == 1
    assert "dig-dnssec" in done.stderr or "dig" in done.stderr


def install_example(tmp_path: Path, *, name: str = "example.com") -> Path:
    """The shipped example in conf.d/ next to core.json, with its names replaced."""
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir(parents=True)
    shutil.copy(CORE_JSON, conf_d / "core.json")
    text = EXAMPLE.read_text().replace("example.com", name)
    return write_config(conf_d / "dnssec.jsonc", text)


def test_shipped_example_is_a_valid_config(tmp_path: Path) -> None:
    cfg = install_example(tmp_path)
    done = run_palhm(["-f", str(cfg), "config", "check"])
    assert done.returncode == 0, done.stderr


def run_isolated(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv in `unshare -mn` with the lab on port 53 and a private resolv.conf."""
    need_program("unshare", "ip", "mount", "/usr/bin/dig", "nsd", "unbound")
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -mn")
    probe = subprocess.run(["unshare", "-mn", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -mn not permitted here: {probe.stderr.decode().strip()}")
    lab_dir = tmp_path / "isolated"
    lab_dir.mkdir(parents=True)
    helper = [sys.executable, "-m", "tests.services.dnslab", str(lab_dir)]
    return subprocess.run(
        ["unshare", "-mn", *helper, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("name", "status"), [("good.test", 0), ("expired.test", 1)])
def test_shipped_example_with_default_argv_in_private_namespace(
    tmp_path: Path, name: str, status: int
) -> None:
    # dig without @server reads /etc/resolv.conf: only inside the namespace, where
    # it names the lab. The example queries NAME and www.NAME.
    cfg = install_example(tmp_path, name=name)
    palhm = [sys.executable, "-m", "palhm", "-f", str(cfg)]
    done = run_isolated(tmp_path, [*palhm, "run", "check-dnssec"])
    assert done.returncode == status, done.stdout + done.stderr
    if status:
        assert name in done.stderr and "check-dnssec" in done.stderr
    strict = run_isolated(tmp_path / "strict", [*palhm, "run", "check-dnssec-strict"])
    assert strict.returncode == status, strict.stdout + strict.stderr
