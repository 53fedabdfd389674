"""Sanity guards through the CLI: `min-size` and `max-shrink` make a copy suspect --
kept and marked, the run fails with a clear line, hooks fire, rotation removes no
older copy because of it, `list` shows the mark (doc/operations.md, "Sanity guards")."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.helpers import run_palhm, write_config

FINE_PREFIX = {"type": "iso8601", "timespec": "microseconds"}


def dump_of(size_file: Path) -> dict[str, Any]:
    """A stage printing as many bytes as `size_file` says: the "database" grows and shrinks."""
    code = f"import sys; sys.stdout.write('x' * int(open({str(size_file)!r}).read()))"
    return {"type": "exec-inline", "argv": [sys.executable, "-c", code]}


def setup(tmp_path: Path, **task_keys: Any) -> tuple[Path, Path, Path]:
    root, size = tmp_path / "root", tmp_path / "size"
    root.mkdir(parents=True)
    obj: dict[str, Any] = {"path": "db.sql", "pipeline": [dump_of(size)]}
    obj.update(task_keys.pop("object_keys", {}))
    task = {
        "id": "db",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root), "prefix": FINE_PREFIX, **task_keys.pop("params", {})},
        "objects": [obj],
        **task_keys,
    }
    return write_config(tmp_path / "palhm.conf", {"tasks": [task]}), root, size


def copies(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def manifest(root: Path, prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((root / prefix / ".palhm-manifest.json").read_text())
    return result


def run(path: Path, size: Path, nbytes: int, *args: str) -> Any:
    size.write_text(str(nbytes))
    return run_palhm(["-q", "-f", str(path), "run", *args, "db"])


def test_tiny_dump_is_kept_marked_fails_the_run_and_rotates_nothing(tmp_path: Path) -> None:
    log = tmp_path / "hook.log"
    path, root, size = setup(
        tmp_path,
        object_keys={"min-size": 1000},
        params={"keep-last": 1},
        **{
            "on-failure": [
                {"type": "exec-inline", "argv": ["sh", "-c", f"echo $PALHM_STATUS >> {log}"]}
            ]
        },
    )
    assert run(path, size, 5000).returncode == 0
    assert run(path, size, 6000).returncode == 0
    good = copies(root)
    assert len(good) == 1  # keep-last 1 works on good runs
    result = run(path, size, 20)
    assert result.returncode == 1
    assert "is suspect: kept and marked in its manifest; rotation skipped" in result.stderr
    assert "object 'db.sql' is 20 bytes, below its min-size 1000" in result.stderr
    after = copies(root)
    assert set(good) < set(after), "an older good copy was rotated out"
    (suspect,) = set(after) - set(good)
    assert manifest(root, suspect)["suspect"] == [
        "object 'db.sql' is 20 bytes, below its min-size 1000"
    ]
    assert (root / suspect / "db.sql").stat().st_size == 20
    assert log.read_text() == "failure\n"
    listing = run_palhm(["-f", str(path), "list", "db"])
    line = next(row for row in listing.stdout.splitlines() if row.startswith(suspect))
    assert "suspect" in line
    as_json = json.loads(run_palhm(["-f", str(path), "list", "--json", "db"]).stdout)
    assert {c["prefix"]: c["marks"] for c in as_json}[suspect] == ["suspect"]


def test_suspect_copies_take_no_keep_slot_and_go_once_a_good_copy_follows(tmp_path: Path) -> None:
    path, root, size = setup(tmp_path, object_keys={"min-size": 100}, params={"keep-last": 2})
    assert run(path, size, 500).returncode == 0
    first = copies(root)
    for _ in range(3):
        assert run(path, size, 10).returncode == 1
    assert len(copies(root)) == 4 and set(first) <= set(copies(root))
    assert run(path, size, 500).returncode == 0
    # the two good copies are kept by keep-last 2; the three suspect ones are superseded
    left = copies(root)
    assert len(left) == 2 and left[0] == first[0]
    assert all("suspect" not in manifest(root, p) for p in left)


def test_max_shrink_compares_with_the_newest_good_copy(tmp_path: Path) -> None:
    path, root, size = setup(tmp_path, **{"max-shrink": "50%"})
    assert run(path, size, 1000).returncode == 0
    assert run(path, size, 600).returncode == 0  # 40% smaller: fine
    result = run(path, size, 200)  # 67% smaller than 600
    assert result.returncode == 1
    assert "object 'db.sql' is 200 bytes, 67% smaller than 600 bytes" in result.stderr
    assert "(max-shrink 50%)" in result.stderr
    # the baseline stays the last good copy (600), not the suspect one (200)
    result = run(path, size, 250)
    assert result.returncode == 1 and "smaller than 600 bytes" in result.stderr
    assert run(path, size, 400).returncode == 0


def test_run_json_reports_the_suspect_copy(tmp_path: Path) -> None:
    path, root, size = setup(tmp_path, object_keys={"min-size": 100})
    size.write_text("3")
    result = run_palhm(["-q", "-f", str(path), "run", "--json", "db"])
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["status"] == "failure"
    assert document["exit-code"] == 1
    assert document["copy"]["suspect"] == ["object 'db.sql' is 3 bytes, below its min-size 100"]
    assert document["rotation"] == {"keep": [], "remove": []}
    assert (root / document["copy"]["prefix"] / "db.sql").exists()


def test_bad_max_shrink_is_a_config_error_naming_its_path(tmp_path: Path) -> None:
    for bad in ("150%", "half", 0, -5):
        path, _, _ = setup(tmp_path / str(bad), **{"max-shrink": bad})
        result = run_palhm(["-f", str(path), "config", "check"])
        assert result.returncode == 2, bad
        assert "tasks[0].max-shrink" in result.stderr
        assert "percentage" in result.stderr


def test_negative_min_size_is_a_config_error(tmp_path: Path) -> None:
    path, _, _ = setup(tmp_path, object_keys={"min-size": -1})
    result = run_palhm(["-f", str(path), "config", "check"])
    assert result.returncode == 2
    assert "tasks[0].objects[0].min-size" in result.stderr
