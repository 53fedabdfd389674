"""Problems found in config files, with a structured JSON path, and their final order.

Internally a problem's place is a tuple such as ("tasks", 2, "objects", 0, "path");
it becomes the text `tasks[2].objects[0].path` only when the ConfigError is made, after
the problems are sorted by file (in discovery order: the -f file first) and then by
their place in the document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from palhm.errors import ConfigError, ConfigProblem
from palhm.records import record

PathPart: TypeAlias = str | int
JsonPath: TypeAlias = tuple[PathPart, ...]

MAX_LISTED: Final = 8


@record
class Issue:
    """One problem: `file` is the display name of the file, `path` the place in it."""

    file: str
    path: JsonPath
    message: str


def format_path(path: Sequence[PathPart]) -> str:
    """("tasks", 2, "exec-id") -> "tasks[2].exec-id"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def config_error(
    issues: Iterable[Issue],
    *,
    ranks: Mapping[str, int],
    documents: Mapping[str, Any],
) -> ConfigError:
    """One ConfigError holding every distinct issue, sorted by file then document order.

    `ranks` orders the files; `documents` maps a file to its parsed document, used to
    find where a key appears (dicts keep the order keys were written in).
    """
    unique = dict.fromkeys(issues)

    def key(issue: Issue) -> tuple[int, tuple[int, ...], str]:
        order = document_order(documents.get(issue.file), issue.path)
        return (ranks.get(issue.file, len(ranks)), order, issue.message)

    ordered = sorted(unique, key=key)
    return ConfigError([ConfigProblem(i.file, format_path(i.path), i.message) for i in ordered])


def document_order(document: Any, path: JsonPath) -> tuple[int, ...]:
    """Sort key of a place: at each step the index of the key (or item) in its parent."""
    order: list[int] = []
    node = document
    for part in path:
        if isinstance(node, dict) and isinstance(part, str):
            keys = list(node)
            order.append(keys.index(part) if part in node else len(keys))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            order.append(part)
            node = node[part] if 0 <= part < len(node) else None
        else:
            order.append(part if isinstance(part, int) else 0)
            node = None
    return tuple(order)


def known_list(wanted: str, known: Iterable[str]) -> str:
    """`a, b, c, ...`: up to MAX_LISTED known names, the most similar to `wanted` first
    (names sharing a `-`-separated word with it, then by overall likeness)."""
    import difflib

    names = list(dict.fromkeys(known))
    if not names:
        return "none are defined"
    words = set(wanted.split("-"))
    matcher = difflib.SequenceMatcher(b=wanted, autojunk=False)

    def rank(name: str) -> tuple[bool, float]:
        matcher.set_seq1(name)
        return (not words & set(name.split("-")), -matcher.ratio())

    ranked = sorted(names, key=rank)
    shown = ", ".join(ranked[:MAX_LISTED])
    return shown + (", ..." if len(ranked) > MAX_LISTED else "")


def did_you_mean(wanted: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a known name is close to `wanted`, else ``."""
    import difflib

    close = difflib.get_close_matches(wanted, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
