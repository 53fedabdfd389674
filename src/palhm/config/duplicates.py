"""Keys written twice in one JSON object of a config file.

The JSONC parser, like every JSON parser, keeps the last of two equal keys: the
first value is silently lost (`"fmode": "600", ..., "fmode": "644"`). This scan
finds them in text the parser already accepted, so it only has to follow the
structure: strings (either quote), comments, identifiers used as keys, and the
nesting of objects and arrays, to name where each duplicate is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final

from palhm.records import field, record

_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$\\")


@record(frozen=False)
class _Level:
    is_object: bool
    key: str | int  # this container's own key in its parent
    keys: set[str] = field(default_factory=set)
    index: int = 0  # arrays: the index of the current element
    expect_key: bool = True  # objects: the next string or identifier is a key
    last_key: str = ""


def duplicate_keys(text: str) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(JSON path of the object, key) for every key met a second time in one object."""
    stack: list[_Level] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "\"'":
            end = _string_end(text, i)
            yield from _token(stack, text[i:end], quoted=True)
            i = end
            continue
        if char == "/" and text.startswith(("//", "/*"), i):
            i = _comment_end(text, i)
            continue
        if char in "{[]},":
            _structure(stack, char)
        elif char in _ID_CHARS and stack and stack[-1].is_object and stack[-1].expect_key:
            end = i
            while end < n and text[end] in _ID_CHARS:
                end += 1
            yield from _token(stack, text[i:end], quoted=False)
            i = end
            continue
        i += 1


def _comment_end(text: str, start: int) -> int:
    if text.startswith("//", start):
        newline = text.find("\n", start)
        return len(text) if newline < 0 else newline
    close = text.find("*/", start + 2)
    return len(text) if close < 0 else close + 2


def _structure(stack: list[_Level], char: str) -> None:
    if char in "{[":
        key: str | int = ""
        if stack:
            top = stack[-1]
            key = top.last_key if top.is_object else top.index
        stack.append(_Level(char == "{", key))
    elif stack and char in "}]":
        stack.pop()
    elif stack:  # ","
        stack[-1].expect_key = True
        stack[-1].index += 1


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)


def _token(
    stack: list[_Level], raw: str, *, quoted: bool
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if not stack or not stack[-1].is_object or not stack[-1].expect_key:
        return
    top = stack[-1]
    top.expect_key = False
    key = _key_text(raw, quoted=quoted)
    top.last_key = key
    if key in top.keys:
        yield tuple(level.key for level in stack[1:]), key
    top.keys.add(key)


def _key_text(raw: str, *, quoted: bool) -> str:
    """The key a parser sees: escapes decoded. A JSON string needs only the json module;
    JSON5 forms (single quotes, bare identifiers) load pyjson5."""
    if raw.startswith('"'):
        try:
            return str(json.loads(raw))
        except ValueError:
            pass
    import pyjson5

    try:
        if quoted:
            return str(pyjson5.decode(raw))
        return str(pyjson5.decode("{" + raw + ":0}").popitem()[0])
    except (pyjson5.Json5Exception, ValueError, KeyError):
        return raw
