"""`palhm pin` / `unpin` and `keep-within` through the CLI on a real localfs root."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_palhm, write_config

FINE_PREFIX = {"type": "iso8601", "timespec": "microseconds"}


def config(tmp_path: Path, **params: object) -> tuple[Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    task = {
        "id": "db",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root), "prefix": FINE_PREFIX, **params},
        "objects": [{"path": "a", "pipeline": [{"type": "exec-inline", "argv": ["echo", "x"]}]}],
    }
    return write_config(tmp_path / "palhm.conf", {"tasks": [task]}), root


def copies(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_pinned_copy_is_never_rotated_and_shown_in_list(tmp_path: Path) -> None:
    path, root = config(tmp_path, **{"nb-copy-limit": 1})
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    (first,) = copies(root)
    result = run_palhm(["-f", str(path), "pin", "db", "latest"])
    assert result.returncode == 0, result.stderr
    assert f"copy {first} pinned" in result.stdout
    again = run_palhm(["-f", str(path), "pin", "db", first])
    assert "(it already was)" in again.stdout
    for _ in range(3):
        assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    left = copies(root)
    assert len(left) == 2 and left[0] == first  # the pinned one and the newest
    table = run_palhm(["-f", str(path), "list", "db"]).stdout
    assert "complete,pinned" in next(line for line in table.splitlines() if line.startswith(first))
    listed = json.loads(run_palhm(["-f", str(path), "list", "--json", "db"]).stdout)
    assert [c["marks"] for c in listed] == [["pinned"], []]
    result = run_palhm(["-f", str(path), "unpin", "db", first])
    assert result.returncode == 0 and f"copy {first} unpinned" in result.stdout
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    assert first not in copies(root)
    pins = json.loads((root / ".palhm-pins.json").read_text())
    assert pins["pinned"] == {}


def test_pin_of_an_unknown_copy_is_a_usage_error(tmp_path: Path) -> None:
    path, root = config(tmp_path)
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    result = run_palhm(["-f", str(path), "pin", "db", "2001-01-01T00:00:00+00:00"])
    assert result.returncode == 2
    assert "no copy '2001-01-01T00:00:00+00:00'" in result.stderr
    assert not (root / ".palhm-pins.json").exists()


def test_damaged_pins_file_stops_rotation_rather_than_guess(tmp_path: Path) -> None:
    path, root = config(tmp_path, **{"nb-copy-limit": 1})
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    (root / ".palhm-pins.json").write_text("{not json")
    result = run_palhm(["-f", str(path), "run", "db"])
    assert result.returncode == 1
    assert ".palhm-pins.json is damaged" in result.stderr
    assert len(copies(root)) == 2  # nothing removed


def test_keep_within_keeps_the_recent_copies(tmp_path: Path) -> None:
    path, root = config(tmp_path, **{"keep-within": "1d", "nb-copy-limit": 10})
    old = root / "2001-01-01T00:00:00+00:00"
    old.mkdir()
    (old / "a").write_text("legacy\n")  # a copy without manifest: counted, dated 2001
    for _ in range(2):
        assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    left = copies(root)
    assert len(left) == 2 and old.name not in left
    dry = run_palhm(["-f", str(path), "run", "--dry-run", "db"]).stdout
    assert "keep-within 1d" in dry


def test_bad_keep_within_is_a_config_error(tmp_path: Path) -> None:
    path, _ = config(tmp_path, **{"keep-within": "2 days"})
    result = run_palhm(["-f", str(path), "config", "check"])
    assert result.returncode == 2
    assert "tasks[0].backend-param.keep-within" in result.stderr
    assert 'expected a duration like "2d"' in result.stderr
