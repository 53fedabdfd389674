"""Service fixture: a local DNSSEC lab, fully on loopback.

An authoritative NSD on 127.0.10.1 serves four zones; a validating unbound on
127.0.0.1 has a stub zone and a trust anchor (the KSK's DS) for each signed zone:

| zone          | state                         | validating answer to `ANY zone` |
|---------------|-------------------------------|---------------------------------|
| good.test     | signed, valid for 4 weeks     | records + RRSIGs                |
| expired.test  | signatures expired in 2020    | SERVFAIL (empty `+short`)       |
| bogus.test    | signed, then SOA and A edited | SERVFAIL (empty `+short`)       |
| insecure.test | unsigned, domain-insecure     | records, no AD flag             |

Clients must always be told the resolver explicitly (`lab.server_args()` =
["@127.0.0.1", "-p", PORT]): never the machine's own resolver. unbound's root hints
point at an unused loopback address and it sends only from 127.0.0.1, so no query
can leave the machine either. Both daemons fork; their PIDs come from their PID
files and exactly those are stopped at the end of the session.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import need_program

AUTH_HOST = "127.0.10.1"
RESOLVER_HOST = "127.0.0.1"
SIGNED_ZONES = ("good.test", "expired.test", "bogus.test")
ALL_ZONES = (*SIGNED_ZONES, "insecure.test")
PROGRAMS: tuple[str, ...] = ("nsd", "nsd-checkconf", "unbound", "unbound-checkconf")
PROGRAMS += ("ldns-keygen", "ldns-signzone", "dig")
READY_TIMEOUT = 15.0

ZONE_TEMPLATE = """\
$ORIGIN {zone}.
$TTL 300
@   IN SOA ns1.{zone}. hostmaster.{zone}. ( 1 3600 900 604800 300 )
@   IN NS  ns1.{zone}.
ns1 IN A   {auth}
@   IN A   192.0.2.10
@   IN TXT "palhm dnssec test {zone}"
www IN A   192.0.2.11
"""


@dataclass
class DnsLab:
    """The running lab. `server_args()` are dig's arguments to reach the resolver."""

    directory: Path
    resolver_port: int
    auth_port: int
    pids: list[int] = field(default_factory=list)

    def server_args(self) -> list[str]:
        return [f"@{RESOLVER_HOST}", "-p", str(self.resolver_port)]

    def dig(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run dig against the lab's resolver (never the system's)."""
        argv = [_program("dig"), *self.server_args(), "+tries=1", "+time=5", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host` (DNS servers listen on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free UDP+TCP port on {host}")


def _run(argv: Sequence[str], *, cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"dnssec lab: {' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def _sign_zones(lab: Path) -> None:
    """Write the zone files, keys, signed zones and trust-anchors.ds."""
    zones, keys = lab / "zones", lab / "keys"
    anchors = []
    for zone in ALL_ZONES:
        (zones / f"{zone}.zone").write_text(ZONE_TEMPLATE.format(zone=zone, auth=AUTH_HOST))
    for zone in SIGNED_ZONES:
        keygen = [_program("ldns-keygen"), "-a", "ECDSAP256SHA256"]
        ksk = _run([*keygen, "-k", zone], cwd=keys).strip()
        zsk = _run([*keygen, zone], cwd=keys).strip()
        anchors.append((keys / f"{ksk}.ds").read_text())
        validity = (
            ["-i", "20200101000000", "-e", "20200201000000"] if zone == "expired.test" else []
        )
        source = zones / f"{zone}.zone"
        signed = [_program("ldns-signzone"), *validity, "-f", f"{source}.signed", str(source)]
        _run([*signed, str(keys / ksk), str(keys / zsk)], cwd=keys)
    (lab / "trust-anchors.ds").write_text("".join(anchors))
    _tamper(zones / "bogus.test.zone.signed")


def _tamper(signed: Path) -> None:
    # Change data after signing. ANY is answered with the SOA RRset alone by NSD, so
    # the SOA must be edited too, not only the A record.
    text = signed.read_text()
    text, soa = re.subn(
        r"^(bogus\.test\.\s+300\s+IN\s+SOA\s+\S+\s+\S+\s+)1 ", r"\g<1>2 ", text, flags=re.M
    )
    text, a = re.subn(
        r"^(bogus\.test\.\s+300\s+IN\s+A\s+)192\.0\.2\.10", r"\g<1>192.0.2.66", text, flags=re.M
    )
    assert soa == 1 and a == 1, "dnssec lab: could not tamper bogus.test"
    signed.write_text(text)


def _nsd_conf(lab: Path, port: int) -> str:
    run = lab / "run"
    zones = "".join(
        f"zone:\n    name: {z}\n    zonefile: {z}.zone{'' if z == 'insecure.test' else '.signed'}\n"
        for z in ALL_ZONES
    )
    return f"""server:
    ip-address: {AUTH_HOST}@{port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{lab / "zones"}"
    database: ""
    zonelistfile: "{run / "zone.list"}"
    xfrdfile: "{run / "xfrd.state"}"
    xfrdir: "{run}"
    pidfile: "{run / "nsd.pid"}"
    logfile: "{run / "nsd.log"}"
    server-count: 1
remote-control:
    control-enable: no
{zones}"""


def _unbound_conf(lab: Path, port: int, auth_port: int) -> str:
    run = lab / "run"
    stubs = "".join(
        f'stub-zone:\n    name: "{z}"\n    stub-addr: {AUTH_HOST}@{auth_port}\n' for z in ALL_ZONES
    )
    return f"""server:
    interface: {RESOLVER_HOST}@{port}
    port: {port}
    do-ip6: no
    do-daemonize: yes
    username: ""
    chroot: ""
    directory: "{lab}"
    pidfile: "{run / "unbound.pid"}"
    logfile: "{run / "unbound.log"}"
    use-syslog: no
    val-log-level: 2
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    outgoing-interface: {RESOLVER_HOST}
    root-hints: "{lab / "root.hints"}"
    module-config: "validator iterator"
    trust-anchor-file: "{lab / "trust-anchors.ds"}"
    local-zone: "test." nodefault
    domain-insecure: "insecure.test"
    cache-max-ttl: 0
    qname-minimisation: no
remote-control:
    control-enable: no
{stubs}"""


# A root that is an unused loopback address: nothing is ever sent off the machine.
ROOT_HINTS = ".  3600000 NS a.root.lab.\na.root.lab. 3600000 A 127.0.0.9\n"


def _write_configs(lab: Path, resolver_port: int, auth_port: int) -> tuple[Path, Path]:
    nsd_conf, unbound_conf = lab / "nsd.conf", lab / "unbound.conf"
    nsd_conf.write_text(_nsd_conf(lab, auth_port))
    unbound_conf.write_text(_unbound_conf(lab, resolver_port, auth_port))
    (lab / "root.hints").write_text(ROOT_HINTS)
    _run([_program("nsd-checkconf"), str(nsd_conf)], cwd=lab)
    _run([_program("unbound-checkconf"), str(unbound_conf)], cwd=lab)
    return nsd_conf, unbound_conf


def _read_pid(pid_file: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.02)
    pytest.fail(f"dnssec lab: no PID in {pid_file}")


def _wait_until_answering(lab: DnsLab) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if lab.dig("+short", "+dnssec", "+notcp", "ANY", "good.test").stdout.strip():
            return
        time.sleep(0.05)
    logs = [(lab.directory / "run" / n).read_text() for n in ("nsd.log", "unbound.log")]
    pytest.fail(f"dnssec lab: good.test does not resolve; logs: {logs}")


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop(pids: Sequence[int]) -> None:
    """Terminate exactly these daemons; kill any still alive after a grace period."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in filter(_alive, pids):  # only those still running: no PID reuse risk
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_lab(directory: Path, *, resolver_port: int = 0, auth_port: int = 0) -> DnsLab:
    """Build and start the lab in `directory` (must be empty or not exist).

    Port 0 picks a free port; isolated runs use 53 so that a plain `dig` finds it.
    """
    for sub in ("zones", "keys", "run"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    _sign_zones(directory)
    lab = DnsLab(
        directory,
        resolver_port or _free_port(RESOLVER_HOST),
        auth_port or _free_port(AUTH_HOST),
    )
    nsd_conf, unbound_conf = _write_configs(directory, lab.resolver_port, lab.auth_port)
    try:
        _run([_program("nsd"), "-c", str(nsd_conf)], cwd=directory)
        lab.pids.append(_read_pid(directory / "run" / "nsd.pid"))
        _run([_program("unbound"), "-c", str(unbound_conf)], cwd=directory)
        lab.pids.append(_read_pid(directory / "run" / "unbound.pid"))
        _wait_until_answering(lab)
    except BaseException:
        _stop(lab.pids)
        raise
    return lab


@pytest.fixture(scope="session")
def dnssec_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    """The running DNSSEC lab for the whole session (about 0.2 s to build)."""
    need_program(*(_program(name) for name in PROGRAMS))
    lab = start_lab(tmp_path_factory.mktemp("dnslab"))
    try:
        yield lab
    finally:
        _stop(lab.pids)


# --- isolated runs: the default argv (no @server) against the lab ------------------

ISOLATED_USAGE = "usage: unshare -mn python -m tests.services.dnslab LAB_DIR COMMAND [ARG...]"


def _interfaces() -> set[str]:
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return {line.split(":", 1)[0].strip() for line in lines}


def run_isolated(directory: Path, command: Sequence[str]) -> int:
    """Inside a private network and mount namespace (`unshare -mn`): bring up lo,
    start the lab on port 53, bind-mount a resolv.conf naming it over
    /etc/resolv.conf, run `command` and return its status. The namespaces die with
    this process, so the host's resolver and resolv.conf are never touched.
    """
    if _interfaces() != {"lo"}:
        raise SystemExit("refusing to run outside a private network namespace (use unshare -mn)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    lab = start_lab(directory / "lab", resolver_port=53, auth_port=53)
    try:
        resolv = directory / "resolv.conf"
        resolv.write_text(f"nameserver {RESOLVER_HOST}\n")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
        return subprocess.run(command, check=False).returncode
    finally:
        _stop(lab.pids)


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 3:
        raise SystemExit(ISOLATED_USAGE)
    sys.exit(run_isolated(Path(sys.argv[1]), sys.argv[2:]))
