"""Helpers for the config tests: write config files, collect the problem lines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from palhm.config import load_config
from palhm.errors import ConfigError


def write(directory: Path, name: str, document: dict[str, Any] | str) -> Path:
    """Write a config file (JSON for a dict, the text as is for a string)."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def problems(path: str | os.PathLike[str]) -> list[str]:
    """The problem lines that loading `path` reports (fails the test if it loads)."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


def routine(task_id: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"id": task_id, "type": "routine", "routine": list(items)}


def inline(*argv: str, **extra: Any) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv), **extra}


def backup(task_id: str, *objects: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "type": "backup", "backend": "null", "objects": list(objects), **extra}


def obj(path: str, *stages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"path": path, "pipeline": list(stages) or [inline("/usr/bin/true")], **extra}
