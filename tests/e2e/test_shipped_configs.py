"""Every config palhm ships validates where it is shipped, and where the docs say to
install it (/etc/palhm/palhm.conf + conf.d/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import CORE_JSON, REPO, run_palhm, write_config

EXAMPLES = sorted((REPO / "src" / "palhm" / "data" / "examples").glob("*.jsonc"))


@pytest.mark.parametrize("config", [str(p) for p in EXAMPLES] + ["builtin:demo", "builtin:sample"])
def test_shipped_config_passes_config_check(config: str) -> None:
    done = run_palhm(["-f", config, "config", "check"], cwd="/")
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_dnssec_example_in_conf_d_beside_core_json_is_loaded_once(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    shutil.copy(CORE_JSON, conf_d / "core.json")
    shutil.copy(REPO / "src/palhm/data/examples/dnssec.jsonc", conf_d / "dnssec.jsonc")
    # the main file and the example both include core.json: a diamond, not a duplicate
    main = write_config(
        tmp_path / "palhm.conf", {"include": ["conf.d/core.json", "conf.d/dnssec.jsonc"]}
    )
    done = run_palhm(["-f", str(main), "config", "check"], cwd="/")
    assert done.returncode == 0, done.stderr
    assert "2 tasks" in done.stdout
