"""Schema validation of each config file against schema.json (doc/design.md#configuration).

Two validators over the one schema:
- a fastjsonschema validator answers "valid?" quickly (a config with thousands of
  objects is checked in milliseconds). Its code is generated from schema.json by
  scripts/gen_validator.py and committed as palhm.config._schema_code: compiling
  the schema at run time would cost more than the rest of a small run;
- only when it says no, jsonschema's `iter_errors` walks the document again to
  collect *every* error with its path, and each is put in plain words here.

Both keep the document untouched (no defaults are filled in).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from palhm.config.problems import Issue, JsonPath, did_you_mean

_TYPE_WORDS: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_PATTERN_WORDS: Final = {
    "^[Hh][Tt][Tt][Pp][Ss]?://": "an http:// or https:// URL",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": "a name of letters, digits, '.', '_' and '-'",
}
_SHOWN_CHARS: Final = 60


@functools.cache
def schema() -> dict[str, Any]:
    """The shipped JSON Schema (parsed once)."""
    loaded: dict[str, Any] = json.loads(schema_source())
    return loaded


def schema_source() -> str:
    # next to this module (importlib.resources would cost more to import than the read)
    return Path(__file__).with_name("schema.json").read_text(encoding="utf-8")


@functools.cache
def _fast_validator(definition: str | None) -> Callable[[Any], Any]:
    """The generated validator of the whole file, or of one schema definition."""
    from palhm.config import _schema_code

    name = "validate" if definition is None else _definition_function(definition)
    validate: Callable[[Any], Any] = getattr(_schema_code, name)
    return validate


def _definition_function(definition: str) -> str:
    """The generated function of #/definitions/NAME (fastjsonschema's naming)."""
    return "validate___definitions_" + re.sub(r"[^a-zA-Z0-9_]", "_", definition)


# Definitions whose instances are numerous: the slow path skips any of them that the
# fast validator accepts, so one typo in a config of 5,000 objects is found quickly.
_SKIPPABLE: Final = frozenset({"exec", "task", "backup-object"})


@functools.cache
def _slow_validator(definition: str | None) -> Any:
    import jsonschema

    follow_ref = jsonschema.Draft7Validator.VALIDATORS["$ref"]

    def ref(validator: Any, ref: str, instance: Any, schema_node: Any) -> Iterator[Any]:
        name = ref.removeprefix("#/definitions/")
        if name in _SKIPPABLE and _passes(name, instance):
            return
        yield from follow_ref(validator, ref, instance, schema_node)

    checker = jsonschema.validators.extend(jsonschema.Draft7Validator, {"$ref": ref})
    return checker(_schema_for(definition))


def _passes(definition: str, instance: Any) -> bool:
    from palhm.config._schema_code import JsonSchemaValueException

    try:
        _fast_validator(definition)(instance)
    except JsonSchemaValueException:
        return False
    return True


def _schema_for(definition: str | None) -> dict[str, Any]:
    root = schema()
    if definition is None:
        return root
    # A schema whose root is one definition; `definitions` stays reachable for $ref.
    return {"$ref": f"#/definitions/{definition}", "definitions": root["definitions"]}


def schema_issues(
    file: str, instance: Any, *, definition: str | None = None, base: JsonPath = ()
) -> list[Issue]:
    """Every schema problem of `instance` (a whole file, or one `definition`) as Issues.

    `base` is the JSON path of `instance` within `file`.
    """
    from palhm.config._schema_code import JsonSchemaValueException

    try:
        _fast_validator(definition)(instance)
    except JsonSchemaValueException as fast_error:
        issues = list(_collect(file, instance, definition, base))
        if issues:
            return issues
        # The two validators disagree (should not happen): report the fast one's view.
        return [Issue(file, base, str(fast_error))]
    return []


def _collect(file: str, instance: Any, definition: str | None, base: JsonPath) -> Iterator[Issue]:
    for error in _slow_validator(definition).iter_errors(instance):
        path: JsonPath = base + tuple(error.absolute_path)
        for message in _messages(error):
            yield Issue(file, path, message)


def _messages(error: Any) -> list[str]:
    """Plain-words messages for one jsonschema ValidationError."""
    kind: str = error.validator
    value = error.validator_value
    instance = error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        return _unknown_keys(instance, error.schema)
    if kind == "required" and isinstance(instance, dict):
        return [f"missing required key '{k}'" for k in value if k not in instance]
    handler = _HANDLERS.get(kind)
    return [handler(value, instance) if handler else str(error.message)]


def _unknown_keys(instance: dict[str, Any], schema_node: dict[str, Any]) -> list[str]:
    allowed = list(schema_node.get("properties", {}))
    return [
        f"unknown key '{key}'" + (_belongs(key, allowed) or did_you_mean(key, allowed))
        for key in instance
        if key not in allowed
    ]


# Where the keys of each schema definition are written, in the words of doc/config.md.
_PLACES: Final = {
    "": "the top level",
    "exec": "an exec (execs[])",
    "stage-exec-inline": "a pipeline stage or routine item",
    "stage-exec-append": "a pipeline stage or routine item",
    "stage-exec": "a pipeline stage or routine item",
    "backup-task": "a backup task",
    "routine-task": "a routine task",
    "backup-object": "an object (objects[])",
    "object-group": "an object group (object-groups[])",
    "backend-param-common": "backend-param",
    "localfs-param": "backend-param",
    "aws-s3-param": "backend-param",
    "prefix-timed": "backend-param.prefix",
    "hook-ping": "a hook (on-start, on-success, on-failure)",
    "hook-mail": "a hook (on-start, on-success, on-failure)",
    "boot-report": "boot-report",
    "mua-param-mailx": "mua-param",
    "mua-param-smtp": "mua-param",
    "mua-param-aws-sns": "mua-param",
    "metrics": "metrics",
    "sigmask-action": "a sigmask param",
}


@functools.cache
def _place_of(allowed: tuple[str, ...]) -> str | None:
    root = schema()
    for name, node in [("", root), *root.get("definitions", {}).items()]:
        if isinstance(node, dict) and tuple(node.get("properties", {})) == allowed:
            return _PLACES.get(name)
    return None


@functools.cache
def _key_places() -> dict[str, tuple[str, ...]]:
    """key -> the places (in _PLACES words) whose definition allows it."""
    root = schema()
    nodes = [("", root), *root.get("definitions", {}).items()]
    found: dict[str, dict[str, None]] = {}
    for name, node in nodes:
        place = _PLACES.get(name)
        if place is None or not isinstance(node, dict):
            continue
        for key in node.get("properties", {}):
            found.setdefault(key, {})[place] = None
    return {key: tuple(places) for key, places in found.items()}


def _belongs(key: str, allowed: list[str]) -> str:
    """` here (it belongs in backend-param)` when `key` is allowed at another level,
    else `` (also when it is allowed at this level for another type or backend)."""
    here = _place_of(tuple(allowed))
    places = [p for p in _key_places().get(key, ()) if p != here]
    if not places:
        return ""
    return f" here (it belongs in {' or '.join(places[:3])})"


def _type_message(value: Any, instance: Any) -> str:
    wanted = [value] if isinstance(value, str) else list(value)
    expected = " or ".join(_TYPE_WORDS.get(t, t) for t in wanted)
    return f"expected {expected}, found {_describe(instance)}"


def _enum_message(value: Any, instance: Any) -> str:
    choices = ", ".join(str(v) for v in value)
    hint = did_you_mean(instance, [str(v) for v in value]) if isinstance(instance, str) else ""
    return f"{_show(instance)} is not one of {choices}{hint}"


def _pattern_message(value: Any, instance: Any) -> str:
    expected = _PATTERN_WORDS.get(value, f"a string matching {value}")
    return f"expected {expected}, found {_show(instance)}"


def _min_items(value: Any, instance: Any) -> str:
    return "expected a non-empty list" if value == 1 else f"expected at least {value} items"


def _min_length(value: Any, instance: Any) -> str:
    return "expected a non-empty string" if value == 1 else f"expected at least {value} characters"


_HANDLERS: Final[dict[str, Callable[[Any, Any], str]]] = {
    "type": _type_message,
    "enum": _enum_message,
    "const": lambda value, instance: f"expected {_show(value)}, found {_show(instance)}",
    "pattern": _pattern_message,
    "minItems": _min_items,
    "minLength": _min_length,
    "minimum": lambda value, instance: f"expected {value} or more, found {_show(instance)}",
    "maximum": lambda value, instance: f"expected {value} or less, found {_show(instance)}",
    "exclusiveMinimum": lambda value, instance: (
        f"expected more than {value}, found {_show(instance)}"
    ),
}


def _describe(instance: Any) -> str:
    """`an integer (5)`, `a list`, `null` ..."""
    if instance is None:
        return "null"
    if isinstance(instance, bool):
        return f"a boolean ({str(instance).lower()})"
    if isinstance(instance, dict):
        return "an object"
    if isinstance(instance, list):
        return "a list"
    kind = "an integer" if isinstance(instance, int) else "a number"
    if isinstance(instance, str):
        kind = "a string"
    return f"{kind} ({_show(instance)})"


def _show(instance: Any) -> str:
    """A short quotation of a value for messages: 'text' or JSON."""
    if isinstance(instance, str):
        text = instance if len(instance) <= _SHOWN_CHARS else instance[:_SHOWN_CHARS] + "..."
        return "'" + re.sub(r"[\x00-\x1f]", "?", text) + "'"
    try:
        shown = json.dumps(instance, ensure_ascii=False)
    except ValueError:
        shown = repr(instance)
    return shown if len(shown) <= _SHOWN_CHARS else shown[:_SHOWN_CHARS] + "..."
