"""Schema defaults: read from schema.json, never repeated in code (doc/design.md#configuration).

The schema uses a small, fixed set of composition keywords (`$ref`, `allOf`, and
`if`/`then` whose `if` tests `type: object`, `required` and a `const` or `enum`
property), and this walker understands exactly those.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

from palhm.config.validate import schema


def resolve(node: Any) -> Any:
    """Follow `$ref` (only local `#/definitions/NAME` references are used)."""
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].removeprefix("#/definitions/")
        node = schema()["definitions"][name]
    return node


def definition(name: str) -> dict[str, Any]:
    node: dict[str, Any] = schema()["definitions"][name]
    return node


@functools.cache
def own_defaults(name: str) -> dict[str, Any]:
    """key -> default of the properties a definition declares itself (not via allOf)."""
    properties = definition(name).get("properties", {})
    return {
        key: sub["default"]
        for key, sub in properties.items()
        if isinstance(sub, dict) and "default" in sub
    }


def default_of(name: str, key: str) -> Any:
    """The default of property `key` of definition `name` (KeyError when it has none)."""
    return own_defaults(name)[key]


def matches(instance: Any, condition: dict[str, Any]) -> bool:
    """Whether `instance` satisfies an `if` schema of the shape the schema uses."""
    if not isinstance(instance, dict):
        return False
    if any(key not in instance for key in condition.get("required", ())):
        return False
    for key, test in condition.get("properties", {}).items():
        if key not in instance:
            continue
        if "const" in test and instance[key] != test["const"]:
            return False
        if "enum" in test and instance[key] not in test["enum"]:
            return False
    return True


def properties_for(instance: dict[str, Any], node: Any) -> dict[str, Any]:
    """Property schemas that apply to `instance` under `node`, through allOf and
    matching if/then. A real schema wins over a `true` placeholder of the same key;
    two real schemas of one key are combined with allOf."""
    node = resolve(node)
    if not isinstance(node, dict):
        return {}
    found: dict[str, Any] = {}
    for key, sub in node.get("properties", {}).items():
        found[key] = sub
    for part in node.get("allOf", ()):
        if "if" in part:
            if not matches(instance, part["if"]):
                continue
            part = part.get("then", {})
        for key, sub in properties_for(instance, part).items():
            if key not in found or found[key] is True:
                found[key] = sub
            elif sub is not True:
                found[key] = {"allOf": [found[key], sub]}
    return found


_NO_DEFAULT = object()


def _default(node: Any) -> Any:
    """The default a (possibly combined) property schema declares, else _NO_DEFAULT."""
    node = resolve(node)
    if not isinstance(node, dict):
        return _NO_DEFAULT
    if "default" in node:
        return node["default"]
    for part in node.get("allOf", ()):
        if (found := _default(part)) is not _NO_DEFAULT:
            return found
    return _NO_DEFAULT


def with_defaults(instance: Any, node: Any) -> Any:
    """A copy of `instance` with every missing key that has a schema default filled in.
    `instance` itself is not changed."""
    node = resolve(node)
    if isinstance(instance, dict):
        properties = properties_for(instance, node)
        filled = {
            key: with_defaults(value, properties.get(key, True)) for key, value in instance.items()
        }
        for key, sub in properties.items():
            if key not in filled and (default := _default(sub)) is not _NO_DEFAULT:
                filled[key] = with_defaults(copy.deepcopy(default), sub)
        return filled
    if isinstance(instance, list):
        items = node.get("items", True) if isinstance(node, dict) else True
        return [with_defaults(item, items) for item in instance]
    return instance


def json_safe(value: Any) -> Any:
    """A copy of `value` where infinite floats (JSON has none) are "Infinity" strings."""
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value
