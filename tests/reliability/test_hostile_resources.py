"""Resource exhaustion: too few file descriptors, a full disk under `get`, a closed or
full stdout. Each is one clear `palhm: error:` line, never "internal error", and a
run's rollback is complete (no staging directory left) whatever the limit."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from tests.reliability.harness import PYTHON
from tests.reliability.hostile import copies, hidden, palhm, stage, task, write


def _many_objects(root: Path, count: int = 8) -> dict[str, object]:
    objects = [
        {"path": f"o{i}", "pipeline": [stage("head", "-c", "100000", "/dev/urandom"), stage("cat")]}
        for i in range(count)
    ]
    return task(root, objects)


def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def test_any_open_files_limit_gives_a_clear_error_and_a_complete_rollback(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = write(tmp_path / "c.json", _many_objects(root), **{"nb-workers": 8})
    outcomes: dict[int, int] = {}
    for limit in range(8, 64, 2):
        result = subprocess.run(
            [PYTHON, "-m", "palhm", "-f", str(config), "run", "backup"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            preexec_fn=lambda limit=limit: _limited(limit),  # type: ignore[misc]
        )
        outcomes[limit] = result.returncode
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr, (
            limit,
            result.stderr,
        )
        assert result.returncode in (0, 1), (limit, result.stderr)
        if result.returncode == 1:
            assert result.stderr.strip().splitlines()[-1].startswith("palhm: error: "), (
                limit,
                result.stderr,
            )
        assert hidden(root) == [], f"ulimit -n {limit}: the rollback left {hidden(root)}"
    assert 1 in outcomes.values(), "no limit was low enough to fail: the test tests nothing"
    assert len(copies(root)) == list(outcomes.values()).count(0)


@pytest.fixture
def one_copy(tmp_path: Path) -> Path:
    big = {"path": "a", "pipeline": [stage("head", "-c", "2000000", "/dev/zero")]}
    config = write(tmp_path / "c.json", task(tmp_path / "root", [big]))
    assert palhm(config, "run", "backup").returncode == 0
    return config


@pytest.mark.parametrize("command", [["get", "backup", "latest", "a"], ["list", "backup"]])
def test_a_full_stdout_is_a_clear_error(one_copy: Path, command: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = palhm(one_copy, *command, stdout=full)
    assert result.returncode == 1
    assert "No space left on device" in result.stderr
    assert "internal error" not in result.stderr and "Exception ignored" not in result.stderr


@pytest.mark.parametrize(
    "command", [["get", "backup", "latest", "a"], ["list", "backup"], ["verify", "backup"]]
)
def test_a_closed_stdout_is_a_clear_error(one_copy: Path, command: list[str]) -> None:
    result = subprocess.run(
        ["sh", "-c", '"$@" >&-', "sh", PYTHON, "-m", "palhm", "-f", str(one_copy), *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "palhm: error: cannot write" in result.stderr, result.stderr
    assert "internal error" not in result.stderr


def test_get_to_a_full_file_system_is_a_clear_error(one_copy: Path, tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        with open(mount / "restored", "wb") as out:
            result = palhm(one_copy, "get", "backup", "latest", "a", stdout=out)
        assert result.returncode == 1
        assert "palhm: error: cannot write the object out: No space left on device" in (
            result.stderr
        )
    finally:
        subprocess.run(["umount", str(mount)], check=True)
