"""The stdout MUA prints what it would send."""

from __future__ import annotations

import pytest

from palhm.notify.mua import create_mua


def test_stdout_mua_prints_subject_recipients_and_body(capsys: pytest.CaptureFixture[str]) -> None:
    mua = create_mua("stdout", {})
    mua.send(subject="Hi from h1", body="boot-report:\n  hostname: h1\n", recipients=["a", "b"])
    out = capsys.readouterr().out
    assert out == "Subject: Hi from h1\nTo: a, b\n\nboot-report:\n  hostname: h1\n"


def test_stdout_mua_ends_output_with_a_newline(capsys: pytest.CaptureFixture[str]) -> None:
    create_mua("stdout", {}).send(subject="s", body="no newline", recipients=["r"])
    assert capsys.readouterr().out.endswith("no newline\n")
