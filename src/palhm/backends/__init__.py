"""Backend registry: one line per backend; modules add theirs (SPEC A2 `modules`).

Backends are imported lazily so that boto3 is loaded only when a config needs it.
"""

from __future__ import annotations

import importlib
from typing import Final

from palhm.backends.base import Backend

# name -> "module:Class". Core backends are always available.
CORE_BACKENDS: Final[dict[str, str]] = {
    "null": "palhm.backends.null:NullBackend",
    "localfs": "palhm.backends.localfs:LocalfsBackend",
}

# module name -> (backends it provides, MUAs it provides)
MODULE_BACKENDS: Final[dict[str, dict[str, str]]] = {
    "aws": {"aws-s3": "palhm.backends.s3:S3Backend"},
}


def available_backends(modules: frozenset[str] | set[str]) -> dict[str, str]:
    """Backends a config with these modules may name."""
    found = dict(CORE_BACKENDS)
    for module in sorted(modules):
        found.update(MODULE_BACKENDS.get(module, {}))
    return found


def backend_class(name: str, modules: frozenset[str] | set[str]) -> type[Backend]:
    """Import and return the class of backend `name` (KeyError if unknown)."""
    target = available_backends(modules)[name]
    module_name, _, class_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls
