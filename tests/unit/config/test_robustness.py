"""Whatever a config file holds, loading it gives a Config or a ConfigError: never a
traceback. Random damage is applied to the valid corpus configs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palhm.config import load_config
from palhm.config.jsonc import parse_jsonc
from palhm.errors import ConfigError
from palhm.model import Config
from tests.helpers import REPO

GOOD = REPO / "tests" / "configs" / "good"
SEEDS = [
    parse_jsonc(path.read_text())
    for path in sorted(GOOD.iterdir())
    if path.is_file() and "include" not in parse_jsonc(path.read_text())
]
SEEDS.append(
    parse_jsonc((REPO / "src" / "palhm" / "data" / "sample.jsonc").read_text()) | {"include": []}
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "/x",
            "exec",
            "task",
            "backup",
            "localfs",
            "aws-s3",
            "TERM",
            "<2",
            "inf",
            "750",
        ]
    ),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "type", "path", "argv", "exec-id", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict | list):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, out)
    return out


def _damage(document: dict[str, Any], data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        target = data.draw(st.sampled_from(_containers(document, [])))
        if not target:
            continue
        if isinstance(target, dict):
            key = data.draw(st.sampled_from(sorted(target)))
            action = data.draw(st.sampled_from(["replace", "delete"]))
            if action == "delete" and target is not document:
                del target[key]
            else:
                target[key] = data.draw(values)
        else:
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(values)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_configs_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(SEEDS)))
    _damage(document, data)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(document))
    try:
        result = load_config(path)
    except ConfigError as error:
        assert error.problems
        assert all(str(problem).startswith(f"{path}: ") for problem in error.problems)
    else:
        assert isinstance(result, Config)
