"""Includes (doc/design.md#configuration): resolution, diamonds, cycles, load order and merging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from palhm.config import load_config, load_effective
from palhm.config.loader import load_files
from tests.unit.config.util import inline, problems, routine, write


def test_relative_include_resolves_from_the_including_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "etc/conf.d/execs.json", {"execs": [{"id": "ls", "argv": ["/usr/bin/ls"]}]})
    write(tmp_path, "etc/conf.d/more.json", {"include": ["../sub/deeper.json"]})
    write(tmp_path, "etc/sub/deeper.json", {"execs": [{"id": "df", "argv": ["/usr/bin/df"]}]})
    main = write(tmp_path, "etc/palhm.conf", {"include": ["conf.d/execs.json", "conf.d/more.json"]})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert sorted(load_config(main).execs) == ["df", "ls"]


def test_the_f_path_itself_is_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "cfg/inc.json", {"vl": 5})
    write(tmp_path, "cfg/main.json", {"include": ["inc.json"]})
    monkeypatch.chdir(tmp_path)
    config = load_config("cfg/main.json")
    assert config.vl == 5
    assert config.files == ("cfg/inc.json", "cfg/main.json")


def test_absolute_include(tmp_path: Path) -> None:
    inc = write(tmp_path, "abs/inc.json", {"nb-workers": 7})
    main = write(tmp_path, "main.json", {"include": [str(inc)]})
    assert load_config(main).nb_workers == 7


def test_diamond_include_is_loaded_once(tmp_path: Path) -> None:
    write(tmp_path, "common.json", {"execs": [{"id": "tar", "argv": ["/usr/bin/tar"]}]})
    write(tmp_path, "a.json", {"include": ["common.json"]})
    write(tmp_path, "b.json", {"include": ["./common.json"]})
    main = write(tmp_path, "main.json", {"include": ["a.json", "b.json", "common.json"]})
    config = load_config(main)
    assert list(config.execs) == ["tar"]
    assert [Path(f).name for f in config.files] == ["common.json", "a.json", "b.json", "main.json"]


def test_a_symlinked_file_is_the_same_file(tmp_path: Path) -> None:
    write(tmp_path, "real.json", {"execs": [{"id": "tar", "argv": ["/usr/bin/tar"]}]})
    os.symlink(tmp_path / "real.json", tmp_path / "link.json")
    main = write(tmp_path, "main.json", {"include": ["real.json", "link.json"]})
    assert list(load_config(main).execs) == ["tar"]


def test_include_cycle_prints_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "b.jsonc", {"include": ["c.jsonc"]})
    write(tmp_path, "c.jsonc", {"include": ["a.jsonc"]})
    main = write(tmp_path, "a.jsonc", {"include": ["b.jsonc"]})
    b, c = tmp_path / "b.jsonc", tmp_path / "c.jsonc"
    assert problems(main) == [
        f"{c}: at 'include[0]': include cycle: {main} -> {b} -> {c} -> {main}"
    ]


def test_a_file_including_itself_is_a_cycle(tmp_path: Path) -> None:
    main = write(tmp_path, "self.json", {"include": ["self.json"]})
    assert problems(main) == [f"{main}: at 'include[0]': include cycle: {main} -> {main}"]


def test_missing_include_names_the_including_place(tmp_path: Path) -> None:
    main = write(tmp_path, "main.json", {"vl": 1, "include": ["gone.json"]})
    assert problems(main) == [
        f"{main}: at 'include[0]': cannot read '{tmp_path / 'gone.json'}': No such file or "
        "directory"
    ]


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "inc.json", '{"vl": 3,,}')
    main = write(tmp_path, "main.json", {"include": ["inc.json"], "vl": "x", "nb-workers": []})
    assert problems(main) == [
        f"{main}: at 'vl': expected an integer, found a string ('x')",
        f"{main}: at 'nb-workers': expected an integer, found a list",
        f"{tmp_path / 'inc.json'}: line 1, column 10: unexpected ','",
    ]


def test_includes_load_before_the_including_file_so_its_scalars_win(tmp_path: Path) -> None:
    write(tmp_path, "first.json", {"vl": 1, "nb-workers": 3})
    write(tmp_path, "second.json", {"vl": 2})
    main = write(tmp_path, "main.json", {"include": ["first.json", "second.json"], "vl": 4})
    config = load_config(main)
    assert (config.vl, config.nb_workers) == (4, 3)
    write(tmp_path, "main.json", {"include": ["first.json", "second.json"]})
    assert load_config(main).vl == 2


def test_load_order_is_depth_first(tmp_path: Path) -> None:
    write(tmp_path, "a.json", {"include": ["a1.json", "a2.json"]})
    for name in ("a1", "a2", "b"):
        write(tmp_path, f"{name}.json", {})
    main = write(tmp_path, "main.json", {"include": ["a.json", "b.json"]})
    loaded = load_files(main)
    assert [Path(f.name).stem for f in loaded.files] == ["a1", "a2", "a", "b", "main"]


def test_execs_and_tasks_concatenate_and_pointers_reach_any_file(tmp_path: Path) -> None:
    write(tmp_path, "inc.json", {"tasks": [routine("early", {"type": "task", "task-id": "late"})]})
    main = write(
        tmp_path,
        "main.json",
        {"include": ["inc.json"], "tasks": [routine("late", inline("/usr/bin/true"))]},
    )
    assert list(load_config(main).tasks) == ["early", "late"]


def test_same_exec_id_in_two_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "a.jsonc", {"execs": [{"id": "tar", "argv": ["/usr/bin/tar"]}]})
    main = write(
        tmp_path,
        "b.jsonc",
        {
            "include": ["a.jsonc"],
            "execs": [
                {"id": "x", "argv": ["x"]},
                {"id": "y", "argv": ["y"]},
                {"id": "z", "argv": ["z"]},
                {"id": "tar", "argv": ["/bin/tar"]},
            ],
        },
    )
    assert problems(main) == [
        f"{main}: at 'execs[3].id': duplicate exec id 'tar' (first defined in "
        f"{tmp_path / 'a.jsonc'} at 'execs[0]')"
    ]


def test_same_task_id_in_one_file(tmp_path: Path) -> None:
    main = write(tmp_path, "m.json", {"tasks": [routine("t"), routine("t")]})
    assert problems(main) == [
        f"{main}: at 'tasks[1].id': duplicate task id 't' (first defined in {main} at 'tasks[0]')"
    ]


def test_modules_are_united(tmp_path: Path) -> None:
    write(tmp_path, "inc.json", {"modules": ["aws"]})
    main = write(tmp_path, "main.json", {"include": ["inc.json"], "modules": ["aws"]})
    config, effective = load_effective(main)
    assert config.modules == frozenset({"aws"})
    assert effective["modules"] == ["aws"]


def test_boot_report_merges_across_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.json",
        {
            "boot-report": {
                "mua": "mailx",
                "mail-to": ["root"],
                "subject": "A",
                "mua-param": {"exec": "/a"},
            }
        },
    )
    write(
        tmp_path,
        "b.json",
        {"boot-report": {"mail-to": ["ops"], "mua-param": {"int-opts": ["x=y"]}}},
    )
    main = write(
        tmp_path, "main.json", {"include": ["a.json", "b.json"], "boot-report": {"subject": "M"}}
    )
    report = load_config(main).boot_report
    assert report is not None
    assert report.mua == "mailx"
    assert report.mail_to == ("root", "ops")
    assert report.subject == "M"
    assert dict(report.mua_param) == {"exec": "/a", "int_opts": ["x=y"]}


def test_mua_set_in_two_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.json", {"boot-report": {"mua": "mailx", "mail-to": ["root"]}})
    main = write(tmp_path, "b.json", {"include": ["a.json"], "boot-report": {"mua": "stdout"}})
    assert problems(main) == [
        f"{main}: at 'boot-report.mua': 'mua' is already set in {tmp_path / 'a.json'} (set it in "
        "one file only)"
    ]


def test_builtin_configs_and_their_relative_includes() -> None:
    config = load_config("builtin:sample")
    assert config.files[0] == "builtin:conf.d/core.json"
    assert config.files[-1] == "builtin:sample"
    assert "tar" in config.execs


def test_builtin_include_from_a_user_file(tmp_path: Path) -> None:
    main = write(tmp_path, "main.json", {"include": ["builtin:conf.d/core.json"]})
    assert "dig-dnssec" in load_config(main).execs


@pytest.mark.parametrize(
    "name", ["builtin:nothing", "builtin:../cli", "builtin:/etc/passwd", "builtin:"]
)
def test_unknown_builtin_is_a_config_error(name: str) -> None:
    (line,) = problems(name)
    assert line.startswith(f"{name}: no packaged config ")
    assert "sample" in line


def test_an_include_of_a_fifo_or_device_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.jsonc"
    os.mkfifo(fifo)
    main = write(tmp_path, "main.jsonc", {"include": [str(fifo), "/dev/zero"]})
    found = problems(main)
    assert any("include[0]" in p and "not a regular file" in p for p in found)
    assert any("include[1]" in p and "'/dev/zero'" in p for p in found)


def test_an_include_path_with_a_nul_byte_is_a_config_error(tmp_path: Path) -> None:
    main = write(tmp_path, "main.jsonc", '{"include": ["a\\u0000b.json"]}')
    assert problems(main) == [f"{main}: at 'include[0]': an include path cannot hold a NUL byte"]
