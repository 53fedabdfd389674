"""The database fixtures themselves: real servers, dumped and restored with the plain tools.

These run without palhm, so a broken fixture shows up here and not as a
confusing failure of an end-to-end backup test.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services import databases
from tests.services.databases import (
    GpgKey,
    MariaDBServer,
    PostgresServer,
    SlapdServer,
    find_program,
    ldif_dns,
    run,
    start_slapd,
)

pytestmark = pytest.mark.services


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_mariadb_unchanged_mysqldump_argv_reaches_the_server_through_home(
    mariadb_server: MariaDBServer,
) -> None:
    mariadb_server.sql(
        "CREATE DATABASE fixture_shop;"
        "CREATE TABLE fixture_shop.items(id INT PRIMARY KEY, name VARCHAR(50));"
        "INSERT INTO fixture_shop.items VALUES (1, 'kettle'), (2, 'toaster');"
    )
    # No --socket and no --no-defaults: exactly what a user's config says.
    argv = [find_program("mysqldump"), "-uroot", "--all-databases", "--single-transaction"]
    dump = run(argv, env=mariadb_server.env).stdout.decode(errors="replace")

    assert "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `fixture_shop`" in dump
    assert "(1,'kettle')" in dump
    assert "(2,'toaster')" in dump


def test_mariadb_dump_restores_into_a_fresh_server(
    mariadb_server: MariaDBServer, mariadb_factory: Callable[[], MariaDBServer]
) -> None:
    mariadb_server.sql(
        "CREATE DATABASE fixture_copy; CREATE TABLE fixture_copy.t(v TEXT);"
        "INSERT INTO fixture_copy.t VALUES ('grüße'), (NULL);"
    )
    dump = run([*mariadb_server.client_argv("mysqldump"), "--databases", "fixture_copy"]).stdout
    fresh = mariadb_factory()
    assert "fixture_copy" not in fresh.sql("SHOW DATABASES")

    fresh.load(dump)

    query = "SELECT v FROM fixture_copy.t ORDER BY v"
    assert fresh.sql(query) == mariadb_server.sql(query) == "NULL\ngrüße\n"
    assert fresh.pid != mariadb_server.pid


def test_stopping_a_fresh_server_ends_exactly_its_process(
    mariadb_factory: Callable[[], MariaDBServer],
) -> None:
    server = mariadb_factory()
    assert _pid_alive(server.pid)

    server.process.stop()

    assert not _pid_alive(server.pid)
    server.process.stop()  # the factory's teardown stops it again: must be harmless
    assert not server.process.running()


def test_postgres_pg_dumpall_with_env_dumps_the_rows(postgres_server: PostgresServer) -> None:
    postgres_server.sql("CREATE DATABASE fixture_shop")
    postgres_server.sql(
        "CREATE TABLE items(id int PRIMARY KEY, name text);"
        "INSERT INTO items VALUES (1, 'kettle'), (2, 'toaster');",
        database="fixture_shop",
    )
    dump = run([find_program("pg_dumpall")], env=postgres_server.env).stdout.decode()

    assert "CREATE DATABASE fixture_shop" in dump
    assert "COPY public.items (id, name) FROM stdin;\n1\tkettle\n2\ttoaster\n\\." in dump


def test_postgres_dump_restores_into_a_fresh_cluster(
    postgres_server: PostgresServer, postgres_factory: Callable[[], PostgresServer]
) -> None:
    postgres_server.sql("CREATE DATABASE fixture_copy")
    postgres_server.sql(
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('grüße'), (NULL);", database="fixture_copy"
    )
    dump = run([find_program("pg_dumpall")], env=postgres_server.env).stdout
    fresh = postgres_factory()
    assert fresh.port != postgres_server.port

    errors = fresh.load(dump)

    assert all('role "postgres" already exists' in line for line in errors), errors
    query = "SELECT coalesce(v, '<null>') FROM t ORDER BY v"
    expected = "grüße\n<null>\n"
    assert fresh.sql(query, database="fixture_copy") == expected
    assert postgres_server.sql(query, database="fixture_copy") == expected


def test_slapcat_while_slapd_runs_includes_an_entry_added_over_ldap(
    slapd_server: SlapdServer,
) -> None:
    dn = f"uid=fixture-bob,ou=people,{slapd_server.suffix}"
    slapd_server.ldapadd(
        f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: fixture-bob\ncn: Bob\nsn: Builder\n"
    )

    dump = run(slapd_server.slapcat_argv).stdout.decode()

    assert dn in ldif_dns(dump)
    assert f"uid=alice,ou=people,{slapd_server.suffix}" in ldif_dns(dump)
    assert ldif_dns(dump) == slapd_server.dns()


def test_slapcat_dump_restores_into_a_fresh_slapd(
    slapd_server: SlapdServer, slapd_factory: Callable[..., SlapdServer]
) -> None:
    dump = run(slapd_server.slapcat_argv).stdout

    fresh = slapd_factory(dump)

    assert fresh.dns() == slapd_server.dns()
    alice = "(uid=alice)"
    assert fresh.ldapsearch("cn", "mail", filter=alice) == slapd_server.ldapsearch(
        "cn", "mail", filter=alice
    )
    assert "mail: alice@example.test" in fresh.ldapsearch("mail", filter=alice)


def test_gpg_key_encrypts_with_the_public_home_and_decrypts_with_the_secret_home(
    gpg_key: GpgKey,
) -> None:
    plain = b"INSERT INTO secrets VALUES ('hunter2');\n" * 100
    encrypt = [find_program("gpg"), "--batch", "--no-auto-key-locate", "--encrypt"]
    encrypt += ["--recipient", gpg_key.fingerprint, "--compress-algo", "none"]
    cipher = run(encrypt, input=plain, env=gpg_key.env).stdout

    assert b"hunter2" not in cipher
    assert gpg_key.decrypt(cipher) == plain
    secret_in_public_home = subprocess.run(
        [find_program("gpg"), "--batch", "--list-secret-keys", gpg_key.fingerprint],
        env={**os.environ, **gpg_key.env},
        capture_output=True,
        check=False,
    )
    assert secret_in_public_home.returncode != 0


def test_a_server_whose_port_was_taken_meanwhile_starts_on_another_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = databases.free_port
        monkeypatch.setattr(databases, "free_port", lambda: next(ports, None) or real_free_port())

        server = start_slapd(tmp_path)
        try:
            assert server.port != taken
            assert f"uid=alice,ou=people,{server.suffix}" in server.dns()
        finally:
            server.process.stop()
