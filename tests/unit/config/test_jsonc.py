"""JSONC parsing: comments, trailing commas, exact integers, errors with line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from palhm.config import load_config
from palhm.config.jsonc import JsoncSyntaxError, parse_jsonc
from tests.unit.config.util import problems, write


def test_comments_and_trailing_commas_are_accepted() -> None:
    text = """
    // line comment
    {
      /* block
         comment */ "a": [1, 2,],  // trailing comma in a list
      "b": { "c": "// not a comment", },
    }
    """
    assert parse_jsonc(text) == {"a": [1, 2], "b": {"c": "// not a comment"}}


def test_integers_beyond_2_53_stay_exact() -> None:
    assert parse_jsonc('{"n": 9007199254740993}')["n"] == 2**53 + 1
    assert parse_jsonc('{"n": 1180591620717411303424}')["n"] == 2**70


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_text('\ufeff{"vl": 2}', encoding="utf-8")
    assert load_config(path).vl == 2


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "expected ',' or '}', found '\"'"),
        ('{"a": tru}', 1, 7, "expected 'e', found '}'"),
        ('{"a": [1,,2]}', 1, 10, "unexpected ','"),
        ('{"a": 1}\n\n  // trailing\n  x', 4, 3, "unexpected 'x'"),
        ('{"a": "open', 1, 7, "unterminated string"),
        ('{\n  "a": 1 /* never closed', 2, 10, "unterminated comment"),
        ('{"a" 1}', 1, 6, "expected ':', found '1'"),
        ('{"a":\n}', 2, 1, "expected a value, found '}'"),
        ('{"a": 1,\n]', 2, 1, "expected a key, found ']'"),
        ("   ", 1, 1, "the file is empty"),
        ('{"é€": 1 x}', 1, 10, "expected ',' or '}', found 'x'"),
    ],
)
def test_syntax_errors_name_line_and_column(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(JsoncSyntaxError) as caught:
        parse_jsonc(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert reason in caught.value.reason


def test_syntax_error_line_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "site.jsonc", '{\n  "vl": 3,\n  "tasks": [,]\n}\n')
    assert problems(path) == [f"{path}: line 3, column 13: expected a value, found ','"]


@pytest.mark.parametrize(
    ("text", "found"), [("[1]", "list"), ('"x"', "str"), ("null", "null"), ("3", "int")]
)
def test_top_level_must_be_an_object(tmp_path: Path, text: str, found: str) -> None:
    path = write(tmp_path, "top.json", text)
    assert problems(path) == [f"{path}: expected a JSON object at the top level, found {found}"]


def test_unreadable_file_gives_its_strerror(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonc"
    assert problems(missing) == [f"{missing}: cannot read: No such file or directory"]
    assert problems(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"vl": "\xe9"}')
    assert problems(path) == [f"{path}: cannot read: not UTF-8 text (byte 8)"]


PLAIN_JSON = [
    '{"a": 1, "b": [true, false, null], "c": {"d": "e"}}',
    '{"n": 9007199254740993, "m": -0, "f": 1.5e300, "g": 0.1, "h": 1E-7}',
    r'{"s": "tab\there \"quoted\" \\ \/ \u00e9 \ud83d\ude00 \u0000", "\u0061": 2}',
    '{"deep": [[[[[[[[[[{"x": []}]]]]]]]]]], "empty": {}}',
    '{"a": 1, "a": 2}',  # the last wins in both; duplicates.py reports it
    '  \n\t{"spaces": "around"}\n  ',
    '{"ünïcödé": "✓", "emoji": "😀"}',
]


@pytest.mark.parametrize("text", PLAIN_JSON)
def test_plain_json_reads_as_pyjson5_reads_it(text: str) -> None:
    """Plain JSON skips pyjson5 (start-up); the value must be the one pyjson5 gives."""
    import pyjson5

    value = parse_jsonc(text)
    assert value == pyjson5.decode(text)
    assert repr(value) == repr(pyjson5.decode(text))  # same types: int stays int, -0 too


@pytest.mark.parametrize(
    ("text", "key"),
    [('{"a": 1, "a": 2}', "a"), ('{"\\u0061": 1, "a": 2}', "a"), ("{'a': 1, a: 2}", "a")],
)
def test_a_key_written_twice_is_found_whatever_its_spelling(text: str, key: str) -> None:
    from palhm.config.duplicates import duplicate_keys

    assert list(duplicate_keys(text)) == [((), key)]
