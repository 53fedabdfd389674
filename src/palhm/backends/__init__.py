"""Backend registry: one line per backend (CONTRIBUTING.md: adding a backend).

Which names a config may use depends on its `modules` (palhm.modules says which
module provides which backend). Classes are imported lazily, so that boto3 is
loaded only when a config uses aws-s3.
"""

from __future__ import annotations

import importlib
from collections.abc import Set
from typing import Final

from palhm.backends.base import Backend
from palhm.modules import backend_names

BACKENDS: Final[dict[str, str]] = {
    "null": "palhm.backends.null:NullBackend",
    "localfs": "palhm.backends.localfs:LocalfsBackend",
    "aws-s3": "palhm.backends.s3.backend:S3Backend",  # module "aws"
}


def backend_class(name: str, modules: Set[str]) -> type[Backend]:
    """Import and return the class of backend `name`.

    Raises KeyError when no core backend and no listed module provides `name`
    (the config layer reports that as a config error before anything runs).
    """
    if name not in backend_names(modules):
        raise KeyError(name)
    module_name, _, class_name = BACKENDS[name].partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls
