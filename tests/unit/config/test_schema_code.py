"""The generated fast validator (src/palhm/config/_schema_code.py) matches schema.json."""

from __future__ import annotations

import re
import subprocess
import sys

import fastjsonschema
from scripts.gen_validator import COMMAND, MODULE_PATH, SCHEMA_PATH, render, schema_digest

from palhm.config import _schema_code
from palhm.config.validate import _definition_function, schema, schema_issues

STALE = f"src/palhm/config/_schema_code.py is stale against schema.json: run {COMMAND}"


def test_generated_validator_is_up_to_date_with_schema_json() -> None:
    schema_text = SCHEMA_PATH.read_text(encoding="utf-8")
    module_text = MODULE_PATH.read_text(encoding="utf-8")
    recorded = re.search(r"^# schema\.json sha256: ([0-9a-f]{64})$", module_text, re.M)
    assert recorded is not None and recorded.group(1) == schema_digest(schema_text), STALE
    generator = re.search(r'^VERSION = "([^"]+)"$', module_text, re.M)
    assert generator is not None
    if generator.group(1) == fastjsonschema.VERSION:  # same generator: the same text
        assert module_text == render(schema_text), STALE


def test_every_schema_definition_has_its_generated_function() -> None:
    for name in schema()["definitions"]:
        assert callable(getattr(_schema_code, _definition_function(name))), name


def test_a_definition_is_checked_by_its_own_function() -> None:
    assert schema_issues("f.json", {"id": "x", "argv": ["ls"]}, definition="exec") == []
    (issue,) = schema_issues("f.json", {"id": "x", "argv": []}, definition="exec")
    assert "non-empty" in issue.message or "at least" in issue.message


def test_checking_a_config_neither_compiles_a_schema_nor_imports_jsonschema() -> None:
    code = (
        "import sys\n"
        "from palhm.config import load_config\n"
        "load_config('builtin:sample')\n"
        "slow = ('fastjsonschema', 'jsonschema')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in slow))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
