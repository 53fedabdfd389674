"""Helpers shared by tests: run the CLI as a user runs it, write configs, find children."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE_JSON = REPO / "src" / "palhm" / "data" / "conf.d" / "core.json"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def require_services() -> bool:
    """In CI a missing service must FAIL the run; locally it may be skipped."""
    return os.environ.get("PALHM_TEST_REQUIRE_SERVICES", "") not in ("", "0")


def need_program(*names: str) -> None:
    """Skip (or fail under PALHM_TEST_REQUIRE_SERVICES) when a program is missing."""
    missing = [n for n in names if shutil.which(n) is None and not Path(n).exists()]
    if missing:
        message = f"missing program(s): {', '.join(missing)}"
        if require_services():
            pytest.fail(message)
        pytest.skip(message)


def run_palhm(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m palhm ARGS` as a user would; text stdout/stderr captured."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "palhm", *args],
        cwd=cwd,
        env=full_env,
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(path: Path, doc: Mapping[str, Any] | str) -> Path:
    """Write a config file (a dict as JSON, or JSONC text as is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of `pid` (from /proc), for orphan checks."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def wait_for(condition: Callable[[], object], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll until `condition()` is truthy; its value. Fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")
