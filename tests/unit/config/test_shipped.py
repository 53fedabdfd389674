"""The shipped config files: conf.d/core.json, sample.jsonc, and doc/config.md."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from palhm.config import load_config
from tests.helpers import CORE_JSON, REPO

# Exec ids of the original PALHM's core.json: old configs name them.
ORIGINAL_IDS = (
    "tar",
    "filter-xz-parallel",
    "filter-gzip-plain",
    "filter-zstd-plain",
    "filter-zstd-parallel",
    "rpm-list-installed",
    "dnf-list-installed",
    "dpkg-list-installed",
    "lsblk-all-json",
    "os-release",
    "dig-dnssec",
    "grep-any",
    "null-stdout-sink",
)


def test_core_json_keeps_the_original_exec_ids_and_adds_the_filters() -> None:
    execs = load_config(CORE_JSON).execs
    assert set(ORIGINAL_IDS) <= set(execs)
    assert {"filter-xz-plain", "filter-gzip-parallel"} <= set(execs)


def test_core_json_programs_live_in_usr_bin() -> None:
    # /usr/bin is right on Debian and Fedora alike (both have merged /usr)
    for exec_ in load_config(CORE_JSON).execs.values():
        assert exec_.argv[0].startswith("/usr/bin/"), exec_


@pytest.mark.parametrize(
    "exec_id",
    [
        "tar",
        "filter-xz-plain",
        "filter-gzip-plain",
        "filter-zstd-parallel",
        "os-release",
        "grep-any",
        "null-stdout-sink",
        "dpkg-list-installed",
        "lsblk-all-json",
    ],
)
def test_core_json_programs_exist_here(exec_id: str) -> None:
    program = load_config(CORE_JSON).execs[exec_id].argv[0]
    assert os.access(program, os.X_OK), program


def test_core_tar_accepts_its_options_and_writes_a_tar_stream(tmp_path: Path) -> None:
    tar = load_config(CORE_JSON).execs["tar"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("content")
    done = subprocess.run(
        [*tar.argv, "-C", str(tmp_path), "data"], capture_output=True, check=False
    )
    assert tar.ec.accepts(done.returncode), done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        assert sorted(archive.getnames()) == ["data", "data/file"]


def test_core_filters_compress_a_stream() -> None:
    execs = load_config(CORE_JSON).execs
    for exec_id, magic in (
        ("filter-zstd-plain", b"\x28\xb5\x2f\xfd"),
        ("filter-xz-parallel", b"\xfd7zXZ"),
        ("filter-gzip-plain", b"\x1f\x8b"),
    ):
        done = subprocess.run(
            execs[exec_id].argv, input=b"palhm " * 1000, capture_output=True, check=True
        )
        assert done.stdout.startswith(magic), exec_id


def test_sample_config_is_valid_and_complete() -> None:
    config = load_config("builtin:sample")
    assert {"default", "backup", "update", "reboot"} <= set(config.tasks)
    assert config.boot_report is not None
    backup = config.tasks["backup"]
    assert backup.backend == "localfs"  # type: ignore[union-attr]


def test_doc_config_md_is_what_the_generator_writes() -> None:
    from scripts.gen_config_doc import DOC_PATH, load_schema, render

    assert DOC_PATH == REPO / "doc" / "config.md"
    assert DOC_PATH.read_text(encoding="utf-8") == render(load_schema()), (
        "doc/config.md is stale: run .venv/bin/python scripts/gen_config_doc.py"
    )


def test_doc_has_a_linked_section_for_every_titled_definition() -> None:
    from scripts.gen_config_doc import anchor, load_schema, render

    schema = load_schema()
    text = render(schema)
    for node in schema["definitions"].values():
        if "title" in node:
            assert f"\n## {node['title']}\n" in text
            assert f"](#{anchor(node['title'])})" in text, node["title"]
