"""Where palhm keeps locks and run records, and the metrics textfile, when other users
can write nearby. Real unprivileged user (`nobody`) for the attacks."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from palhm import rundir
from palhm.backends.s3 import lock as s3_lock
from tests.helpers import need_program
from tests.reliability.hostile import OTHER, as_other, other_dir, palhm, small, task, write

UNIT = Path(__file__).parents[2] / "src" / "palhm" / "data" / "systemd" / "palhm@.service"
SECRET = "root-only 5e2d\n"


# --------------------------------------------------------------------------- metrics


def _secret(base: Path) -> Path:
    secret = base / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    return secret


@pytest.mark.parametrize("planted", ["textfile-link", "lock-link", "textfile-fifo"])
def test_metrics_never_follow_what_another_user_planted(public_dir: Path, planted: str) -> None:
    secret = _secret(public_dir)
    metrics = other_dir(public_dir / "textfile")  # node_exporter's, say
    prom = metrics / "palhm.prom"
    target = other_dir(public_dir / "home") / "made-by-root"
    if planted == "textfile-link":
        as_other("ln", "-s", str(secret), str(prom))
    elif planted == "lock-link":
        as_other("ln", "-s", str(target), str(metrics / ".palhm.prom.lock"))
    else:
        as_other("mkfifo", str(prom))
    config = write(
        public_dir / "c.json",
        task(public_dir / "root", [small()]),
        metrics={"textfile": str(prom)},
    )
    result = palhm(config, "run", "backup", timeout=60)
    assert result.returncode == 0, result.stderr  # metrics never fail a run ...
    assert "metrics" in result.stderr.lower() or "palhm.prom" in result.stderr  # ... but warn
    assert not target.exists(), "root created a file through the other user's link"
    for path in metrics.iterdir():
        if path.is_file() and not path.is_symlink():
            assert SECRET not in path.read_text(errors="replace"), path
    if planted == "textfile-link":
        assert prom.is_symlink(), "the link was replaced: palhm read through it first?"


def test_metrics_work_in_a_directory_another_user_owns(public_dir: Path) -> None:
    metrics = other_dir(public_dir / "textfile")
    prom = metrics / "palhm.prom"
    config = write(
        public_dir / "c.json",
        task(public_dir / "root", [small()]),
        metrics={"textfile": str(prom)},
    )
    for _ in range(2):
        assert palhm(config, "run", "backup").returncode == 0
    info = prom.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o644
    assert 'palhm_last_run_success{task="backup"} 1' in prom.read_text()
    assert as_other("cat", str(prom)).returncode == 0  # node_exporter can read it


# --------------------------------------------------------------------------- run directory


@pytest.fixture
def fake_run_dir(monkeypatch: pytest.MonkeyPatch, public_dir: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the system run directory is root's")
    path = public_dir / "run-palhm"
    monkeypatch.setattr(rundir, "SYSTEM_RUN_DIR", path)
    return path


@pytest.mark.parametrize("attack", ["created-by-other", "symlink", "world-writable"])
def test_a_run_directory_another_user_could_touch_is_refused(
    fake_run_dir: Path, public_dir: Path, attack: str
) -> None:
    if attack == "created-by-other":
        other_dir(fake_run_dir)
    elif attack == "symlink":
        fake_run_dir.symlink_to(other_dir(public_dir / "theirs"))
    else:
        fake_run_dir.mkdir(mode=0o777)
        fake_run_dir.chmod(0o1777)
    with pytest.raises(rundir.RunDirError):
        rundir.run_dir()
    with pytest.raises(s3_lock.LockedError):
        s3_lock.lock_path("http://127.0.0.1:1 bucket root")


def test_the_run_directory_is_created_root_only(fake_run_dir: Path) -> None:
    lock = s3_lock.lock_path("http://127.0.0.1:1 bucket root")
    assert lock.parent == fake_run_dir / "locks"
    for directory in (fake_run_dir, lock.parent):
        info = directory.lstat()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0
        assert stat.S_IMODE(info.st_mode) == 0o700
    with s3_lock.hold_lock(lock, what="s3://bucket/root", task_id="t"):
        assert stat.S_IMODE(lock.stat().st_mode) & 0o077 == 0
        blocked = as_other("sh", "-c", f": > {lock}", check=False)
        assert blocked.returncode != 0, "another user could open the lock file"


def test_the_default_run_directory_is_under_run_not_run_lock() -> None:
    if os.geteuid() != 0:
        pytest.skip("root's run directory")
    assert Path("/run/palhm") == rundir.SYSTEM_RUN_DIR
    assert s3_lock.lock_dir() == Path("/run/palhm/locks")


# --------------------------------------------------------------------------- systemd unit


def _settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def test_the_unit_makes_the_run_directory_writable_shared_and_root_only() -> None:
    """What each sandbox setting does to /run/palhm: ProtectSystem=strict makes every
    path read-only but the API file systems, ReadWritePaths= and RuntimeDirectory=;
    PrivateTmp= gives the unit its own /tmp and /var/tmp (a lock there would exclude
    nothing outside the unit); ProtectHome= covers /home, /root, /run/user."""
    settings = _settings(UNIT)
    assert settings["ProtectSystem"] == ["strict"]
    runtime = [Path("/run") / name for v in settings["RuntimeDirectory"] for name in v.split()]
    writable = [Path(p.lstrip("-")) for v in settings.get("ReadWritePaths", []) for p in v.split()]
    writable += runtime
    private = [Path("/tmp"), Path("/var/tmp")] if settings.get("PrivateTmp") == ["yes"] else []
    private += [Path("/home"), Path("/root"), Path("/run/user")]
    lock_dir = rundir.SYSTEM_RUN_DIR / s3_lock.LOCKS
    assert _under(lock_dir, writable), "the unit could not create its locks"
    assert not _under(lock_dir, private), "the unit's locks would be its own, unshared"
    assert rundir.SYSTEM_RUN_DIR in runtime  # the same path as a manual run
    assert settings["RuntimeDirectoryMode"] == ["0700"]
    assert settings["RuntimeDirectoryPreserve"] == ["yes"]  # kept between runs


def test_systemd_analyze_accepts_the_run_directory_settings(tmp_path: Path) -> None:
    need_program("systemd-analyze")
    unit = tmp_path / "palhm@backup.service"
    true = shutil.which("true")
    assert true is not None
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/palhm", true))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr.strip()) == (0, ""), done.stderr
    assert OTHER  # the attacks above use this real user
