"""Input that `config check` used to accept and `run` then choked on ("internal error",
exit 1). The class: anything `run` would refuse or crash on must be refused by
`config check` first, exit 2, naming the file and the JSON path, and `run` must
refuse it the same way, having run nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import PYTHON

LONG = "x" * 256


def _task(root: Path, **param: Any) -> dict[str, Any]:
    return {
        "id": "backup",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(root), **param},
        "objects": [{"path": "a", "pipeline": [{"type": "exec-inline", "argv": ["true"]}]}],
    }


def _with_objects(task: dict[str, Any], *paths: str) -> dict[str, Any]:
    stage = {"type": "exec-inline", "argv": ["true"]}
    task["objects"] = [{"path": p, "pipeline": [stage]} for p in paths]
    return task


def _stage(task: dict[str, Any], **fields: Any) -> dict[str, Any]:
    task["objects"][0]["pipeline"][0].update(fields)
    return task


# (case id, task maker, JSON path expected in the message)
BAD: list[tuple[str, Any, str]] = [
    ("nul-in-argv", lambda r: _stage(_task(r), argv=["true", "a\0b"]), ".argv[1]"),
    ("nul-in-env-value", lambda r: _stage(_task(r), env={"X": "a\0b"}), ".env.X"),
    ("equals-in-env-name", lambda r: _stage(_task(r), env={"A=B": "x"}), ".env.A=B"),
    ("empty-env-name", lambda r: _stage(_task(r), env={"": "x"}), ".env"),
    ("nul-in-root", lambda r: _task(Path(f"{r}\0x")), "backend-param.root"),
    ("nul-in-prefix-type", lambda r: _task(r, prefix={"type": "iso8601", "tz": "u\0"}), "tz"),
    ("nul-in-exec-id", lambda r: _stage(_task(r), type="exec", **{"exec-id": "a\0"}), "exec-id"),
    ("root-name-too-long", lambda r: _task(r / LONG), "backend-param.root"),
    ("block-size-1-tib", lambda r: _task(r, **{"block-size": 1 << 40}), "block-size"),
    ("file-and-dir", lambda r: _with_objects(_task(r), "a", "a/b"), "objects[1].path"),
    ("dir-and-file", lambda r: _with_objects(_task(r), "a/b/c", "a/b"), "objects[1].path"),
    ("name-over-255-bytes", lambda r: _with_objects(_task(r), "d/" + LONG), "objects[0].path"),
    ("multibyte-name-over-255", lambda r: _with_objects(_task(r), "é" * 128), "objects[0].path"),
    ("newline-in-path", lambda r: _with_objects(_task(r), "a\nok  b"), "objects[0].path"),
    ("tab-in-path", lambda r: _with_objects(_task(r), "a\tb"), "objects[0].path"),
    ("manifest-name", lambda r: _with_objects(_task(r), ".palhm-manifest.json"), "path"),
    ("manifest-tmp", lambda r: _with_objects(_task(r), ".palhm-manifest.json.tmp"), "path"),
    ("manifest-tmp-dot", lambda r: _with_objects(_task(r), "./.palhm-manifest.json.tmp"), "path"),
    ("fmode-setuid", lambda r: _task(r, fmode="4777"), "backend-param.fmode"),
    ("fmode-setgid", lambda r: _task(r, fmode="2640"), "backend-param.fmode"),
    ("fmode-world-writable", lambda r: _task(r, fmode="666"), "backend-param.fmode"),
    ("fmode-number-setuid", lambda r: _task(r, fmode=4750), "backend-param.fmode"),
    ("dmode-world-writable", lambda r: _task(r, dmode="777"), "backend-param.dmode"),
    ("dmode-sticky", lambda r: _task(r, dmode="1750"), "backend-param.dmode"),
    ("keep-last-0-alone", lambda r: _task(r, **{"keep-last": 0}), "keep-last"),
    ("keep-all-0", lambda r: _task(r, **{"keep-daily": 0, "keep-weekly": 0}), "keep-daily"),
]


def _palhm(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "palhm", "-f", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_refused(config: Path, where: str, root: Path, *, file: Path | None = None) -> None:
    for args in (("config", "check"), ("run", "backup")):
        result = _palhm(config, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        assert str(file or config) in result.stderr, result.stderr
        assert where in result.stderr, result.stderr
    assert not root.exists(), "a refused config made the backup root"


@pytest.mark.parametrize(("make", "where"), [pytest.param(m, w, id=i) for i, m, w in BAD])
def test_config_check_refuses_what_run_cannot_do(tmp_path: Path, make: Any, where: str) -> None:
    root = tmp_path / "root"
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"tasks": [make(root)]}))
    _assert_refused(config, where, root)


def test_duplicate_keys_in_one_object_are_refused_with_their_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    text = json.dumps({"tasks": [_task(root, fmode="600")]})
    text = text.replace('"fmode": "600"', '"fmode": "600", /* later */ fmode: "644"')
    config = tmp_path / "c.jsonc"
    config.write_text(text)
    _assert_refused(config, "tasks[0].backend-param.fmode", root)


def test_an_include_chain_too_deep_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    depth = 500
    for n in range(depth):
        (tmp_path / f"inc{n}.json").write_text(json.dumps({"include": [f"inc{n + 1}.json"]}))
    (tmp_path / f"inc{depth}.json").write_text("{}")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"include": ["inc0.json"], "tasks": [_task(root)]}))
    _assert_refused(config, "include[0]", root, file=tmp_path / "inc30.json")


@pytest.mark.parametrize(
    "task_maker",
    [
        pytest.param(lambda r: _with_objects(_task(r), "sub/.palhm-manifest.json"), id="nested"),
        pytest.param(lambda r: _with_objects(_task(r), ".palhm-manifest.jsonx"), id="longer"),
        pytest.param(lambda r: _with_objects(_task(r), "a/b", "a/c", "ab"), id="siblings"),
        pytest.param(lambda r: _task(r, **{"keep-last": 0, "keep-daily": 2}), id="keep-0-and-2"),
        pytest.param(lambda r: _task(r, fmode="600", dmode="2750"[1:]), id="plain-modes"),
        pytest.param(lambda r: _with_objects(_task(r), "é" * 127), id="254-bytes"),
    ],
)
def test_near_misses_are_accepted_and_run(tmp_path: Path, task_maker: Any) -> None:
    """Only the exact names and values are refused: their neighbours still work."""
    root = tmp_path / "root"
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"tasks": [task_maker(root)]}))
    result = _palhm(config, "run", "backup")
    assert result.returncode == 0, result.stderr
    copies = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert len(copies) == 1
