"""`run --json` (one summary document) and verify's own Prometheus series, through the
CLI on a real localfs root (doc/operations.md, "Machine-readable results")."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.helpers import run_palhm, write_config
from tests.prometheus_text import parse_prometheus as parse

FINE_PREFIX = {"type": "iso8601", "timespec": "microseconds"}


def config(tmp_path: Path, **task_keys: Any) -> tuple[Path, Path, Path]:
    root, textfile = tmp_path / "root", tmp_path / "palhm.prom"
    root.mkdir()
    objects = [
        {"path": "a.txt", "pipeline": [{"type": "exec-inline", "argv": ["printf", "hello"]}]},
        {
            "path": "b/c.bin",
            "pipeline": [
                {"type": "exec-inline", "argv": [sys.executable, "-c", "print('x' * 999)"]}
            ],
        },
    ]
    task = {
        "id": "db",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root), "prefix": FINE_PREFIX, "nb-copy-limit": 1},
        "checksum": "sha256",
        "objects": objects,
        **task_keys,
    }
    path = write_config(
        tmp_path / "palhm.conf", {"metrics": {"textfile": str(textfile)}, "tasks": [task]}
    )
    return path, root, textfile


def test_run_json_summarises_objects_checksums_and_rotation(tmp_path: Path) -> None:
    path, root, _ = config(tmp_path)
    first = json.loads(run_palhm(["-q", "-f", str(path), "run", "--json", "db"]).stdout)
    result = run_palhm(["-q", "-f", str(path), "run", "--json", "db"])
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["task"] == "db"
    assert document["status"] == "success" and document["exit-code"] == 0
    assert document["error"] is None
    assert document["copy"]["size"] == 5 + 1000
    assert document["copy"]["suspect"] == []
    assert (root / document["copy"]["prefix"] / "a.txt").read_bytes() == b"hello"
    objects = {o["path"]: o for o in document["objects"]}
    assert objects["a.txt"]["size"] == 5
    assert objects["a.txt"]["checksum"] == {
        "algorithm": "sha256",
        "hex": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    }
    assert objects["b/c.bin"]["size"] == 1000
    assert all(o["duration"] >= 0 and o["attempts"] == 1 for o in document["objects"])
    rotation = document["rotation"]
    assert rotation["remove"] == [{"prefix": first["copy"]["prefix"], "reasons": ["nb-copy-limit"]}]
    assert [k["prefix"] for k in rotation["keep"]] == [document["copy"]["prefix"]]
    assert document["duration"] >= 0


def test_run_json_of_a_failed_run_is_still_one_document(tmp_path: Path) -> None:
    path, root, _ = config(tmp_path)
    doc = json.loads(path.read_text())
    doc["tasks"][0]["objects"][0]["pipeline"] = [{"type": "exec-inline", "argv": ["false"]}]
    path.write_text(json.dumps(doc))
    result = run_palhm(["-q", "-f", str(path), "run", "--json", "db"])
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["status"] == "failure" and document["exit-code"] == 1
    assert "object 'a.txt'" in document["error"]
    assert "copy" not in document


def test_run_json_of_a_routine(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "palhm.conf",
        {"tasks": [{"id": "default", "type": "routine", "routine": []}]},
    )
    result = run_palhm(["-f", str(path), "run", "--json"])
    assert json.loads(result.stdout)["status"] == "success"


def test_verify_writes_its_own_series_beside_the_run_series(tmp_path: Path) -> None:
    path, root, textfile = config(tmp_path)
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    result = run_palhm(["-f", str(path), "verify", "db"])
    assert result.returncode == 0, result.stderr
    families = parse(textfile.read_text())
    label = (("task", "db"),)

    def value(name: str) -> float:
        return families[name].samples[label]

    assert value("palhm_last_verify_success") == 1
    assert value("palhm_last_verify_objects_checked") == 2
    assert value("palhm_last_verify_bytes_read") == 1005
    good = value("palhm_last_verify_success_timestamp_seconds")
    assert good == value("palhm_last_verify_timestamp_seconds")
    assert value("palhm_last_run_success") == 1  # the run's series are kept
    assert value("palhm_last_run_bytes_written") == 1005

    (copy,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    (copy / "a.txt").write_bytes(b"HELLO")  # damage: same size, other checksum
    result = run_palhm(["-f", str(path), "verify", "db"])
    assert result.returncode == 1
    families = parse(textfile.read_text())
    assert value("palhm_last_verify_success") == 0
    assert value("palhm_last_verify_success_timestamp_seconds") == good  # carried over
    assert value("palhm_last_verify_timestamp_seconds") > good
    assert value("palhm_last_run_success") == 1
    # and the next run keeps the verify series
    assert run_palhm(["-f", str(path), "run", "db"]).returncode == 0
    families = parse(textfile.read_text())
    assert value("palhm_last_verify_success") == 0
