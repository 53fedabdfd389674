"""Conversions shared by the logic checks and the model builder.

Each raises ValueError with a message that can follow the JSON path in a problem line.
"""

from __future__ import annotations

from typing import Any

from palhm.backends.base import RESERVED_NAMES
from palhm.values import Limit


def expected(error: ValueError) -> str:
    """values.py phrases some messages to follow "expected" ("a signal number or name")
    and others as sentences; make both read as a sentence."""
    message = str(error)
    return f"expected {message}" if message.startswith(("a ", "an ")) else message


def parse_limit(raw: Any) -> Limit:
    """A decimal limit (doc/design.md#configuration); see values.Limit.parse."""
    return Limit.parse(raw)


def _quote(raw: Any) -> str:
    return f"'{raw}'" if isinstance(raw, str) else str(raw)


def normalise_object_path(raw: str) -> str:
    """An object path made canonical (doc/design.md#backups-objects-and-groups): relative, no `.`
    or empty
    components, no `..`. `x`, `./x` and `x//` all give `x`."""
    if "\0" in raw:
        raise ValueError("an object path cannot contain a NUL character")
    if not raw.isprintable():
        # a newline would forge lines in `verify` and `list` output and in mails
        raise ValueError(f"{raw!r} contains a control character (newline, tab ...)")
    if raw.startswith("/"):
        raise ValueError(f"'{raw}' is absolute (expected a path relative to the copy)")
    parts = raw.split("/")
    if ".." in parts:
        raise ValueError(f"'{raw}' contains '..' (expected a path inside the copy)")
    kept = [part for part in parts if part not in ("", ".")]
    if not kept:
        raise ValueError(f"'{raw}' names no file (expected a relative file path)")
    normal = "/".join(kept)
    if normal in RESERVED_NAMES:
        raise ValueError(f"'{raw}' is reserved for the copy's manifest")
    return normal


def snake(key: str) -> str:
    """JSON's kebab-case key -> Python's snake_case (the one place this happens)."""
    return key.replace("-", "_")


def destination_names(wanted: list[tuple[str | None, str]]) -> list[str]:
    """The name of each destination, given (name or None, backend) in config order:
    a given name as is; else the backend's name, with `-2`, `-3` ... when that name is
    taken (`localfs`, `aws-s3`, `aws-s3-2`). Duplicate given names stay duplicates
    (the logic checks report them)."""
    taken = {name for name, _ in wanted if name is not None}
    names: list[str] = []
    for name, backend in wanted:
        if name is None:
            name, number = backend, 1
            while name in taken:
                number += 1
                name = f"{backend}-{number}"
            taken.add(name)
        names.append(name)
    return names
