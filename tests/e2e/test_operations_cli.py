"""Operations as a user runs them (doc/operations.md, doc/design.md#notifications): `run`, `list`,
`verify`, `get`,
`run --dry-run`, ping hooks and the metrics textfile, through the real CLI with real
zstd and gpg (a throwaway key) on localfs and on a real moto S3 server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import need_program, run_palhm, write_config
from tests.ping_receiver import PingReceiver, dead_url
from tests.prometheus_text import by_task, parse_prometheus

RECIPIENT = "t@example.test"
OBJECT = "db/dump.sql.zst.gpg"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gnupg_home() -> Iterator[Path]:
    """A GNUPGHOME with one key pair without a passphrase; its agent killed at the end.

    Short path under /tmp: the agent's socket path must fit in sun_path."""
    need_program("gpg", "gpgconf", "zstd")
    home = Path(tempfile.mkdtemp(prefix="palhm-gpg-"))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
             f"T <{RECIPIENT}>", "future-default", "default", "never"],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A 'database dump': compressible text with random bits, 2 MiB+."""
    lines = [f"INSERT INTO t VALUES ({n}, '{os.urandom(8).hex()}');\n" for n in range(50_000)]
    path = tmp_path / "dump.sql"
    path.write_text("".join(lines))
    return path


def encrypted_object(source: Path, gnupg_home: Path) -> dict[str, Any]:
    gpg = ["gpg", "--batch", "--no-auto-key-locate", "--trust-model", "always", "-e", "-r"]
    return {
        "path": OBJECT,
        "pipeline": [
            {"type": "exec-inline", "argv": ["cat", str(source)]},
            {"type": "exec-inline", "argv": ["zstd", "-q", "-c"]},
            {
                "type": "exec-inline",
                "argv": [*gpg, RECIPIENT],
                "env": {"GNUPGHOME": str(gnupg_home)},
            },
        ],
    }


def backup_config(
    tmp_path: Path,
    backend: dict[str, Any],
    objects: list[dict[str, Any]],
    **extra: Any,
) -> Path:
    task = {"id": "db", "type": "backup", **backend, "objects": objects}
    task.update(extra.pop("task", {}))
    return write_config(tmp_path / "palhm.json", {"vl": 3, "tasks": [task], **extra})


def localfs(root: Path, **params: Any) -> dict[str, Any]:
    prefix = {"type": "iso8601", "timespec": "microseconds"}
    return {"backend": "localfs", "backend-param": {"root": str(root), "prefix": prefix, **params}}


def restore(
    config: Path, prefix: str, gnupg_home: Path, env: dict[str, str] | None = None
) -> bytes:
    """`palhm get db PREFIX OBJECT | gpg -d | zstd -d`, without a shell."""
    full_env = {**os.environ, **(env or {})}
    get = subprocess.Popen(
        [sys.executable, "-m", "palhm", "-f", str(config), "get", "db", prefix, OBJECT],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
    )  # fmt: skip
    assert get.stdout is not None
    decrypt = subprocess.Popen(
        ["gpg", "--batch", "-q", "-d"],
        stdin=get.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**full_env, "GNUPGHOME": str(gnupg_home)},
    )  # fmt: skip
    get.stdout.close()  # so palhm sees SIGPIPE if gpg dies
    data, _ = subprocess.Popen(
        ["zstd", "-q", "-d", "-c"], stdin=decrypt.stdout, stdout=subprocess.PIPE
    ).communicate(timeout=60)
    assert decrypt.wait(timeout=60) == 0
    _, errors = get.communicate(timeout=60)
    assert get.returncode == 0, errors.decode()
    return data


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def copy_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1].isdigit())


# --------------------------------------------------------------------------- localfs


def test_backup_then_get_decrypt_decompress_is_byte_identical(
    tmp_path: Path, source: Path, gnupg_home: Path
) -> None:
    root = tmp_path / "backups"
    config = backup_config(tmp_path, localfs(root), [encrypted_object(source, gnupg_home)])
    ok(run_palhm(["-f", str(config), "run", "db"]))
    (copy,) = copy_dirs(root)
    stored = (copy / OBJECT).read_bytes()
    assert stored[:1] != b"\x28" and source.read_bytes()[:100] not in stored  # encrypted
    assert restore(config, "latest", gnupg_home) == source.read_bytes()
    assert restore(config, copy.name, gnupg_home) == source.read_bytes()


def test_verify_passes_then_catches_a_flipped_byte_and_a_truncation(
    tmp_path: Path, source: Path, gnupg_home: Path
) -> None:
    root = tmp_path / "backups"
    plain = {
        "path": "plain.sql",
        "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}],
    }
    objects = [encrypted_object(source, gnupg_home), plain]
    config = backup_config(tmp_path, localfs(root), objects)
    ok(run_palhm(["-f", str(config), "run", "db"]))
    (copy,) = copy_dirs(root)
    good = ok(run_palhm(["-f", str(config), "verify", "db"]))
    assert OBJECT in good.stdout and "plain.sql" in good.stdout

    target = copy / OBJECT
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    flipped = run_palhm(["-f", str(config), "verify", "db", copy.name])
    assert flipped.returncode == 1
    assert f"checksum differs: {OBJECT}" in flipped.stderr
    assert "plain.sql" not in flipped.stderr
    assert "Traceback" not in flipped.stderr

    os.truncate(copy / "plain.sql", 1000)
    truncated = run_palhm(["-f", str(config), "verify", "db"])
    assert truncated.returncode == 1
    assert "size differs: plain.sql" in truncated.stderr
    assert "stored 1000 bytes" in truncated.stderr


def test_list_and_list_json_show_the_copies(tmp_path: Path, source: Path) -> None:
    root = tmp_path / "backups"
    plain = {
        "path": "plain.sql",
        "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}],
    }
    config = backup_config(tmp_path, localfs(root), [plain])
    ok(run_palhm(["-f", str(config), "run", "db"]))
    ok(run_palhm(["-f", str(config), "run", "db"]))
    copies = copy_dirs(root)
    listed = json.loads(ok(run_palhm(["-f", str(config), "list", "db", "--json"])).stdout)
    assert [c["prefix"] for c in listed] == [c.name for c in copies]
    assert {c["state"] for c in listed} == {"complete"}
    assert all(c["size"] == source.stat().st_size and c["objects"] == 1 for c in listed)
    text = ok(run_palhm(["-f", str(config), "list", "db"])).stdout
    assert [line.split()[0] for line in text.splitlines()[2:4]] == [c.name for c in copies]
    assert str(root) in text.splitlines()[0]


def test_dry_run_prints_the_plan_and_creates_nothing(
    tmp_path: Path, source: Path, gnupg_home: Path
) -> None:
    root = tmp_path / "not-yet"
    config = backup_config(
        tmp_path, localfs(root, **{"nb-copy-limit": 3}), [encrypted_object(source, gnupg_home)]
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    result = ok(run_palhm(["-f", str(config), "run", "--dry-run", "db"]))
    assert f"new copy: {root}/" in result.stdout
    assert (
        f"gpg --batch --no-auto-key-locate --trust-model always -e -r {RECIPIENT}" in result.stdout
    )
    assert f"env GNUPGHOME={gnupg_home}" in result.stdout
    assert "rotation: nb-copy-limit 3" in result.stdout
    assert "does not exist yet" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not root.exists()


def test_dry_run_shows_what_each_keep_rule_keeps(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    root.mkdir()
    for month in range(1, 13):  # copies made by the original PALHM: counted, no manifest
        for day in (1, 15):
            (root / f"2021-{month:02d}-{day:02d}T06:00:00+00:00").mkdir()
    marker = {"path": "x", "pipeline": [{"type": "exec-inline", "argv": ["true"]}]}
    config = backup_config(
        tmp_path, localfs(root, **{"keep-monthly": 3, "keep-yearly": 2}), [marker]
    )
    result = ok(run_palhm(["-f", str(config), "run", "--dry-run", "db"], env={"TZ": "UTC"}))
    decisions = {
        line.split()[1]: line.strip()
        for line in result.stdout.splitlines()
        if line.strip().startswith(("keep ", "remove "))
    }
    assert len(decisions) == 25  # 24 old copies and the new one
    # the new copy takes one monthly and one yearly slot; the rest go to 2021
    assert decisions["2021-12-15T06:00:00+00:00"].endswith("keep-monthly, keep-yearly")
    assert decisions["2021-11-15T06:00:00+00:00"].endswith("keep-monthly")
    assert decisions["2021-12-01T06:00:00+00:00"].startswith("remove")
    assert decisions["2021-10-15T06:00:00+00:00"].startswith("remove")
    kept = [p for p, line in decisions.items() if line.startswith("keep")]
    assert len(kept) == 3
    assert len(copy_dirs(root)) == 24  # nothing removed by a dry run


# --------------------------------------------------------------------------- notifications


def test_ping_receiver_sees_start_and_success_then_start_and_fail(
    tmp_path: Path, source: Path
) -> None:
    plain = {
        "path": "plain.sql",
        "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}],
    }
    with PingReceiver() as receiver:
        hooks = {
            "on-start": [{"type": "ping", "url": receiver.url("/uuid/start")}],
            "on-success": [{"type": "ping", "url": receiver.url("/uuid")}],
            "on-failure": [{"type": "ping", "url": receiver.url("/uuid/fail"), "method": "POST"}],
        }
        config = backup_config(tmp_path, localfs(tmp_path / "b"), [plain], task=hooks)
        ok(run_palhm(["-f", str(config), "run", "db"]))
        assert receiver.paths() == ["/uuid/start", "/uuid"]

        broken = {"path": "bad", "pipeline": [{"type": "exec-inline", "argv": ["false"]}]}
        config = backup_config(tmp_path, localfs(tmp_path / "b"), [plain, broken], task=hooks)
        failed = run_palhm(["-f", str(config), "run", "db"])
    assert failed.returncode == 1
    assert receiver.paths()[2:] == ["/uuid/start", "/uuid/fail"]
    report = receiver.requests[-1].body.decode()
    assert "status: failure" in report and "false" in report


def test_dead_ping_receiver_does_not_fail_the_backup(tmp_path: Path, source: Path) -> None:
    plain = {
        "path": "plain.sql",
        "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}],
    }
    hooks = {"on-success": [{"type": "ping", "url": dead_url("/uuid"), "timeout": 5}]}
    config = backup_config(tmp_path, localfs(tmp_path / "b"), [plain], task=hooks)
    result = run_palhm(["-f", str(config), "run", "db"])
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "hook" in line)
    assert "on-success" in warning and "failed" in warning
    assert len(copy_dirs(tmp_path / "b")) == 1


def test_sigterm_fires_the_failure_ping_before_palhm_exits(tmp_path: Path) -> None:
    sleeper = {
        "path": "slow",
        "pipeline": [{"type": "exec-inline", "argv": ["sleep", "60"]}],
    }
    with PingReceiver() as receiver:
        hooks = {
            "on-start": [{"type": "ping", "url": receiver.url("/uuid/start")}],
            "on-failure": [{"type": "ping", "url": receiver.url("/uuid/fail"), "method": "POST"}],
        }
        config = backup_config(tmp_path, localfs(tmp_path / "b"), [sleeper], task=hooks)
        process = subprocess.Popen(
            [sys.executable, "-m", "palhm", "-f", str(config), "run", "db"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not list((tmp_path / "b").glob(".palhm-staging-*/")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let the pipeline start
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 143, errors.decode()
    assert receiver.paths() == ["/uuid/start", "/uuid/fail"]
    assert "interrupted by SIGTERM" in receiver.requests[-1].body.decode()
    assert copy_dirs(tmp_path / "b") == []


def test_metrics_textfile_after_a_good_and_a_failed_run(tmp_path: Path, source: Path) -> None:
    textfile = tmp_path / "metrics" / "palhm.prom"
    textfile.parent.mkdir()
    plain = {
        "path": "plain.sql",
        "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}],
    }
    metrics = {"metrics": {"textfile": str(textfile)}}
    config = backup_config(tmp_path, localfs(tmp_path / "b"), [plain], **metrics)
    ok(run_palhm(["-f", str(config), "run", "db"]))
    families = parse_prometheus(textfile.read_text())
    assert by_task(families, "palhm_last_run_success") == {"db": 1}
    assert by_task(families, "palhm_last_run_bytes_written") == {"db": source.stat().st_size}
    assert by_task(families, "palhm_copies_kept") == {"db": 1}

    broken = {"path": "bad", "pipeline": [{"type": "exec-inline", "argv": ["false"]}]}
    config = backup_config(tmp_path, localfs(tmp_path / "b"), [plain, broken], **metrics)
    assert run_palhm(["-f", str(config), "run", "db"]).returncode == 1
    families = parse_prometheus(textfile.read_text())
    assert by_task(families, "palhm_last_run_success") == {"db": 0}
    assert by_task(families, "palhm_copies_kept") == {"db": 1}
    success = by_task(families, "palhm_last_success_timestamp_seconds")["db"]
    assert success < by_task(families, "palhm_last_run_timestamp_seconds")["db"]


def test_no_progress_output_when_stderr_is_not_a_terminal(tmp_path: Path, source: Path) -> None:
    plain = {
        "path": "plain.sql",
        "pipeline": [{"type": "exec-inline", "argv": ["cat", str(source)]}],
    }
    config = backup_config(tmp_path, localfs(tmp_path / "b"), [plain])
    result = ok(run_palhm(["-f", str(config), "-v", "run", "db"]))
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
    assert "committed" in result.stderr  # verbose output itself is there


SLOW_WRITER = (
    "import sys, time\n"
    "for _ in range(12):\n"
    "    sys.stdout.buffer.write(b'x' * 65536); sys.stdout.flush(); time.sleep(0.1)\n"
)


def run_on_terminal(args: list[str]) -> tuple[int, str]:
    """Run palhm with its stderr on a real pseudo-terminal; (status, what it drew)."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "palhm", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_lines_on_a_terminal(tmp_path: Path) -> None:
    slow = {
        "path": "slow/stream.bin",
        "pipeline": [{"type": "exec-inline", "argv": [sys.executable, "-c", SLOW_WRITER]}],
    }
    # small blocks: the engine reports progress every block it stores
    config = backup_config(tmp_path, localfs(tmp_path / "b", **{"block-size": 65536}), [slow])
    status, drawn = run_on_terminal(["-f", str(config), "run", "db"])
    assert status == 0, drawn
    progress = [line for line in drawn.split("\r") if "slow/stream.bin" in line]
    assert progress, drawn
    assert any("iB/s" in line for line in progress)
    assert "\x1b[J" in drawn  # the block is erased at the end
    quiet_status, quiet = run_on_terminal(["-f", str(config), "-q", "run", "db"])
    assert quiet_status == 0
    assert "slow/stream.bin" not in quiet


# --------------------------------------------------------------------------- aws-s3


@pytest.mark.services
def test_s3_round_trip_through_the_cli(
    tmp_path: Path, source: Path, gnupg_home: Path, moto_server: Any, s3_bucket: str
) -> None:
    backend = {
        "backend": "aws-s3",
        "backend-param": {
            "bucket": s3_bucket,
            "root": "hosts/db1",
            "prefix": {"type": "iso8601", "timespec": "microseconds"},
        },
    }
    config = backup_config(
        tmp_path, backend, [encrypted_object(source, gnupg_home)], modules=["aws"]
    )
    env = moto_server.env
    ok(run_palhm(["-f", str(config), "run", "db"], env=env))
    listed = json.loads(ok(run_palhm(["-f", str(config), "list", "db", "--json"], env=env)).stdout)
    assert [c["state"] for c in listed] == ["complete"]
    verified = ok(run_palhm(["-f", str(config), "verify", "db"], env=env))
    assert OBJECT in verified.stdout
    assert restore(config, "latest", gnupg_home, env) == source.read_bytes()

    s3 = moto_server.client("s3")
    key = f"hosts/db1/{listed[0]['prefix']}/{OBJECT}"
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key=key, Body=body[:-1])
    damaged = run_palhm(["-f", str(config), "verify", "db"], env=env)
    assert damaged.returncode == 1
    assert f"size differs: {OBJECT}" in damaged.stderr
