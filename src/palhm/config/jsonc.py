"""JSONC parsing: JSON plus `//` and `/* */` comments and trailing commas
(doc/design.md#configuration).

pyjson5 (a JSON5 parser, a superset of JSONC) does the work; this module only turns
its exceptions into one readable line with the line and column of the problem.
Integers of any size stay exact Python ints. A file that is plain JSON (no comment,
no trailing comma) is read by the json module, which is loaded anyway: pyjson5 and
what it imports (pprint, dataclasses, inspect: ~15 ms) are loaded only for the
rest (doc/design.md#start-up). Both give the same value for a JSON text.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

_NEAR: Final = re.compile(r"\s*(?:starting\s+)?near\s+(\d+)")
_TOKEN: Final = re.compile(r"b'([^']*)'")
_CODEPOINT: Final = re.compile(r"U\+([0-9A-Fa-f]{4,6})")
_TOKEN_WORDS: Final = {
    "comma": "','",
    "colon": "':'",
    "slash": "'/'",
    "IdentifierStart": "a key",
    "JSON5Value": "a value",
    "NumericLiteral": "number",
    "hexadecimal character": "a hexadecimal digit",
}
_EXTRA_DATA: Final = "Extra data"
# A number written with a leading zero (0640): JSON has no octal numbers.
_LEADING_ZERO: Final = re.compile(r"(?<![\w.\"'])-?0[0-9]+(?![\w.])")
_OCTAL_HINT: Final = ' (JSON numbers cannot start with 0; write modes as strings: "0640")'


class JsoncSyntaxError(ValueError):
    """A syntax error: `line` and `column` are 1-based; `reason` is plain words."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(f"line {line}, column {column}: {reason}")


def parse_jsonc(text: str) -> Any:
    """Parse JSONC text and return the value (dict, list, str, int, float, bool, None).

    Raises JsoncSyntaxError naming the line and column of the first problem.
    """
    try:
        return json.loads(text)
    except ValueError:
        pass  # comments, trailing commas, or an error to describe: pyjson5 says which
    import pyjson5

    try:
        return pyjson5.decode(text)
    except pyjson5.Json5DecoderException as error:
        raise _syntax_error(text, error) from None


def _syntax_error(text: str, error: Exception) -> JsoncSyntaxError:
    import pyjson5

    raw = str(error.args[0]) if error.args else str(error)
    offset = _offset(raw, extra_data=isinstance(error, pyjson5.Json5ExtraData))
    offset = min(max(offset, 0), len(text))
    if isinstance(error, pyjson5.Json5ExtraData):
        offset = _skip_space(text, offset)  # pyjson5 points just after the document
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    reason = _reason(raw)
    if _leading_zero_at(text, offset):
        reason += _OCTAL_HINT
    return JsoncSyntaxError(line, column, reason)


def _leading_zero_at(text: str, offset: int) -> bool:
    """Whether the error sits in or right after a number such as 0640."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line = text[start : len(text) if end < 0 else end]
    column = offset - start
    return any(m.start() <= column <= m.end() for m in _LEADING_ZERO.finditer(line))


def _offset(raw: str, *, extra_data: bool) -> int:
    """Character index of the problem. pyjson5 says "near N": one past the offending
    character for most errors, the character itself for trailing data."""
    match = _NEAR.search(raw)
    if match is None:
        return 0
    near = int(match.group(1))
    if extra_data:
        return near
    # an unclosed comment is reported at its '*', one character after the '/'
    return near - 2 if raw.startswith("Unclosed b'comment'") else near - 1


def _skip_space(text: str, offset: int) -> int:
    """The offset of the next character that is neither white space nor a comment."""
    while offset < len(text):
        if text[offset].isspace():
            offset += 1
        elif text.startswith("//", offset):
            end = text.find("\n", offset)
            offset = len(text) if end < 0 else end + 1
        elif text.startswith("/*", offset) and (end := text.find("*/", offset + 2)) >= 0:
            offset = end + 2
        else:
            break
    return offset


def _reason(raw: str) -> str:
    """pyjson5's message in plain words: tokens and code points shown as characters."""
    if raw.startswith("No JSON data found"):
        return "the file is empty (expected a JSON object)"
    message = _NEAR.sub("", raw)
    message = _TOKEN.sub(lambda m: _TOKEN_WORDS.get(m.group(1), m.group(1)), message)
    message = _CODEPOINT.sub(lambda m: _show_char(int(m.group(1), 16)), message)
    message = message.replace(_EXTRA_DATA, "unexpected", 1)
    if message.startswith("Unclosed number"):
        return "malformed or out-of-range number"
    if message.startswith("Unclosed"):
        return message.replace("Unclosed", "unterminated", 1)
    if message.startswith("Stray"):
        return message.replace("Stray", "unexpected", 1)
    return message[:1].lower() + message[1:]


def _show_char(codepoint: int) -> str:
    char = chr(codepoint)
    if char == "\n":
        return "end of line"
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"U+{codepoint:04X}"
