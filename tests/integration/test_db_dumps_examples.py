"""The shipped database example configs are valid as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO, run_palhm

EXAMPLES = REPO / "src" / "palhm" / "data" / "examples"


@pytest.mark.parametrize("name", ["mariadb.jsonc", "postgresql.jsonc", "openldap.jsonc"])
def test_database_example_passes_config_check(name: str) -> None:
    example: Path = EXAMPLES / name

    done = run_palhm(["-f", str(example), "config", "check"])

    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
