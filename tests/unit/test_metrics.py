"""The Prometheus textfile (doc/design.md#notifications), checked with a strict parser of the text
format."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from palhm.notify.metrics import RunMetrics, update_textfile
from tests.prometheus_text import FormatError, by_task, parse_prometheus

# --------------------------------------------------------------------------- tests

ALL_BACKUP_METRICS = {
    "palhm_last_run_timestamp_seconds",
    "palhm_last_run_duration_seconds",
    "palhm_last_run_success",
    "palhm_last_success_timestamp_seconds",
    "palhm_last_run_bytes_written",
    "palhm_copies_kept",
}


def backup_run(task: str = "db", **changes: object) -> RunMetrics:
    values: dict[str, object] = {
        "task_id": task,
        "end_time": 1_700_000_000.25,
        "duration": 12.5,
        "success": True,
        "backup": True,
        "bytes_written": 123_456_789,
        "copies_kept": 7,
    }
    values.update(changes)
    return RunMetrics(**values)  # type: ignore[arg-type]


def test_backup_run_writes_every_series_as_typed_gauges(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    update_textfile(path, backup_run())
    families = parse_prometheus(path.read_text())
    assert set(families) == ALL_BACKUP_METRICS
    for family in families.values():
        assert family.type == "gauge"
        assert family.help
    assert by_task(families, "palhm_last_run_bytes_written") == {"db": 123_456_789}
    assert by_task(families, "palhm_copies_kept") == {"db": 7}
    assert by_task(families, "palhm_last_run_success") == {"db": 1}
    assert by_task(families, "palhm_last_run_timestamp_seconds") == {"db": 1_700_000_000.25}
    assert by_task(families, "palhm_last_run_duration_seconds") == {"db": 12.5}


def test_other_tasks_series_are_kept_and_this_tasks_replaced(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    update_textfile(path, backup_run("db", bytes_written=1))
    update_textfile(path, backup_run("etc", bytes_written=2))
    update_textfile(path, backup_run("db", bytes_written=3))
    families = parse_prometheus(path.read_text())
    assert by_task(families, "palhm_last_run_bytes_written") == {"db": 3, "etc": 2}


def test_failed_run_keeps_last_success_time_and_copies_kept(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    update_textfile(path, backup_run(end_time=100.0, copies_kept=5))
    failed = backup_run(end_time=200.0, success=False, bytes_written=None, copies_kept=None)
    update_textfile(path, failed)
    families = parse_prometheus(path.read_text())
    assert by_task(families, "palhm_last_run_success") == {"db": 0}
    assert by_task(families, "palhm_last_run_timestamp_seconds") == {"db": 200}
    assert by_task(families, "palhm_last_success_timestamp_seconds") == {"db": 100}
    assert by_task(families, "palhm_copies_kept") == {"db": 5}
    assert by_task(families, "palhm_last_run_bytes_written") == {"db": 0}


def test_routine_run_has_no_backup_series(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    update_textfile(
        path, RunMetrics("cleanup", end_time=50.0, duration=1.0, success=True, backup=False)
    )
    families = parse_prometheus(path.read_text())
    assert set(families) == {
        "palhm_last_run_timestamp_seconds",
        "palhm_last_run_duration_seconds",
        "palhm_last_run_success",
        "palhm_last_success_timestamp_seconds",
    }


def test_task_ids_with_quotes_and_backslashes_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    odd = 'a"b\\c'
    update_textfile(path, backup_run(odd))
    update_textfile(path, backup_run("plain"))
    families = parse_prometheus(path.read_text())
    assert set(by_task(families, "palhm_copies_kept")) == {odd, "plain"}


def test_foreign_metrics_in_the_file_survive_an_update(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    path.write_text(
        '# HELP site_info Something else.\n# TYPE site_info gauge\nsite_info{site="x"} 1\n'
    )
    update_textfile(path, backup_run())
    families = parse_prometheus(path.read_text())
    assert families["site_info"].samples == {(("site", "x"),): 1.0}
    assert "palhm_copies_kept" in families


def test_damaged_sample_is_dropped_and_the_file_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "palhm.prom"
    path.write_text('palhm_copies_kept{task="old"} not-a-number\n')
    update_textfile(path, backup_run())
    families = parse_prometheus(path.read_text())
    assert by_task(families, "palhm_copies_kept") == {"db": 7}


def test_file_is_replaced_whole_readable_by_others_and_no_temp_file_stays(
    tmp_path: Path,
) -> None:
    path = tmp_path / "palhm.prom"
    path.write_text("")
    before = path.stat().st_ino
    update_textfile(path, backup_run())
    assert path.stat().st_ino != before  # renamed into place, never rewritten in place
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        update_textfile(tmp_path / "absent" / "palhm.prom", backup_run())


def test_strict_parser_rejects_what_prometheus_rejects() -> None:
    # the parser used above must be able to fail
    with pytest.raises(FormatError):
        parse_prometheus('m{task="a"} 1\nother 2\nm{task="b"} 3\n')  # not contiguous
    with pytest.raises(FormatError):
        parse_prometheus("m 1\n# TYPE m gauge\n")  # TYPE after samples
    with pytest.raises(FormatError):
        parse_prometheus('m{task="a"} 1\nm{task="a"} 2\n')  # duplicate series
    with pytest.raises(FormatError):
        parse_prometheus("m 1")  # no final newline


def test_a_drill_replaces_only_the_drill_series_and_a_run_keeps_them(tmp_path: Path) -> None:
    from palhm.notify.metrics import DrillMetrics, update_drill_textfile

    path = tmp_path / "palhm.prom"
    update_textfile(path, RunMetrics("db", 1000.0, 5.0, True, backup=True, bytes_written=7))
    update_drill_textfile(path, DrillMetrics("other", 1500.0, 1.0, True))
    update_drill_textfile(path, DrillMetrics("db", 2000.0, 30.0, True))
    update_drill_textfile(path, DrillMetrics("db", 3000.0, 10.0, False))
    update_textfile(path, RunMetrics("db", 4000.0, 5.0, True, backup=True, bytes_written=9))

    families = parse_prometheus(path.read_text())
    assert by_task(families, "palhm_last_drill_timestamp_seconds") == {"db": 3000, "other": 1500}
    assert by_task(families, "palhm_last_drill_duration_seconds") == {"db": 10, "other": 1}
    assert by_task(families, "palhm_last_drill_success_timestamp_seconds") == {
        "db": 2000,
        "other": 1500,
    }
    assert by_task(families, "palhm_last_run_bytes_written") == {"db": 9}
    assert by_task(families, "palhm_last_success_timestamp_seconds") == {"db": 4000}
    assert by_task(families, "palhm_last_drill_success") == {"db": 0, "other": 1}
