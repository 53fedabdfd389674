"""Warnings about this host for `palhm config check`: a valid config may still name a
command this host does not have, or a module whose Python library is not installed.

These are warnings, not errors: a config is often checked on another machine than
the one it runs on, and PATH under cron or systemd differs from a login shell's.
Only commands the tasks and the boot report actually use are checked; the unused
execs of an included catalogue (core.json names rpm, pacman ...) are not.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from typing import Any

from palhm import records
from palhm.model import BackupTask, Config, Exec
from palhm.modules import MODULES, missing_libraries
from palhm.notify.mua.mailx import find_exec


def host_warnings(config: Config, effective: Mapping[str, Any] | None = None) -> list[str]:
    """One line per missing library or command (each command named once)."""
    warnings: list[str] = []
    for name in sorted(config.modules):
        info = MODULES.get(name)
        missing = missing_libraries(info) if info is not None else []
        if missing:
            libraries = ", ".join(missing)
            warnings.append(
                f"module '{name}' needs the Python library {libraries}, which palhm's"
                f" Python cannot import (Debian: apt-get install python3-{missing[0]};"
                f" pipx: pipx inject palhm {missing[0]})"
            )
    for task in config.tasks.values():
        if isinstance(task, BackupTask):
            warnings.extend(_relative_roots(task))
    seen: set[str] = set()
    for where, program in _programs(config):
        if program in seen:
            continue
        seen.add(program)
        if not _runnable(program):
            place = "not found on PATH" if os.sep not in program else "not an executable file"
            warnings.append(f"{where}: command '{program}' {place}")
    return warnings


def _relative_roots(task: BackupTask) -> list[str]:
    warnings = []
    for destination in task.all_destinations():
        root = destination.backend_param.get("root")
        if destination.backend != "localfs" or not isinstance(root, str | os.PathLike):
            continue
        if not os.path.isabs(root):
            warnings.append(
                f"task '{task.id}': backup root '{root}' is relative: it is resolved from"
                " palhm's working directory (/ under systemd, the home directory under"
                " cron); write an absolute path"
            )
    return warnings


def _runnable(program: str) -> bool:
    if os.sep in program:
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program) is not None


def _programs(config: Config) -> Iterator[tuple[str, str]]:
    """(where, program) of every command the tasks and the boot report run."""
    for task_id, task in config.tasks.items():
        for program in _walk(task):
            yield f"task '{task_id}'", program
    if config.boot_report is not None:
        for program in _walk(config.boot_report):
            yield "boot-report", program


def _walk(node: Any) -> Iterator[str]:
    if isinstance(node, Exec):
        if node.argv:
            yield node.argv[0]
        return
    if records.is_record(node) and not isinstance(node, type):
        if getattr(node, "mua", None) == "mailx":
            params = getattr(node, "mua_param", None)
            yield find_exec(params.get("exec") if isinstance(params, Mapping) else None)
        for name in records.fields(node):
            yield from _walk(getattr(node, name))
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _walk(value)
