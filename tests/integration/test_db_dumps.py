"""Real database dumps backed up end to end through the palhm CLI, then restored.

Each test starts from a shipped example config (src/palhm/data/examples/),
changes only what points it at the test server and the backup root, runs
`palhm -f CFG run TASK` as a user would, and restores the stored object into a
FRESH server whose data must then equal the source's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pyjson5
import pytest

from tests.helpers import REPO, run_palhm, write_config
from tests.services.databases import (
    GpgKey,
    MariaDBServer,
    PostgresServer,
    SlapdServer,
    find_program,
    ldif_dns,
    require,
    run,
)
from tests.services.moto import MotoServer

pytestmark = pytest.mark.services

EXAMPLES = REPO / "src" / "palhm" / "data" / "examples"
MANIFEST = ".palhm-manifest.json"


@pytest.fixture(autouse=True)
def _restore_tools() -> None:
    """The tools the checks and restores use: skip, or fail in CI, without them."""
    require(find_program("zstd"), find_program("b3sum"))


# --------------------------------------------------------------------------
# Config helpers


def load_example(name: str) -> dict[str, Any]:
    """A shipped example config as a dict (JSONC parsed)."""
    document: dict[str, Any] = pyjson5.decode((EXAMPLES / name).read_text())
    return document


def exec_def(config: dict[str, Any], exec_id: str) -> dict[str, Any]:
    """The exec definition `exec_id` of `config`, to be adjusted in place."""
    found: dict[str, Any] = next(e for e in config["execs"] if e["id"] == exec_id)
    return found


def the_task(config: dict[str, Any]) -> dict[str, Any]:
    (task,) = config["tasks"]
    found: dict[str, Any] = task
    return found


# --------------------------------------------------------------------------
# Where the copies go: a localfs root or an S3 bucket (moto), same checks


class Store(Protocol):
    """A backend under test: aims a config at it, finds the one committed copy."""

    env: dict[str, str]

    def aim(self, config: dict[str, Any]) -> None: ...

    def manifest(self) -> dict[str, Any]: ...

    def read(self, prefix: str, path: str) -> bytes: ...

    def leftovers(self) -> list[str]: ...


class LocalStore:
    """localfs under a tmp root; the example's own backend-param otherwise kept."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}

    def aim(self, config: dict[str, Any]) -> None:
        the_task(config)["backend-param"]["root"] = str(self.root)

    def _copies(self) -> list[Path]:
        return [entry for entry in self.root.iterdir() if not entry.name.startswith(".")]

    def manifest(self) -> dict[str, Any]:
        copies = self._copies()
        assert len(copies) == 1, f"expected one copy in {self.root}, found {copies}"
        manifest_file = copies[0] / MANIFEST
        assert manifest_file.is_file(), "the copy has no manifest: not committed"
        document: dict[str, Any] = json.loads(manifest_file.read_text())
        return document

    def read(self, prefix: str, path: str) -> bytes:
        return (self.root / prefix / path).read_bytes()

    def leftovers(self) -> list[str]:
        """Directories left under the root (copies or staging; a lock file may stay)."""
        if not self.root.exists():
            return []
        return [entry.name for entry in self.root.iterdir() if entry.is_dir()]


class S3Store:
    """aws-s3 on a fresh moto bucket; localfs-only params of the example dropped."""

    COMMON_PARAMS = (
        "nb-copy-limit",
        "root-size-limit",
        "keep-last",
        "keep-hourly",
        "keep-daily",
        "keep-weekly",
        "keep-monthly",
        "keep-yearly",
    )

    def __init__(self, moto: MotoServer, bucket: str, root: str) -> None:
        self.s3 = moto.client("s3")
        self.bucket, self.root, self.endpoint = bucket, root, moto.endpoint_url
        self.env = dict(moto.env)

    def aim(self, config: dict[str, Any]) -> None:
        config["modules"] = [*config.get("modules", []), "aws"]
        task = the_task(config)
        kept = {k: v for k, v in task["backend-param"].items() if k in self.COMMON_PARAMS}
        task["backend"] = "aws-s3"
        task["backend-param"] = {
            **kept,
            "bucket": self.bucket,
            "root": self.root,
            "endpoint-url": self.endpoint,
        }

    def _keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.root}/"
        )
        return [item["Key"] for page in pages for item in page.get("Contents", ())]

    def manifest(self) -> dict[str, Any]:
        manifests = [key for key in self._keys() if key.endswith(f"/{MANIFEST}")]
        assert len(manifests) == 1, f"expected one copy in the bucket, found {manifests}"
        body = self.s3.get_object(Bucket=self.bucket, Key=manifests[0])["Body"].read()
        document: dict[str, Any] = json.loads(body)
        return document

    def read(self, prefix: str, path: str) -> bytes:
        key = f"{self.root}/{prefix}/{path}"
        data: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def leftovers(self) -> list[str]:
        """Keys and unfinished multipart uploads left under the root (a lock may stay)."""
        uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        keys = [key for key in self._keys() if "lock" not in key.rsplit("/", 1)[-1]]
        return keys + [upload["Key"] for upload in uploads]


@pytest.fixture(params=["localfs", "aws-s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each test runs once per backend; aws-s3 starts moto only when needed."""
    if request.param == "localfs":
        return LocalStore(tmp_path / "backups")
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    return S3Store(moto, bucket, "hosts/db1")


def run_backup(tmp_path: Path, store: Store, config: dict[str, Any]) -> Path:
    """Aim `config` at `store`, write it and run its task through the CLI: must succeed.

    Returns the config file, for `palhm get`.
    """
    store.aim(config)
    config_file = write_config(tmp_path / "palhm.json", config)
    done = run_palhm(["-f", str(config_file), "run", the_task(config)["id"]], env=store.env)
    assert done.returncode == 0, f"palhm failed:\n{done.stderr}"
    return config_file


def palhm_get(config_file: Path, store: Store, *args: str) -> bytes:
    """`palhm -f CFG get TASK PREFIX PATH`: the object's bytes on stdout (the restore path)."""
    argv = [sys.executable, "-m", "palhm", "-f", str(config_file), "get", *args]
    env = {**os.environ, **store.env}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def fetch_object(store: Store, config_file: Path, path: str) -> bytes:
    """Object `path` of the one committed copy in `store`, fetched with `palhm get`.

    Also checks that the copy's manifest is complete and lists the object
    with its true size and BLAKE3 sum, and that `get` returns exactly the
    stored bytes.
    """
    manifest = store.manifest()
    assert manifest["state"] == "complete"
    fetched = palhm_get(config_file, store, manifest["task"], manifest["prefix"], path)
    assert fetched == store.read(manifest["prefix"], path)
    (entry,) = [entry for entry in manifest["objects"] if entry["path"] == path]
    assert entry["size"] == len(fetched)
    # The default checksum, checked with Debian's independent b3sum.
    assert entry["checksum"]["algorithm"] == "blake3"
    b3sum = run([find_program("b3sum"), "--no-names"], input=fetched).stdout.decode().strip()
    assert entry["checksum"]["hex"] == b3sum
    return fetched


def zstd_decompress(data: bytes) -> bytes:
    return run([find_program("zstd"), "--decompress", "--stdout"], input=data).stdout


# --------------------------------------------------------------------------
# MariaDB: mysqldump | zstd | gpg


MARIADB_DATA = """
DROP DATABASE IF EXISTS e2e_shop;
CREATE DATABASE e2e_shop;
USE e2e_shop;
CREATE TABLE items(id INT PRIMARY KEY, name VARCHAR(50), payload MEDIUMBLOB, price DECIMAL(8,2));
INSERT INTO items VALUES
  (1, 'kettle', NULL, 19.99),
  (2, 'grüße 🍵', UNHEX('00FF0A0D275C22'), 0.01),
  (3, 'tab\there', REPEAT('x', 70000), NULL);
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 1;
CREATE PROCEDURE add_item(IN n VARCHAR(50)) INSERT INTO items(id, name) VALUES (99, n);
"""

MARIADB_CHECKS = (
    "SELECT id, name, HEX(payload), price FROM e2e_shop.items ORDER BY id",
    "SELECT * FROM e2e_shop.cheap",
    "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'e2e_shop'",
)


def mariadb_config(server: MariaDBServer, key: GpgKey) -> dict[str, Any]:
    """The mariadb example, aimed at the test server and the test key."""
    config = load_example("mariadb.jsonc")
    # The dump argv stays as shipped: HOME's .my.cnf leads it to the test server.
    exec_def(config, "mysqldump-all")["env"] = server.env
    gpg = exec_def(config, "gpg-encrypt")
    gpg["argv"][gpg["argv"].index("--recipient") + 1] = key.fingerprint
    gpg["env"] = key.env
    return config


def test_mariadb_example_backs_up_encrypted_and_restores_into_a_fresh_server(
    tmp_path: Path,
    store: Store,
    mariadb_server: MariaDBServer,
    mariadb_factory: Callable[[], MariaDBServer],
    gpg_key: GpgKey,
) -> None:
    mariadb_server.sql(MARIADB_DATA)

    config_file = run_backup(tmp_path, store, mariadb_config(mariadb_server, gpg_key))

    stored = fetch_object(store, config_file, "all-databases.sql.zst.gpg")
    assert b"kettle" not in stored  # encrypted at rest
    dump = zstd_decompress(gpg_key.decrypt(stored))
    fresh = mariadb_factory()
    fresh.load(dump)
    for query in MARIADB_CHECKS:
        assert fresh.sql(query) == mariadb_server.sql(query), query
    assert "grüße 🍵" in fresh.sql(MARIADB_CHECKS[0])


# --------------------------------------------------------------------------
# PostgreSQL: pg_dumpall | zstd


POSTGRES_DATA = """
CREATE TABLE items(id int PRIMARY KEY, name text, payload bytea, tags jsonb);
INSERT INTO items VALUES
  (1, 'kettle', NULL, '{"colour": "red"}'),
  (2, 'grüße 🍵', '\\x00ff0a0d5c', '[]'),
  (3, E'tab\\there', decode(repeat('ab', 40000), 'hex'), NULL);
CREATE VIEW cheap AS SELECT id, name FROM items WHERE id > 1;
"""

POSTGRES_CHECKS = (
    "SELECT id, name, md5(payload), tags FROM items ORDER BY id",
    "SELECT * FROM cheap ORDER BY id",
)


def postgres_config(server: PostgresServer) -> dict[str, Any]:
    """The postgresql example, aimed at the test cluster."""
    config = load_example("postgresql.jsonc")
    dumpall = exec_def(config, "pg-dumpall")
    if os.geteuid() != 0:
        # runuser needs root; a non-root tester can only connect as itself.
        dumpall["argv"] = dumpall["argv"][dumpall["argv"].index("--") + 1 :]
    dumpall["env"] = server.env
    return config


def fill_postgres(server: PostgresServer) -> None:
    server.sql("DROP DATABASE IF EXISTS e2e_shop")
    server.sql("CREATE DATABASE e2e_shop")
    server.sql("DROP ROLE IF EXISTS e2e_reader; CREATE ROLE e2e_reader LOGIN PASSWORD 'pw'")
    server.sql(POSTGRES_DATA, database="e2e_shop")


def test_postgresql_example_backs_up_the_cluster_and_restores_into_a_fresh_one(
    tmp_path: Path,
    store: Store,
    postgres_server: PostgresServer,
    postgres_factory: Callable[[], PostgresServer],
) -> None:
    fill_postgres(postgres_server)

    config_file = run_backup(tmp_path, store, postgres_config(postgres_server))

    dump = zstd_decompress(fetch_object(store, config_file, "cluster.sql.zst"))
    fresh = postgres_factory()
    errors = fresh.load(dump)
    assert all('role "postgres" already exists' in line for line in errors), errors
    for query in POSTGRES_CHECKS:
        restored = fresh.sql(query, database="e2e_shop")
        assert restored == postgres_server.sql(query, database="e2e_shop"), query
    reader = "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'e2e_reader'"
    assert fresh.sql(reader) == "e2e_reader|t\n"


# --------------------------------------------------------------------------
# OpenLDAP: slapcat | zstd, config and data


def openldap_config(server: SlapdServer) -> dict[str, Any]:
    """The openldap example, reading the test server's cn=config directory."""
    config = load_example("openldap.jsonc")
    slapcat = exec_def(config, "slapcat")
    slapcat["argv"] = [*slapcat["argv"], "-F", str(server.config_dir)]
    return config


def test_openldap_example_backs_up_a_running_slapd_and_restores_into_a_fresh_one(
    tmp_path: Path,
    store: Store,
    slapd_server: SlapdServer,
    slapd_factory: Callable[..., SlapdServer],
) -> None:
    uid = f"e2e-carol-{uuid.uuid4().hex[:8]}"
    carol = f"uid={uid},ou=people,{slapd_server.suffix}"
    # Added over LDAP while slapd runs: slapcat must still see it.
    slapd_server.ldapadd(
        f"dn: {carol}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Carol Çelik\n"
        "sn: Çelik\nuserPassword: {SSHA}not-a-real-hash\ntelephoneNumber: +1 555 0100\n"
    )

    config_file = run_backup(tmp_path, store, openldap_config(slapd_server))

    data = zstd_decompress(fetch_object(store, config_file, "data.ldif.zst"))
    config = zstd_decompress(fetch_object(store, config_file, "config.ldif.zst")).decode()
    assert f"olcSuffix: {slapd_server.suffix}" in config
    config_now = run([*slapd_server.slapcat_argv[:-2], "-n", "0"]).stdout.decode()
    assert ldif_dns(config) == ldif_dns(config_now)
    fresh = slapd_factory(data)
    assert carol in fresh.dns()
    assert fresh.dns() == slapd_server.dns()
    assert fresh.ldapsearch("*") == slapd_server.ldapsearch("*")


# --------------------------------------------------------------------------
# A dump that fails


def test_a_failing_dump_leaves_no_copy_and_reports_the_dump_tool(
    tmp_path: Path, store: Store, mariadb_server: MariaDBServer, gpg_key: GpgKey
) -> None:
    config = mariadb_config(mariadb_server, gpg_key)
    # A socket nobody listens on: mysqldump fails while zstd and gpg run.
    broken_home = tmp_path / "home"
    broken_home.mkdir()
    (broken_home / ".my.cnf").write_text(f"[client]\nsocket={tmp_path / 'none.sock'}\n")
    exec_def(config, "mysqldump-all")["env"] = {"HOME": str(broken_home)}
    store.aim(config)
    config_file = write_config(tmp_path / "palhm.json", config)

    done = run_palhm(["-f", str(config_file), "run", "mariadb"], env=store.env)

    assert done.returncode == 1, done.stderr
    assert "mysqldump" in done.stderr
    assert "Traceback" not in done.stderr
    assert store.leftovers() == []
