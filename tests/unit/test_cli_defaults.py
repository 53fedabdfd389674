"""The default config path fallback (doc/design.md#command-line): palhm.conf, else palhm.jsonc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from palhm.cli import main as cli

DOC = {"tasks": [{"id": "default", "type": "routine", "routine": []}]}


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    conf, jsonc = tmp_path / "palhm.conf", tmp_path / "palhm.jsonc"
    monkeypatch.setattr(cli, "DEFAULT_CONFIG_PATHS", (conf, jsonc))
    return tmp_path


def test_palhm_conf_is_used_first(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "palhm.conf").write_text(json.dumps(DOC))
    (etc / "palhm.jsonc").write_text("{ broken")
    assert cli.main(["config", "check"]) == 0
    assert str(etc / "palhm.conf") in capsys.readouterr().out


def test_palhm_jsonc_is_the_fallback(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "palhm.jsonc").write_text("// comment\n" + json.dumps(DOC))
    assert cli.main(["config", "check"]) == 0
    assert str(etc / "palhm.jsonc") in capsys.readouterr().out


def test_no_default_config_is_a_usage_error_naming_both(
    etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert "palhm.conf" in err and "palhm.jsonc" in err and "-f FILE" in err
