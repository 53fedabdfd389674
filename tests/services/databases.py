"""Service fixtures: real MariaDB, PostgreSQL and OpenLDAP servers, and a throwaway gpg key.

Every server is a child of the test process, listens on 127.0.0.1 on a free
port and keeps all its files in a private directory. The fixture records the
server's own PID and stops exactly that process at the end (the server's
shutdown signal, then a wait; SIGKILL only if it does not exit). Recipes and
measured start-up timings of a few seconds at most.

Session fixtures, shared by every test (give your data fresh names):
    mariadb_server, postgres_server, slapd_server, gpg_key
Function fixtures returning a factory of FRESH servers to restore into, each
stopped at the end of the test:
    mariadb_factory, postgres_factory, slapd_factory

A missing program skips the tests locally and fails them when
PALHM_TEST_REQUIRE_SERVICES=1 (tests.helpers.need_program).
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, TypeVar

import pytest

from tests.helpers import free_port, need_program

START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 15.0
COMMAND_TIMEOUT: Final = 60.0
_SBIN_DIRS: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ServiceError(RuntimeError):
    """A test server could not be set up, started or queried."""


class ServerDied(ServiceError):
    """A server exited during start-up (often: its port was taken meanwhile)."""


# --------------------------------------------------------------------------
# Generic helpers


def find_program(name: str, *extra_dirs: str | Path) -> str:
    """Absolute path of `name` from PATH, `extra_dirs` or the sbin dirs; else `name`.

    Servers live in /usr/sbin, which a non-root PATH may lack. The bare name
    comes back when nothing is found, so need_program() reports it as missing.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), *map(str, extra_dirs), *_SBIN_DIRS])
    return shutil.which(name, path=search) or name


def require(*programs: str) -> None:
    """need_program() for resolved paths: skip, or fail in CI, when one is missing."""
    need_program(*programs)


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client command to completion; raise ServiceError unless it exits 0.

    `env` is added to this process's environment; `user` runs the command as
    that user (root only) with the user's own group and no supplementary groups.
    """
    result = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        env={**os.environ, **(env or {})},
        user=user,
        group=_group_of(user),
        extra_groups=[] if user else None,
        cwd=cwd,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-2000:]
        raise ServiceError(f"{argv[0]} exited {result.returncode}: {tail}")
    return result


def _group_of(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_gid if user else None


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


class ServerProcess:
    """One server running as our child; it knows its exact PID and how to stop it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self._stop_signal = stop_signal
        with log.open("ab") as log_file:
            # A session of its own: a Ctrl-C aimed at pytest must not kill the
            # server before the fixture's teardown stops it in order.
            self._popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=_group_of(user),
                extra_groups=[] if user else None,
                cwd=cwd,
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def running(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def wait_ready(self, probe: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll `probe` until it is true; stop the server and raise if it dies or times out."""
        deadline = time.monotonic() + timeout
        # running() after probe(): a foreign listener on our port must not count.
        while not (probe() and self.running()):
            if not self.running():
                raise ServerDied(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.03)

    def stop(self) -> None:
        """Send the server's shutdown signal, wait, and SIGKILL it if it hangs. Idempotent."""
        if self._popen.poll() is not None:
            return
        self._popen.send_signal(self._stop_signal)
        try:
            self._popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


_T = TypeVar("_T")
PORT_ATTEMPTS: Final = 3


def on_free_port(launch: Callable[[int], _T]) -> _T:
    """`launch(port)` on a free port, retried on another port if the server dies.

    Other test processes may take the port between our probe and the
    server's bind; that must not fail the test.
    """
    for _ in range(PORT_ATTEMPTS - 1):
        with contextlib.suppress(ServerDied):
            return launch(free_port())
    return launch(free_port())


class _HasProcess(Protocol):
    @property
    def process(self) -> ServerProcess: ...


_Server = TypeVar("_Server", bound=_HasProcess)


@contextlib.contextmanager
def _server_factory(start: Callable[..., _Server]) -> Iterator[Callable[..., _Server]]:
    """Wrap `start` so that every server it starts is stopped when the block ends."""
    started: list[_Server] = []

    def start_and_record(*args: object, **kwargs: object) -> _Server:
        server = start(*args, **kwargs)
        started.append(server)
        return server

    try:
        yield start_and_record
    finally:
        for server in reversed(started):
            server.process.stop()


PROBE_TIMEOUT: Final = 2.0


def _exits_zero(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Callable[[], bool]:
    """A readiness probe: `argv` exits 0 within PROBE_TIMEOUT (a hung client is killed)."""

    def probe() -> bool:
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                timeout=PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    return probe


# --------------------------------------------------------------------------
# MariaDB


@dataclass(frozen=True)
class MariaDBServer:
    """A running mariadbd; root logs in over the UNIX socket (socket authentication).

    `home` holds a `.my.cnf` naming the socket, so an unchanged argv such as
    `mysqldump --all-databases` reaches this server when run with `env`
    (HOME=home). MYSQL_UNIX_PORT does not work: /etc/mysql overrides it.
    """

    process: ServerProcess
    datadir: Path
    socket: Path
    port: int
    home: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def env(self) -> dict[str, str]:
        """Environment that points unchanged MariaDB clients at this server."""
        return {"HOME": str(self.home)}

    def client_argv(self, program: str = "mariadb") -> list[str]:
        """argv prefix of a client program that talks to this server as root."""
        return [
            find_program(program),
            "--no-defaults",
            f"--socket={self.socket}",
            "--user=root",
            # Debian's client config says utf8mb4; --no-defaults would give utf8mb3.
            "--default-character-set=utf8mb4",
        ]

    def sql(self, query: str, *, database: str | None = None) -> str:
        """Run SQL; the result rows tab-separated, without column names."""
        argv = [*self.client_argv(), "--batch", "--skip-column-names", "--execute", query]
        if database:
            argv.append(database)
        return run(argv).stdout.decode()

    def load(self, dump: bytes) -> None:
        """Feed a mysqldump into this server (the restore step)."""
        run(self.client_argv(), input=dump)


_MARIADB_TUNING: Final = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    # A throwaway server is never restarted: skip the slow clean shutdown.
    "--innodb-fast-shutdown=2",
    "--skip-name-resolve",
    # Debian's packaged server defaults to utf8mb4; --no-defaults would give latin1.
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
)


def _mariadb_install(datadir: Path) -> None:
    install_db = find_program("mariadb-install-db")
    require(install_db, find_program("mariadbd"), find_program("mariadb"))
    run(
        [
            install_db,
            "--no-defaults",
            f"--user={_current_user()}",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            *_MARIADB_TUNING[:2],
        ]
    )


def start_mariadb(template: Path, base: Path) -> MariaDBServer:
    """Start a fresh server in `base` from a copy of an installed `template` datadir."""
    datadir = base / "data"
    shutil.copytree(template, datadir, symlinks=True)
    sock = base / "mysqld.sock"
    home = base / "home"
    home.mkdir()
    (home / ".my.cnf").write_text(
        f"[client]\nsocket={sock}\nuser=root\ndefault-character-set=utf8mb4\n"
    )
    return on_free_port(lambda port: _launch_mariadb(base, port, home))


def _launch_mariadb(base: Path, port: int, home: Path) -> MariaDBServer:
    datadir, sock = base / "data", base / "mysqld.sock"
    argv = [
        find_program("mariadbd"),
        "--no-defaults",
        f"--user={_current_user()}",
        f"--datadir={datadir}",
        f"--socket={sock}",
        f"--pid-file={base / 'mysqld.pid'}",
        "--bind-address=127.0.0.1",
        f"--port={port}",
        f"--log-error={base / 'error.log'}",
        *_MARIADB_TUNING,
    ]
    # mariadbd writes its log to --log-error; the console output joins it.
    process = ServerProcess("mariadbd", argv, base / "error.log")
    server = MariaDBServer(process, datadir, sock, port, home)
    ping = [*server.client_argv("mariadb-admin"), "ping"]
    process.wait_ready(_exits_zero(ping))
    return server


@pytest.fixture(scope="session")
def _mariadb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datadir = tmp_path_factory.mktemp("mariadb-template") / "data"
    _mariadb_install(datadir)
    return datadir


@pytest.fixture(scope="session")
def mariadb_server(
    _mariadb_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MariaDBServer]:
    """One MariaDB server for the whole session."""
    server = start_mariadb(_mariadb_template, tmp_path_factory.mktemp("mariadb"))
    yield server
    server.process.stop()


@pytest.fixture
def mariadb_factory(
    _mariadb_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], MariaDBServer]]:
    """`start()` returns a FRESH, empty MariaDB server, stopped after the test."""

    def start() -> MariaDBServer:
        return start_mariadb(_mariadb_template, tmp_path_factory.mktemp("mariadb"))

    with _server_factory(start) as factory:
        yield factory


# --------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class PostgresServer:
    """A running postgres (trust authentication) on 127.0.0.1:port."""

    process: ServerProcess
    datadir: Path
    port: int
    bindir: Path
    host: str = "127.0.0.1"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def env(self) -> dict[str, str]:
        """Environment that points unchanged libpq clients (pg_dumpall) at this server."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": "postgres"}

    def client_argv(self, program: str = "psql") -> list[str]:
        """argv prefix of a client program; run it with `env`."""
        return [str(self.bindir / program)]

    def sql(self, query: str, *, database: str = "postgres") -> str:
        """Run SQL, stopping at the first error; rows as `a|b` lines."""
        argv = [
            *self.client_argv(),
            "--no-psqlrc",
            "--quiet",
            "--no-align",
            "--tuples-only",
            "--set=ON_ERROR_STOP=1",
            f"--dbname={database}",
            "--command",
            query,
        ]
        return run(argv, env=self.env).stdout.decode()

    def load(self, dump: bytes) -> list[str]:
        """Replay a pg_dumpall script; return the ERROR lines psql printed.

        A fresh cluster already has the role `postgres`, so a restore always
        reports `role "postgres" already exists`; callers judge the rest.
        """
        argv = [*self.client_argv(), "--no-psqlrc", "--quiet", "--dbname=postgres", "--file=-"]
        stderr = run(argv, input=dump, env=self.env).stderr.decode(errors="replace")
        return [line for line in stderr.splitlines() if "ERROR:" in line]


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/N/bin (Debian layout), else the dir of PATH's initdb."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    return Path(find_program("initdb")).parent


def _postgres_user() -> str | None:
    """initdb and postgres refuse to run as root: as root, run them as `postgres`."""
    return "postgres" if os.geteuid() == 0 else None


def _postgres_base(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory the server's user can reach.

    pytest's base temp dir is private to root (0700), so as root the cluster
    lives in a fresh /tmp dir owned by `postgres` (removed by the caller).
    """
    user = _postgres_user()
    if user is None:
        return tmp_path_factory.mktemp(name)
    base = Path(tempfile.mkdtemp(prefix=f"palhm-{name}-"))
    shutil.chown(base, user, user)
    return base


def _require_postgres() -> None:
    bindir = postgres_bindir()
    programs = ("initdb", "postgres", "psql", "pg_isready", "pg_dumpall")
    require(*(str(bindir / program) for program in programs))


def _postgres_initdb(datadir: Path) -> None:
    bindir = postgres_bindir()
    argv = [str(bindir / "initdb"), f"--pgdata={datadir}", "--auth=trust", "--username=postgres"]
    run(
        [*argv, "--no-sync", "--encoding=UTF8", "--locale=C"],
        user=_postgres_user(),
        cwd=datadir.parent,
    )


def start_postgres(template: Path, base: Path) -> PostgresServer:
    """Start a fresh cluster in `base` from a copy of an initdb'd `template`."""
    datadir = base / "data"
    # cp -a keeps the owner and the 0700 mode postgres insists on.
    run(["cp", "-a", str(template), str(datadir)])
    return on_free_port(lambda port: _launch_postgres(base, port))


def _launch_postgres(base: Path, port: int) -> PostgresServer:
    datadir, bindir = base / "data", postgres_bindir()
    argv = [
        str(bindir / "postgres"),
        f"-D{datadir}",
        f"-cport={port}",
        "-clisten_addresses=127.0.0.1",
        f"-cunix_socket_directories={base}",
        "-cfsync=off",
        "-cfull_page_writes=off",
    ]
    user = _postgres_user()
    # SIGINT is postgres's "fast" shutdown (what pg_ctl stop -m fast sends).
    process = ServerProcess(
        "postgres", argv, base / "postgres.log", stop_signal=signal.SIGINT, user=user, cwd=base
    )
    server = PostgresServer(process, datadir, port, bindir)
    ready = [str(bindir / "pg_isready"), "--quiet", "--host=127.0.0.1", f"--port={port}"]
    process.wait_ready(_exits_zero(ready))
    return server


def _remove_private_dirs(paths: Sequence[Path]) -> None:
    """Remove the /tmp dirs made by _postgres_base (never anything else)."""
    for path in paths:
        if path.parent == Path(tempfile.gettempdir()) and path.name.startswith("palhm-"):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def _postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    _require_postgres()
    base = _postgres_base(tmp_path_factory, "pg-template")
    try:
        _postgres_initdb(base / "data")
        yield base / "data"
    finally:
        _remove_private_dirs([base])


@pytest.fixture(scope="session")
def postgres_server(
    _postgres_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session; use `env` to reach it."""
    base = _postgres_base(tmp_path_factory, "pg")
    try:
        server = start_postgres(_postgres_template, base)
        try:
            yield server
        finally:
            server.process.stop()
    finally:
        _remove_private_dirs([base])


@pytest.fixture
def postgres_factory(
    _postgres_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], PostgresServer]]:
    """`start()` returns a FRESH PostgreSQL cluster, stopped (and removed) after the test."""
    bases: list[Path] = []

    def start() -> PostgresServer:
        bases.append(_postgres_base(tmp_path_factory, "pg"))
        return start_postgres(_postgres_template, bases[-1])

    try:
        with _server_factory(start) as factory:
            yield factory
    finally:
        _remove_private_dirs(bases)


# --------------------------------------------------------------------------
# OpenLDAP


SUFFIX: Final = "dc=example,dc=test"
ROOT_DN: Final = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD: Final = "secret"

SEED_LDIF: Final = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example Test

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice Ärger
sn: Ärger
mail: alice@example.test
"""
"""The tree every slapd_server starts with (loaded offline with slapadd)."""


def _first_existing(*paths: str) -> Path:
    for path in paths:
        if Path(path).exists():
            return Path(path)
    return Path(paths[0])


def _slapd_config_ldif(base: Path) -> str:
    """cn=config for a private slapd: one mdb database for SUFFIX."""
    schema = _first_existing("/etc/ldap/schema", "/etc/openldap/schema")
    modules = _first_existing("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")
    includes = "".join(
        f"include: file://{schema}/{name}.ldif\n" for name in ("core", "cosine", "inetorgperson")
    )
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {base}/slapd.pid

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {modules}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: cn=admin,cn=config

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {ROOT_PASSWORD}
olcDbDirectory: {base}/db
olcDbMaxSize: 104857600
olcDbIndex: objectClass eq
"""


def unfold_ldif(text: str) -> list[str]:
    """LDIF lines with continuation lines (leading space) joined back."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    return lines


def ldif_dns(text: str) -> set[str]:
    """The set of DNs in an LDIF text (base64 `dn::` forms decoded)."""
    dns: set[str] = set()
    for line in unfold_ldif(text):
        if line.startswith("dn:: "):
            dns.add(base64.b64decode(line[5:]).decode())
        elif line.startswith("dn: "):
            dns.add(line[4:])
    return dns


@dataclass(frozen=True)
class SlapdServer:
    """A running slapd serving SUFFIX on ldap://127.0.0.1:port, cn=config in `config_dir`."""

    process: ServerProcess
    config_dir: Path
    db_dir: Path
    port: int
    suffix: str = SUFFIX
    root_dn: str = ROOT_DN
    root_password: str = ROOT_PASSWORD

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def slapcat_argv(self) -> list[str]:
        """`slapcat -F DIR -n 1`: dump the data database offline-safe while slapd runs."""
        return [find_program("slapcat"), "-F", str(self.config_dir), "-n", "1"]

    def _bind_argv(self, program: str) -> list[str]:
        return [
            find_program(program),
            "-x",
            "-H",
            self.url,
            "-D",
            self.root_dn,
            "-w",
            self.root_password,
        ]

    def ldapadd(self, ldif: str) -> None:
        """Add entries over LDAP (as the root DN)."""
        run(self._bind_argv("ldapadd"), input=ldif.encode())

    def ldapsearch(self, *attributes: str, filter: str = "(objectClass=*)") -> str:
        """Search the whole tree over LDAP; unwrapped LDIF (`-LLL`)."""
        argv = [*self._bind_argv("ldapsearch"), "-LLL", "-o", "ldif-wrap=no", "-b", self.suffix]
        return run([*argv, filter, *attributes]).stdout.decode()

    def dns(self) -> set[str]:
        """Every DN in the tree, as seen over LDAP."""
        return ldif_dns(self.ldapsearch("1.1"))


def start_slapd(base: Path, data_ldif: str | bytes = SEED_LDIF) -> SlapdServer:
    """Build cn=config offline, slapadd `data_ldif` (a seed or a slapcat dump), start slapd."""
    slapadd, slapd = find_program("slapadd"), find_program("slapd")
    require(
        slapadd, slapd, find_program("slapcat"), find_program("ldapadd"), find_program("ldapsearch")
    )
    config_dir, db_dir = base / "slapd.d", base / "db"
    config_dir.mkdir()
    db_dir.mkdir()
    data = data_ldif.encode() if isinstance(data_ldif, str) else data_ldif
    run([slapadd, "-n", "0", "-F", str(config_dir)], input=_slapd_config_ldif(base).encode())
    run([slapadd, "-q", "-n", "1", "-F", str(config_dir)], input=data)
    return on_free_port(lambda port: _launch_slapd(base, port))


def _launch_slapd(base: Path, port: int) -> SlapdServer:
    slapd, config_dir, db_dir = find_program("slapd"), base / "slapd.d", base / "db"
    # -d 0: stay in the foreground without debug output, so the PID is our child's.
    argv = [slapd, "-d", "0", "-F", str(config_dir), "-h", f"ldap://127.0.0.1:{port}/"]
    process = ServerProcess("slapd", argv, base / "slapd.log")
    # Probe with a real LDAP request: a foreign listener on the port must not pass.
    root_dse = [find_program("ldapsearch"), "-x", "-H", f"ldap://127.0.0.1:{port}"]
    root_dse += ["-o", "nettimeout=2", "-s", "base", "-b", "", "1.1"]
    process.wait_ready(_exits_zero(root_dse))
    return SlapdServer(process, config_dir, db_dir, port)


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """One slapd for the whole session, seeded with SEED_LDIF."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.process.stop()


@pytest.fixture
def slapd_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SlapdServer]]:
    """`start(data_ldif=SEED_LDIF)` returns a FRESH slapd holding `data_ldif`."""

    def start(data_ldif: str | bytes = SEED_LDIF) -> SlapdServer:
        return start_slapd(tmp_path_factory.mktemp("slapd"), data_ldif)

    with _server_factory(start) as factory:
        yield factory


# --------------------------------------------------------------------------
# gpg


@dataclass(frozen=True)
class GpgKey:
    """A throwaway key pair split as on a real backup host.

    `public_home` holds only the public key, marked fully trusted (what the
    backup host has; use `env`); `secret_home` holds the secret key (what the
    restore side has; use `decrypt`). No passphrase.
    """

    public_home: Path
    secret_home: Path
    fingerprint: str
    email: str

    @property
    def env(self) -> dict[str, str]:
        """Environment for an encrypting pipeline stage (GNUPGHOME=public_home)."""
        return {"GNUPGHOME": str(self.public_home)}

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt with the secret key; raise ServiceError on any failure."""
        argv = [
            find_program("gpg"),
            "--homedir",
            str(self.secret_home),
            "--batch",
            "--quiet",
            "--decrypt",
        ]
        return run(argv, input=data).stdout


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    argv = [find_program("gpg"), "--homedir", str(home), "--batch", "--no-auto-key-locate"]
    return run([*argv, *args], input=input).stdout


def make_gpg_key(base: Path, email: str = "palhm-test@example.test") -> GpgKey:
    """Generate an ed25519/cv25519 key without passphrase (< 0.1 s)."""
    require(find_program("gpg"), find_program("gpgconf"))
    public_home, secret_home = base / "public", base / "secret"
    for home in (public_home, secret_home):
        home.mkdir(mode=0o700)
    no_pass = ("--pinentry-mode", "loopback", "--passphrase", "")
    _gpg(
        secret_home,
        *no_pass,
        "--quick-gen-key",
        f"PALHM Test <{email}>",
        "ed25519",
        "sign",
        "never",
    )
    listing = _gpg(secret_home, "--with-colons", "--list-keys", email).decode()
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    _gpg(secret_home, *no_pass, "--quick-add-key", fingerprint, "cv25519", "encr", "never")
    _gpg(public_home, "--import", input=_gpg(secret_home, "--export", fingerprint))
    # Trust as an admin would after checking the fingerprint (6 = ultimate).
    _gpg(public_home, "--import-ownertrust", input=f"{fingerprint}:6:\n".encode())
    # Done once here, so the first encryption does not print "checking the trustdb".
    _gpg(public_home, "--check-trustdb")
    return GpgKey(public_home, secret_home, fingerprint, email)


def _kill_gpg_agents(*homes: Path) -> None:
    for home in homes:
        subprocess.run(
            [find_program("gpgconf"), "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            check=False,
            timeout=COMMAND_TIMEOUT,
        )


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    """A throwaway key pair for the session; its gpg-agents are stopped at the end."""
    base = tmp_path_factory.mktemp("gpg")
    try:
        yield make_gpg_key(base)
    finally:
        _kill_gpg_agents(base / "public", base / "secret")
