"""Shared pieces of the backup and localfs integration tests: configs, stages, waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import (
    wait_for,  # noqa: F401  (re-exported for the tests)
    write_config,
)

PYTHON = sys.executable
TASK = "backup"
# Microsecond prefixes: consecutive runs in one test never collide by accident.
FINE_PREFIX: Mapping[str, str] = {"type": "iso8601", "timespec": "microseconds"}


def inline(*argv: str, **extra: Any) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv), **extra}


def python_stage(code: str, *args: str) -> dict[str, Any]:
    """A stage running Python code (no shell anywhere)."""
    return inline(PYTHON, "-c", code, *args)


def hold_stage(flag: Path, payload: bytes = b"held\n") -> dict[str, Any]:
    """Writes `payload`, then waits until `flag` exists: a run kept in progress."""
    code = (
        "import os, sys, time\n"
        "sys.stdout.buffer.write(sys.argv[2].encode()); sys.stdout.flush()\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
    )
    return python_stage(code, str(flag), payload.decode())


def zeros(size: int) -> dict[str, Any]:
    return inline("head", "-c", str(size), "/dev/zero")


def obj(path: str, *stages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"path": path, "pipeline": list(stages), **extra}


def backup_config(
    path: Path,
    root: Path,
    objects: Sequence[Mapping[str, Any]],
    *,
    groups: Sequence[Mapping[str, Any]] = (),
    param: Mapping[str, Any] | None = None,
    backend: str = "localfs",
    nb_workers: int | None = None,
    **task: Any,
) -> Path:
    """Write a config with one backup task `backup` on ROOT."""
    backend_param: dict[str, Any] = {"root": str(root), "prefix": dict(FINE_PREFIX)}
    backend_param.update(param or {})
    if backend == "null":
        backend_param = {}
    doc: dict[str, Any] = {
        "tasks": [
            {
                "id": TASK,
                "type": "backup",
                "backend": backend,
                "backend-param": backend_param,
                "object-groups": list(groups),
                "objects": list(objects),
                **task,
            }
        ]
    }
    if nb_workers is not None:
        doc["nb-workers"] = nb_workers
    return write_config(path, doc)


def copies_in(root: Path) -> list[str]:
    """Names of the committed copies (directories with a manifest), sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / ".palhm-manifest.json").is_file())


def manifest_of(root: Path, prefix: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((root / prefix / ".palhm-manifest.json").read_text())
    return document


def start_palhm(config: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """`python -m palhm -f CONFIG run backup` in the background, output captured."""
    return subprocess.Popen(
        [PYTHON, "-m", "palhm", "-f", str(config), "run", TASK, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def alive(pid: int) -> bool:
    """True when PID exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(process: subprocess.Popen[str]) -> None:
    """Teardown: make sure a background palhm is gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def staging_dirs(root: Path) -> list[Path]:
    return sorted(root.glob(".palhm-staging-*")) if root.is_dir() else []


def mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777
