"""The reliability harness: configs whose stages carry a marker, crash/interrupt runs
through the real CLI, and the invariants checked after each of them.

Every stage of a harness config runs with PALHM_RELIABILITY_MARKER=<uuid> in its
environment, so any process a run left behind is found by scanning /proc, whoever
its parent is now.

Invariants (doc/design.md#backups-objects-and-groups, #rotation-order, #copy-protocol, #locking,
#signals):
- counted copies (complete or legacy) are whole: the final manifest lists exactly
  the files present, with their sizes and blake3 digests;
- a complete copy is lost only to rotation, i.e. only the oldest ones the rotation
  of a committed new copy was configured to remove;
- after the next run: no incomplete copy at all (staging, deleting, building), the
  newest `limit` copies kept, the new one among them;
- nothing else under the root is ever touched;
- no process of a killed run outlives it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3
import pytest

from palhm.prefix import parse_prefix
from tests.helpers import (
    wait_for,  # noqa: F401  (re-exported for the tests)
    write_config,
)

PYTHON: Final = sys.executable
TASK: Final = "backup"
MARKER_ENV: Final = "PALHM_RELIABILITY_MARKER"
MANIFEST: Final = ".palhm-manifest.json"
FINE_PREFIX: Final = {"type": "iso8601", "timespec": "microseconds"}
SIZES: Final = {"a": 300 * 1024, "b": 300 * 1024, "sub/c": 200 * 1024}
BLOCK_SIZE: Final = 64 * 1024
LIMIT: Final = 3

# What a seeded root holds besides the copies made by real runs.
LEGACY: Final = "2020-01-01T00:00:00+00:00"
STALE_STAGING: Final = ".palhm-staging-2021-01-01T00:00:00+00:00"
STALE_DELETING: Final = ".palhm-deleting-2021-06-01T00:00:00+00:00"
FOREIGN: Final = {"lost+found/keep.txt": b"not a copy\n", "notes.txt": b"mine\n"}


# --------------------------------------------------------------------------- configs


def stage(*argv: str, marker: str, **extra: Any) -> dict[str, Any]:
    """An inline stage tagged with the marker."""
    return {"type": "exec-inline", "argv": list(argv), "env": {MARKER_ENV: marker}, **extra}


def random_object(path: str, size: int, marker: str, group: str) -> dict[str, Any]:
    """`head -c SIZE /dev/urandom | cat`: two processes, data streaming."""
    pipeline = [
        stage("head", "-c", str(size), "/dev/urandom", marker=marker),
        stage("cat", marker=marker),
    ]
    return {"path": path, "group": group, "pipeline": pipeline}


def crash_objects(marker: str) -> list[dict[str, Any]]:
    groups = {"a": "first", "b": "first", "sub/c": "second"}
    return [random_object(p, size, marker, groups[p]) for p, size in SIZES.items()]


CRASH_GROUPS: Final[list[dict[str, Any]]] = [
    {"id": "first"},
    {"id": "second", "depends": ["first"]},
]


def backup_task(
    backend: str,
    param: Mapping[str, Any],
    objects: Sequence[Mapping[str, Any]],
    *,
    checksum: str = "blake3",
    groups: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "id": TASK,
        "type": "backup",
        "backend": backend,
        "backend-param": dict(param),
        "checksum": checksum,
        "object-groups": list(groups),
        "objects": list(objects),
    }


def write_backup_config(
    path: Path, task: Mapping[str, Any], *, modules: Sequence[str] = (), nb_workers: int = 2
) -> Path:
    doc: dict[str, Any] = {"nb-workers": nb_workers, "tasks": [dict(task)]}
    if modules:
        doc["modules"] = list(modules)
    return write_config(path, doc)


def localfs_param(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "root": str(root),
        "prefix": dict(FINE_PREFIX),
        "nb-copy-limit": LIMIT,
        "block-size": BLOCK_SIZE,
        **extra,
    }


def crash_config(path: Path, root: Path, marker: str, *, checksum: str = "blake3") -> Path:
    """The crash matrix's task: 3 objects in 2 dependent groups, rotation to 3 copies."""
    task = backup_task(
        "localfs",
        localfs_param(root),
        crash_objects(marker),
        checksum=checksum,
        groups=CRASH_GROUPS,
    )
    return write_backup_config(path, task)


def cases(entries: Sequence[tuple[Any, ...]], *, slow: set[tuple[str, int]]) -> list[Any]:
    """pytest params of a case table; the (point, occurrence) pairs in `slow` get the
    `slow` mark (the normal suite keeps a spread of them, `-m slow` runs the rest)."""
    return [
        pytest.param(*entry, marks=[pytest.mark.slow] if tuple(entry[:2]) in slow else [])
        for entry in entries
    ]


# --------------------------------------------------------------------------- running


def palhm_argv(config: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "palhm", "-f", str(config), *args]


def run(
    config: Path, *, fault: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`palhm -f CONFIG run backup` to the end, PALHM_FAULT set when `fault` is given."""
    full_env = {k: v for k, v in os.environ.items() if k != "PALHM_FAULT"}
    full_env.update(env or {})
    if fault is not None:
        full_env["PALHM_FAULT"] = fault
    return subprocess.run(
        palhm_argv(config, "run", TASK),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start(config: Path, *, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """The same in the background."""
    full_env = {k: v for k, v in os.environ.items() if k != "PALHM_FAULT"}
    full_env.update(env or {})
    return subprocess.Popen(
        palhm_argv(config, "run", TASK),
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    """Teardown: a background palhm is gone (SIGKILL if it is still running)."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


# --------------------------------------------------------------------------- processes


def _process_mentions(pid: str, marker: bytes) -> bool:
    for name in ("environ", "cmdline"):
        try:
            if marker in Path(f"/proc/{pid}/{name}").read_bytes():
                return True
        except OSError:  # gone, a zombie, or not ours
            continue
    return False


def marked_processes(marker: str) -> list[int]:
    """Live processes (zombies excluded) whose environment or argv carries `marker`."""
    needle = marker.encode()
    me = str(os.getpid())
    return sorted(
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and entry.name != me and _process_mentions(entry.name, needle)
    )


def survivors(marker: str, *, grace: float = 5.0) -> list[int]:
    """Marked processes still alive after `grace` seconds (parent-death signals and
    SIGKILLs are delivered asynchronously: give them a moment)."""
    deadline = time.monotonic() + grace
    while True:
        found = marked_processes(marker)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


# --------------------------------------------------------------------------- localfs state


@dataclass
class RootState:
    """What a localfs root holds, by directory inspection (not through palhm)."""

    complete: dict[str, dict[str, Any]] = field(default_factory=dict)  # prefix -> manifest
    legacy: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # hidden names, and bad copies
    foreign: dict[str, bytes] = field(default_factory=dict)  # relative path -> content

    @property
    def counted(self) -> list[str]:
        return sort_prefixes([*self.complete, *self.legacy])


def sort_prefixes(prefixes: Iterable[str]) -> list[str]:
    def when(prefix: str) -> Any:
        moment = parse_prefix(prefix)
        assert moment is not None, f"{prefix!r} is not a prefix"
        return moment

    return sorted(prefixes, key=when)


def inspect_root(root: Path) -> RootState:
    state = RootState()
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        name = entry.name
        if name.startswith(".palhm-") and entry.is_dir():
            state.incomplete.append(name)
        elif entry.is_dir() and parse_prefix(name) is not None:
            _classify_copy(entry, state)
        elif name != ".palhm.lock":
            _read_foreign(root, entry, state)
    return state


def _classify_copy(directory: Path, state: RootState) -> None:
    manifest = directory / MANIFEST
    if not manifest.exists():
        state.legacy.append(directory.name)
        return
    document = json.loads(manifest.read_bytes())
    # a prefix-named directory with a non-final manifest would be a broken commit
    assert document.get("state") == "complete", (
        f"{directory} has a {document.get('state')} manifest"
    )
    state.complete[directory.name] = document


def _read_foreign(root: Path, entry: Path, state: RootState) -> None:
    paths = [p for p in entry.rglob("*") if p.is_file()] if entry.is_dir() else [entry]
    for path in paths:
        state.foreign[path.relative_to(root).as_posix()] = path.read_bytes()


def assert_copy_whole(root: Path, prefix: str, manifest: Mapping[str, Any]) -> None:
    """The files of a complete copy are exactly those of its manifest, sizes and
    blake3 digests included."""
    directory = root / prefix
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} - {
        MANIFEST
    }
    listed = {obj["path"] for obj in manifest["objects"]}
    assert present == listed, f"{prefix}: files {sorted(present)} != manifest {sorted(listed)}"
    for obj in manifest["objects"]:
        data = (directory / obj["path"]).read_bytes()
        assert len(data) == obj["size"] == SIZES.get(obj["path"], obj["size"]), (prefix, obj)
        checksum = obj.get("checksum")
        if checksum and checksum["algorithm"] == "blake3":
            assert blake3.blake3(data).hexdigest() == checksum["hex"], (prefix, obj["path"])


def assert_counted_copies_whole(root: Path, state: RootState) -> None:
    for prefix, manifest in state.complete.items():
        assert_copy_whole(root, prefix, manifest)


# --------------------------------------------------------------------------- seeding


def seed_root(root: Path, config: Path, *, runs: int = 3) -> None:
    """Real copies from `runs` runs, then a legacy copy, stale incomplete copies and
    foreign files, all older than the real copies."""
    for _ in range(runs):
        result = run(config)
        assert result.returncode == 0, result.stderr
    legacy = root / LEGACY
    legacy.mkdir()
    (legacy / "etc.tar").write_bytes(b"legacy copy of the original PALHM\n")
    for name in (STALE_STAGING, STALE_DELETING):
        (root / name / "sub").mkdir(parents=True)
        (root / name / "sub" / "partial").write_bytes(b"partial")
    for relative, content in FOREIGN.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)


def clone_root(seed: Path, root: Path) -> None:
    shutil.copytree(seed, root, symlinks=True)


def newest(prefixes: Iterable[str], count: int) -> list[str]:
    return sort_prefixes(prefixes)[-count:]


def planned_removals(before: Sequence[str], limit: int) -> list[str]:
    """What rotation after one new copy may remove: the oldest counted copies."""
    excess = len(before) + 1 - limit
    return sort_prefixes(before)[: max(excess, 0)]
