"""`run --dry-run` descriptions (doc/operations.md): built from the model, nothing run or
written."""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from palhm.model import (
    BackupObject,
    BackupTask,
    Builtin,
    Config,
    Exec,
    Hooks,
    ObjectGroup,
    PingHook,
    RetentionPolicy,
    RoutineTask,
    SigmaskAction,
    TaskRef,
)
from palhm.ops.plan import describe_plan, group_waves
from palhm.values import ExitCodeSpec, Limit

NOW = datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC)
NOW_PREFIX = "2024-03-05T06:07:08+00:00"


def obj(path: str, group: str, *argvs: tuple[str, ...]) -> BackupObject:
    return BackupObject(path, tuple(Exec(argv) for argv in argvs), group=group)


def diamond_task(root: Path, **changes: object) -> BackupTask:
    """Groups a <- b, c <- d (a diamond), one object each."""
    groups = (
        ObjectGroup("a"),
        ObjectGroup("b", ("a",)),
        ObjectGroup("c", ("a",)),
        ObjectGroup("d", ("b", "c")),
    )
    objects = (
        obj("d.txt", "d", ("echo", "d")),
        obj("c.txt", "c", ("echo", "c")),
        obj("b.txt", "b", ("echo", "b")),
        obj("a.txt", "a", ("echo", "a")),
    )
    values: dict[str, object] = {
        "id": "files",
        "backend": "localfs",
        "objects": objects,
        "groups": groups,
        "backend_param": MappingProxyType({"root": str(root)}),
    }
    values.update(changes)
    return BackupTask(**values)  # type: ignore[arg-type]


def config_of(*tasks: BackupTask | RoutineTask) -> Config:
    return Config(source=Path("test.jsonc"), tasks={t.id: t for t in tasks}, nb_workers=3)


def test_groups_come_in_dependency_waves() -> None:
    task = diamond_task(Path("/nonexistent"))
    assert group_waves(task) == [["a"], ["b", "c"], ["d"]]


def test_backup_plan_lists_copy_path_and_objects_in_wave_order(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    text = describe_plan(config_of(diamond_task(root)), "files", now=NOW)
    assert f"new copy: {root}/{NOW_PREFIX}/" in text
    order = [text.index(f"echo {name}") for name in "abcd"]
    assert order == sorted(order)
    assert "wave 3:" in text
    assert "at most 3 at a time" in text


def test_plan_shows_quoted_argv_env_exit_statuses_timeout_and_pipes(tmp_path: Path) -> None:
    tar = Exec(("tar", "-cf", "-", "/srv/my files"), ec=ExitCodeSpec.parse("<2"), timeout=3600)
    gpg = Exec(
        ("gpg", "-e", "-r", "T <t@example.test>"),
        id="gpg-encrypt",
        env=MappingProxyType({"GNUPGHOME": "/root/.gnupg x"}),
    )
    task = diamond_task(
        tmp_path, objects=(BackupObject("srv.tar.gpg", (tar, gpg), alloc_size=2 << 30),), groups=()
    )
    text = describe_plan(config_of(task), "files", now=NOW)
    assert shlex.join(tar.argv) in text
    assert f"| {shlex.join(gpg.argv)}  [exec gpg-encrypt]" in text
    assert f"env GNUPGHOME={shlex.quote('/root/.gnupg x')}" in text
    assert "accepts exit status <2" in text
    assert "timeout 3600 s" in text
    assert "srv.tar.gpg (alloc-size 2.00 GiB):" in text


def test_dry_run_of_a_missing_root_says_so_and_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "not" / "there"
    text = describe_plan(config_of(diamond_task(root)), "files", now=NOW)
    assert f"{root} does not exist yet" in text
    assert not (tmp_path / "not").exists()
    assert text.rstrip().endswith("dry run: nothing was run or written")


def test_rotation_plan_says_why_each_copy_is_kept_or_removed(tmp_path: Path) -> None:
    old = ["2024-03-01T06:00:00+00:00", "2024-03-02T06:00:00+00:00", "2024-03-02T18:00:00+00:00"]
    for prefix in old:
        (tmp_path / prefix).mkdir()  # legacy copies: prefix-named, no manifest
    (tmp_path / "lost+found").mkdir()
    policy = RetentionPolicy(keep_daily=2)
    text = describe_plan(config_of(diamond_task(tmp_path, retention=policy)), "files", now=NOW)
    lines = {line.split()[1]: line.strip() for line in text.splitlines() if "legacy (" in line}
    assert lines[old[0]].startswith("remove") and "kept by no keep-* rule" in lines[old[0]]
    assert lines[old[1]].startswith("remove")  # an older copy of the same day
    assert lines[old[2]].startswith("keep") and lines[old[2]].endswith("keep-daily")
    new_line = next(line for line in text.splitlines() if NOW_PREFIX in line and "keep" in line)
    assert "current copy" in new_line and "keep-daily" in new_line
    assert "lost+found" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*old, "lost+found"])


def test_hard_cap_names_the_limit_that_removes_a_copy(tmp_path: Path) -> None:
    for day in (1, 2, 3):
        (tmp_path / f"2024-03-0{day}T06:00:00+00:00").mkdir()
    policy = RetentionPolicy(nb_copy_limit=Limit(2))
    text = describe_plan(config_of(diamond_task(tmp_path, retention=policy)), "files", now=NOW)
    removed = [line.split()[1] for line in text.splitlines() if line.strip().startswith("remove")]
    assert removed == ["2024-03-01T06:00:00+00:00", "2024-03-02T06:00:00+00:00"]
    assert "rotation: nb-copy-limit 2" in text


def test_incomplete_copies_are_listed_for_removal(tmp_path: Path) -> None:
    (tmp_path / ".palhm-staging-2024-03-04T00:00:00+00:00").mkdir()
    text = describe_plan(config_of(diamond_task(tmp_path)), "files", now=NOW)
    line = next(line for line in text.splitlines() if line.strip().startswith("remove"))
    assert line.split()[:3] == ["remove", "2024-03-04T00:00:00+00:00", "incomplete"]


def test_prefix_collision_is_announced(tmp_path: Path) -> None:
    (tmp_path / NOW_PREFIX).mkdir()
    text = describe_plan(config_of(diamond_task(tmp_path)), "files", now=NOW)
    assert f"a copy named {NOW_PREFIX} exists" in text


def test_routine_plan_expands_pointers_in_order_and_indented(tmp_path: Path) -> None:
    backup = diamond_task(tmp_path)
    inner = RoutineTask("inner", (Exec(("sync",)),))
    sigmask = Builtin("sigmask", (SigmaskAction("block", (15, 1)),))
    outer = RoutineTask(
        "outer",
        (sigmask, TaskRef("inner"), TaskRef("files"), Exec(("echo", "done; rm -rf /"))),
        hooks=Hooks(on_failure=(PingHook("https://hc.example.test/uuid/fail"),)),
    )
    text = describe_plan(config_of(backup, inner, outer), "outer", now=NOW)
    lines = text.splitlines()
    assert lines[0].startswith("routine task 'outer': 4 item(s)")
    assert "1. builtin sigmask: block SIGTERM, SIGHUP" in lines[1]
    sync = next(line for line in lines if line.strip().endswith("sync"))
    inner_head = next(line for line in lines if "routine task 'inner'" in line)
    assert _indent(sync) > _indent(inner_head)
    assert lines.index(inner_head) < lines.index(sync)
    assert text.index("backup task 'files'") < text.index("echo 'done; rm -rf /'")
    assert "on-failure: ping GET https://hc.example.test/..." in text
    assert sorted(os.listdir(tmp_path)) == []


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
