"""Runs that behave on real hosts, through the CLI: a tmpfs "backup disk" mounted then
unmounted (require-mount), create-root false, lock-wait with a real concurrent run,
per-object retries on localfs and on a real moto S3 server, pins on S3
(doc/operations.md, "Runs on real hosts")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, run_palhm, wait_for, write_config
from tests.services.moto import MotoServer

FINE_PREFIX = {"type": "iso8601", "timespec": "microseconds"}


def task(root: Path, objects: list[dict[str, Any]] | None = None, **keys: Any) -> dict[str, Any]:
    params = {"root": str(root), "prefix": FINE_PREFIX, **keys.pop("params", {})}
    echo = {"type": "exec-inline", "argv": ["echo", "data"]}
    return {
        "id": "db",
        "type": "backup",
        "backend": "localfs",
        "backend-param": params,
        "objects": objects or [{"path": "a", "pipeline": [echo]}],
        **keys,
    }


def write(tmp_path: Path, *tasks: dict[str, Any]) -> Path:
    return write_config(tmp_path / "palhm.conf", {"tasks": list(tasks)})


def copies(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


# ------------------------------------------------------------------ backup disk


@pytest.fixture
def backup_disk(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs mounted on tmp_path/disk (root only); unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        if os.path.ismount(disk):
            subprocess.run(["umount", str(disk)], check=True)


def test_unmounted_backup_disk_fails_clearly_and_writes_nothing(
    tmp_path: Path, backup_disk: Path
) -> None:
    root = backup_disk / "palhm"
    root.mkdir()
    path = write(tmp_path, task(root, params={"require-mount": True}))
    result = run_palhm(["-f", str(path), "run", "db"])
    assert "is not a mount point" in result.stderr  # root is a directory ON the disk
    assert result.returncode == 1
    root.rmdir()
    path = write(tmp_path, task(backup_disk, params={"require-mount": True}))
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    assert len(copies(backup_disk)) == 1
    subprocess.run(["umount", str(backup_disk)], check=True)  # the disk goes away
    result = run_palhm(["-f", str(path), "run", "db"])
    assert result.returncode == 1
    assert f"the backup root {backup_disk} is not a mount point" in result.stderr
    assert "is the backup disk mounted?" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(backup_disk.iterdir()) == [], "palhm wrote onto the root file system"


def test_create_root_false_refuses_a_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "media" / "backup"
    path = write(tmp_path, task(root, params={"create-root": False}))
    result = run_palhm(["-f", str(path), "run", "db"])
    assert result.returncode == 1
    assert f"the backup root {root} does not exist (create-root is false" in result.stderr
    assert not (tmp_path / "media").exists()
    root.mkdir(parents=True)
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0


def test_require_mount_with_a_missing_root_says_so(tmp_path: Path) -> None:
    root = tmp_path / "nope"
    path = write(tmp_path, task(root, params={"require-mount": True}))
    result = run_palhm(["-f", str(path), "run", "db"])
    assert result.returncode == 1
    assert f"the backup root {root} does not exist (require-mount" in result.stderr
    assert not root.exists()


# ------------------------------------------------------------------ lock-wait


def test_lock_wait_waits_for_the_other_run_then_succeeds(tmp_path: Path) -> None:
    root, started, release = tmp_path / "root", tmp_path / "started", tmp_path / "release"
    slow = {
        "type": "exec-inline",
        "argv": [
            "sh",
            "-c",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done; echo slow",
        ],
    }
    slow_task = task(root, [{"path": "a", "pipeline": [slow]}])
    path = write(tmp_path, slow_task)
    first = subprocess.Popen(
        [sys.executable, "-m", "palhm", "-f", str(path), "run", "db"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(started.exists, what="the first run's pipeline")
        impatient = write(tmp_path / "impatient", task(root))
        result = run_palhm(["-f", str(impatient), "run", "db"])
        assert result.returncode == 1
        assert "in use by another palhm run" in result.stderr
        patient = write(tmp_path / "patient", task(root, **{"lock-wait": 120}))
        second = subprocess.Popen(
            [sys.executable, "-m", "palhm", "-v", "-f", str(patient), "run", "db"],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(second.stderr or ()), daemon=True)
        reader.start()
        wait_for(lambda: any("waiting up to 120 s" in line for line in lines), what="waiting")
        release.touch()
        assert first.wait(timeout=60) == 0
        assert second.wait(timeout=60) == 0
        reader.join(timeout=10)
        assert "in use by another palhm run" in "".join(lines)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(copies(root)) == 2


def test_lock_wait_must_be_a_number(tmp_path: Path) -> None:
    path = write(tmp_path, task(tmp_path / "r", **{"lock-wait": "1m"}))
    result = run_palhm(["-f", str(path), "config", "check"])
    assert result.returncode == 2 and "tasks[0].lock-wait" in result.stderr


# ------------------------------------------------------------------ retries


def flaky(counter: Path, fail_times: int) -> dict[str, Any]:
    """Prints "partial" and fails `fail_times` times, then prints "good"."""
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        f"if [ $n -le {fail_times} ]; then printf partial; echo 'mirror timeout' >&2; exit 1; fi; "
        "printf good"
    )
    return {"type": "exec-inline", "argv": ["sh", "-c", script]}


def test_flaky_object_is_retried_from_scratch_and_attempts_recorded(tmp_path: Path) -> None:
    root, counter = tmp_path / "root", tmp_path / "count"
    obj = {"path": "dir/a", "pipeline": [flaky(counter, 2)], "retries": 3, "retry-delay": 0.05}
    path = write(tmp_path, task(root, [obj], checksum="sha256"))
    result = run_palhm(["-f", str(path), "run", "db"])
    assert result.returncode == 0, result.stderr
    assert "object 'dir/a': attempt 1 of 4 failed" in result.stderr
    assert "attempt 2 of 4 failed" in result.stderr and "attempt 3 of" not in result.stderr
    (prefix,) = copies(root)
    assert (root / prefix / "dir" / "a").read_bytes() == b"good"
    manifest = json.loads((root / prefix / ".palhm-manifest.json").read_text())
    assert manifest["objects"][0]["attempts"] == 3
    assert manifest["objects"][0]["size"] == 4
    verify = run_palhm(["-f", str(path), "verify", "db"])
    assert verify.returncode == 0, verify.stderr


def test_retries_exhausted_fail_the_run_with_the_last_error(tmp_path: Path) -> None:
    root, counter = tmp_path / "root", tmp_path / "count"
    obj = {"path": "a", "pipeline": [flaky(counter, 5)], "retries": 1, "retry-delay": 0}
    path = write(tmp_path, task(root, [obj]))
    result = run_palhm(["-f", str(path), "run", "db"])
    assert result.returncode == 1
    assert counter.read_text().strip() == "2"
    assert "mirror timeout" in result.stderr
    assert copies(root) == []


@pytest.mark.services
def test_flaky_object_retried_on_s3_and_pins_stored_beside_the_copies(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str
) -> None:
    counter = tmp_path / "count"
    config = {
        "modules": ["aws"],
        "tasks": [
            {
                "id": "db",
                "type": "backup",
                "backend": "aws-s3",
                "backend-param": {
                    "bucket": s3_bucket,
                    "root": "host1",
                    "endpoint-url": moto_server.endpoint_url,
                    "region": "us-east-1",
                    "prefix": FINE_PREFIX,
                    "nb-copy-limit": 1,
                },
                "objects": [
                    {"path": "a", "pipeline": [flaky(counter, 1)], "retries": 2, "retry-delay": 0}
                ],
            }
        ],
    }
    path = write_config(tmp_path / "palhm.conf", config)
    env = moto_server.env
    result = run_palhm(["-f", str(path), "run", "--json", "db"], env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["objects"][0]["attempts"] == 2
    s3 = moto_server.client("s3")
    key = f"host1/{document['copy']['prefix']}/a"
    assert s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"good"
    assert run_palhm(["-f", str(path), "pin", "db", "latest"], env=env).returncode == 0
    assert run_palhm(["-f", str(path), "run", "db"], env=env).returncode == 0
    listed = json.loads(run_palhm(["-f", str(path), "list", "--json", "db"], env=env).stdout)
    assert [c["marks"] for c in listed] == [["pinned"], []]  # nb-copy-limit 1, pin kept
    pins = s3.get_object(Bucket=s3_bucket, Key="host1/.palhm-pins.json")["Body"].read()
    assert document["copy"]["prefix"] in json.loads(pins)["pinned"]


def test_bad_upload_rate_limit_is_a_config_error(tmp_path: Path) -> None:
    config = {
        "modules": ["aws"],
        "tasks": [
            {
                "id": "db",
                "type": "backup",
                "backend": "aws-s3",
                "backend-param": {"bucket": "b", "root": "r", "upload-rate-limit": "fast"},
                "objects": [],
            }
        ],
    }
    path = write_config(tmp_path / "palhm.conf", config)
    result = run_palhm(["-f", str(path), "config", "check"])
    assert result.returncode == 2
    assert "tasks[0].backend-param.upload-rate-limit" in result.stderr
    assert 'expected bytes per second like 1048576, "512k"' in result.stderr
