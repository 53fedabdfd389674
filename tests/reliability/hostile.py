"""Helpers of the hostile-world tests: a root another (real, unprivileged) user can
write, that user's commands, and small configs run through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from palhm.prefix import parse_prefix
from tests.reliability.harness import PYTHON

OTHER: Final = "nobody"  # the other user: exists on every Debian/Ubuntu system
TASK: Final = "backup"


def as_other(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run argv as the unprivileged user (setpriv: no shell, no PAM)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as another user")
    return subprocess.run(
        ["setpriv", "--reuid", OTHER, "--regid", "nogroup", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def spawn_as_other(*argv: str) -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as another user")
    return subprocess.Popen(
        ["setpriv", "--reuid", OTHER, "--regid", "nogroup", "--clear-groups", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def other_dir(path: Path) -> Path:
    """A directory owned by the other user (their home, say)."""
    path.mkdir()
    shutil.chown(path, OTHER, "nogroup")
    return path


def stage(*argv: str) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv)}


def sh(script: str) -> dict[str, Any]:
    return stage("sh", "-c", script)


def task(
    root: Path, objects: Sequence[Mapping[str, Any]], *, task_id: str = TASK, **param: Any
) -> dict[str, Any]:
    return {
        "id": task_id,
        "type": "backup",
        "backend": "localfs",
        "backend-param": {
            "root": str(root),
            "prefix": {"type": "iso8601", "timespec": "microseconds"},
            **param,
        },
        "objects": [dict(o) for o in objects],
    }


def small(path: str = "data", text: str = "hello") -> dict[str, Any]:
    return {"path": path, "pipeline": [stage("printf", text)]}


def write(path: Path, *tasks: Mapping[str, Any], **top: Any) -> Path:
    path.write_text(json.dumps({"tasks": [dict(t) for t in tasks], **top}))
    return path


def palhm(
    config: Path, *args: str, timeout: float = 120, stdout: Any = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "palhm", "-f", str(config), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_palhm(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "palhm", "-f", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def copies(root: Path) -> list[str]:
    """Prefix-named directories under ROOT (committed copies, or planted ones)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and parse_prefix(p.name))


def hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".palhm-") and p.is_dir())
