"""Restore drills end to end: the shipped examples' `drill` sections, run by the CLI.

For MariaDB, PostgreSQL and OpenLDAP, on localfs and on S3 (moto): a real dump is
backed up with `palhm run`, then `palhm drill` sets up a THROWAWAY server of its
own (the example's set-up commands), restores the newest copy into it, checks it,
and tears it down. A good copy passes; a copy with a flipped byte, a truncated
object, or a dump that is valid zstd but not valid SQL/LDIF fails, naming the
failing stage, with exit status 1, the metrics saying so, and nothing left behind
(no server process, no drill directory).

Only what ties an example to the test servers is changed: the source server's
address, the gpg key, the user the throwaway server runs as (no `mysql` user
here), the PostgreSQL version directory and the slapd port.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, run_palhm, write_config
from tests.integration.test_db_dumps import (
    LocalStore,
    S3Store,
    Store,
    exec_def,
    mariadb_config,
    openldap_config,
    postgres_config,
    store,
    the_task,
)
from tests.prometheus_text import by_task, parse_prometheus
from tests.services.databases import (
    GpgKey,
    MariaDBServer,
    PostgresServer,
    SlapdServer,
    find_program,
    postgres_bindir,
    require,
)

__all__ = ["store"]  # the localfs / aws-s3 parametrised fixture

pytestmark = pytest.mark.services

BREAKAGES = ("good", "flipped-byte", "truncated", "not-a-dump")


@pytest.fixture(autouse=True)
def _tools() -> None:
    require(find_program("zstd"), find_program("start-stop-daemon"))


@pytest.fixture
def drill_tmp() -> Iterator[Path]:
    """TMPDIR for palhm: a fresh /tmp dir (0711) a server's own user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="palhm-test-drills-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


def write_object(store: Store, prefix: str, path: str, data: bytes) -> None:
    """Replace a stored object behind palhm's back (the manifest stays as it was)."""
    if isinstance(store, LocalStore):
        (store.root / prefix / path).write_bytes(data)
    else:
        assert isinstance(store, S3Store)
        store.s3.put_object(Bucket=store.bucket, Key=f"{store.root}/{prefix}/{path}", Body=data)


def break_copy(store: Store, breakage: str, path: str) -> None:
    manifest = store.manifest()
    data = store.read(manifest["prefix"], path)
    if breakage == "flipped-byte":
        middle = len(data) // 2
        write_object(
            store,
            manifest["prefix"],
            path,
            data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :],
        )
    elif breakage == "truncated":
        write_object(store, manifest["prefix"], path, data[: len(data) * 2 // 3])


def not_a_dump(config: dict[str, Any], path: str, text: str) -> None:
    """The object's dump stage replaced: the copy is valid zstd of `text`."""
    obj = next(o for o in the_task(config)["objects"] if o["path"] == path)
    obj["pipeline"][0] = {"type": "exec-inline", "argv": ["/usr/bin/printf", text]}


def replace_in_argvs(node: Any, old: str, new: str) -> Any:
    """Every string in a config tree with `old` replaced (argv adjustments)."""
    if isinstance(node, dict):
        return {k: replace_in_argvs(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_in_argvs(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


def drill(
    tmp_path: Path, store: Store, config: dict[str, Any], drill_tmp: Path, breakage: str, path: str
) -> tuple[Any, dict[str, float]]:
    """Back up, break the copy as asked, run `palhm drill`; (result, drill metrics)."""
    metrics = tmp_path / "palhm.prom"
    config["metrics"] = {"textfile": str(metrics)}
    store.aim(config)
    config_file = write_config(tmp_path / "palhm.json", config)
    task = the_task(config)["id"]
    done = run_palhm(["-f", str(config_file), "run", task], env=store.env)
    assert done.returncode == 0, done.stderr
    break_copy(store, breakage, path)
    env = {**store.env, "TMPDIR": str(drill_tmp)}
    result = run_palhm(["-f", str(config_file), "drill", task], env=env, timeout=240)
    assert "Traceback" not in result.stderr
    # nothing left behind: the drill directory (and any server using it) is gone
    assert list(drill_tmp.iterdir()) == []
    assert not _processes_using(drill_tmp)
    families = parse_prometheus(metrics.read_text())  # strict: a valid textfile
    samples = {
        name: by_task(families, name)[task]
        for name in families
        if "drill" in name and task in by_task(families, name)
    }
    return result, samples


def _processes_using(directory: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(directory) in cmdline:
                found.append(cmdline)
    return found


def assert_outcome(
    result: Any, samples: dict[str, float], breakage: str, object_path: str, content_stage: str
) -> None:
    if breakage == "good":
        assert result.returncode == 0, result.stderr
        assert "drill passed" in result.stdout
        assert samples["palhm_last_drill_success"] == 1
        assert "palhm_last_drill_success_timestamp_seconds" in samples
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert samples["palhm_last_drill_success"] == 0
    assert "palhm_last_drill_success_timestamp_seconds" not in samples
    where = f"object '{object_path}', restore"
    assert where in result.stderr
    if breakage == "flipped-byte":
        assert f"{where}, stored object: checksum differs" in result.stderr
    elif breakage == "truncated":
        assert f"{where}, stored object: size differs" in result.stderr
    else:
        assert f"{where}, {content_stage}" in result.stderr, result.stderr


# --------------------------------------------------------------------------- MariaDB


MARIADB_DATA = """
DROP DATABASE IF EXISTS drill_shop;
CREATE DATABASE drill_shop;
CREATE TABLE drill_shop.items(id INT PRIMARY KEY, name VARCHAR(50));
INSERT INTO drill_shop.items VALUES (1, 'kettle'), (2, 'grüße'), (3, 'teapot');
"""


def mariadb_drill_config(server: MariaDBServer, key: GpgKey) -> dict[str, Any]:
    config = mariadb_config(server, key)
    exec_def(config, "gpg-decrypt")["env"] = {"GNUPGHOME": str(key.secret_home)}
    task = the_task(config)
    # no `mysql` user on this machine: the throwaway server runs as root
    section = replace_in_argvs(task["drill"], "--user=mysql", "--user=root")
    task["drill"] = section
    for command in task["drill"]["set-up"]:
        argv = command["argv"]
        if argv[0] == "/usr/bin/install":
            command["argv"] = ["root" if arg == "mysql" else arg for arg in argv]
    task["drill"]["checks"].append(
        {
            "name": "rows in drill_shop.items",
            "run": {
                "type": "exec-inline",
                "argv": [
                    "/usr/bin/mariadb",
                    "--no-defaults",
                    "--user=root",
                    "--socket={drill-dir}/db/mysqld.sock",
                    "--batch",
                    "--skip-column-names",
                    "--execute",
                    "SELECT COUNT(*) FROM drill_shop.items",
                ],
            },
            "expect-output": "^3$",
        }
    )
    return config


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_mariadb_drill_passes_on_a_good_copy_and_names_the_stage_of_a_broken_one(
    tmp_path: Path,
    store: Store,
    drill_tmp: Path,
    breakage: str,
    mariadb_server: MariaDBServer,
    gpg_key: GpgKey,
) -> None:
    mariadb_server.sql(MARIADB_DATA)
    config = mariadb_drill_config(mariadb_server, gpg_key)
    path = "all-databases.sql.zst.gpg"
    if breakage == "not-a-dump":
        not_a_dump(config, path, "this is not SQL at all;\n")

    result, samples = drill(tmp_path, store, config, drill_tmp, breakage, path)

    assert_outcome(result, samples, breakage, path, "stage 3 (/usr/bin/mariadb)")
    if breakage == "good":
        assert "ok  rows in drill_shop.items" in result.stdout


# --------------------------------------------------------------------------- PostgreSQL


def postgres_drill_config(server: PostgresServer) -> dict[str, Any]:
    config = postgres_config(server)
    task = the_task(config)
    task["drill"] = replace_in_argvs(
        task["drill"], "/usr/lib/postgresql/15/bin", str(postgres_bindir())
    )
    task["drill"]["checks"].append(
        {
            "name": "rows in drill_shop.items",
            "run": {
                "type": "exec-inline",
                "argv": [
                    str(postgres_bindir() / "psql"),
                    "--no-psqlrc",
                    "--tuples-only",
                    "--no-align",
                    "--dbname=drill_shop",
                    "--command",
                    "SELECT count(*) FROM items",
                ],
            },
            "expect-output": "^3$",
        }
    )
    return config


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_postgresql_drill_into_a_fresh_initdb_cluster(
    tmp_path: Path, store: Store, drill_tmp: Path, breakage: str, postgres_server: PostgresServer
) -> None:
    postgres_server.sql("DROP DATABASE IF EXISTS drill_shop")
    postgres_server.sql("CREATE DATABASE drill_shop")
    postgres_server.sql(
        "CREATE TABLE items(id int PRIMARY KEY, name text);"
        " INSERT INTO items VALUES (1, 'kettle'), (2, 'grüße'), (3, 'teapot')",
        database="drill_shop",
    )
    config = postgres_drill_config(postgres_server)
    path = "cluster.sql.zst"
    if breakage == "not-a-dump":
        not_a_dump(config, path, "this is not SQL at all;\n")

    result, samples = drill(tmp_path, store, config, drill_tmp, breakage, path)

    assert_outcome(result, samples, breakage, path, "stage 3 (psql-restore)")
    if breakage == "good":
        assert "ok  rows in drill_shop.items" in result.stdout


# --------------------------------------------------------------------------- OpenLDAP


def openldap_drill_config(server: SlapdServer) -> dict[str, Any]:
    config = openldap_config(server)
    task = the_task(config)
    port = free_port()
    drill_section = replace_in_argvs(task["drill"], "127.0.0.1:3899", f"127.0.0.1:{port}")
    drill_section = replace_in_argvs(drill_section, "dc=example,dc=org", server.suffix)
    search = drill_section["checks"][1]
    search["run"]["argv"][-2] = "(uid=alice)"
    search["expect-output"] = f"^dn: uid=alice,ou=people,{server.suffix}$"
    task["drill"] = drill_section
    return config


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_openldap_drill_slapadds_into_a_fresh_slapd_and_finds_an_entry(
    tmp_path: Path, store: Store, drill_tmp: Path, breakage: str, slapd_server: SlapdServer
) -> None:
    config = openldap_drill_config(slapd_server)
    path = "data.ldif.zst"
    if breakage == "not-a-dump":
        not_a_dump(config, path, "this is not LDIF at all\n")

    result, samples = drill(tmp_path, store, config, drill_tmp, breakage, path)

    assert_outcome(result, samples, breakage, path, "stage 2 (/usr/sbin/slapadd)")
    if breakage == "good":
        assert "ok  entry found" in result.stdout
        assert "ok  config.ldif.zst" in result.stdout
