"""run_pipeline with real processes: data paths, statuses, root cause (doc/design.md#execution)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from palhm.engine.execute import PipelineResult, StageResult, run_pipeline
from palhm.errors import BackendError, PipelineError
from palhm.model import Exec
from tests.integration.execute_support import (
    FailingSink,
    FileSink,
    MemorySink,
    bounded,
    ex,
    py,
)

CONTEXT = "task 'backup', object 'db.sql.zst'"
SEQ = ("seq", "1", "300000")


def expected_seq_bytes() -> bytes:
    return subprocess.run(SEQ, capture_output=True, check=True).stdout


def pipe(stages: list[Exec], sink: object, **options: object) -> PipelineResult:
    return bounded(
        lambda: run_pipeline(stages, sink, context=CONTEXT, verbosity=0, **options)  # type: ignore[arg-type]
    )


def failure(stages: list[Exec], sink: object | None = None, **options: object) -> PipelineError:
    sink = MemorySink() if sink is None else sink
    with pytest.raises(PipelineError) as caught:
        pipe(stages, sink, **options)
    assert getattr(sink, "aborted", True), "the sink must be aborted on failure"
    return caught.value


# --------------------------------------------------------------------------- data paths


def test_hashed_path_stores_every_byte_and_digests_them() -> None:
    sink = MemorySink()
    result = pipe([ex(*SEQ), ex("gzip", "-1"), ex("gzip", "-d")], sink, hasher=hashlib.sha256())
    data = expected_seq_bytes()
    assert bytes(sink.data) == data
    assert result.size == len(data)
    assert result.digest == hashlib.sha256(data).hexdigest()
    assert sink.closed and not sink.aborted


def test_small_blocks_reach_the_sink_full_except_the_last() -> None:
    sink = MemorySink()
    result = pipe([ex(*SEQ)], sink, hasher=hashlib.sha256(), block_size=4096)
    assert result.size == len(expected_seq_bytes())
    assert all(size == 4096 for size in sink.chunk_sizes[:-1])
    assert 0 < sink.chunk_sizes[-1] <= 4096


def test_sink_without_fd_is_fed_even_without_hasher() -> None:
    sink = MemorySink()
    result = pipe([ex(*SEQ)], sink)
    assert result.digest is None
    assert result.size == len(expected_seq_bytes()) == len(sink.data)


def test_fd_path_writes_straight_into_the_sink_fd(tmp_path: Path) -> None:
    target = tmp_path / "object"
    sink = FileSink(target)
    result = pipe([ex(*SEQ), ex("gzip", "-1")], sink)
    assert sink.writes == 0, "no chunk may go through Python on the fd path"
    stored = target.read_bytes()
    assert result.size == len(stored)
    assert subprocess.run(["gzip", "-d"], input=stored, capture_output=True).stdout == (
        expected_seq_bytes()
    )


def test_hasher_forces_the_read_path_even_when_an_fd_is_offered(tmp_path: Path) -> None:
    target = tmp_path / "object"
    sink = FileSink(target)
    result = pipe([ex(*SEQ)], sink, hasher=hashlib.sha256())
    assert sink.writes > 0
    assert result.digest == hashlib.sha256(target.read_bytes()).hexdigest()


def test_progress_reports_growing_totals_ending_at_the_size() -> None:
    seen: list[int] = []
    result = pipe([ex(*SEQ)], MemorySink(), block_size=65536, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == result.size


def test_empty_output_is_a_valid_empty_object() -> None:
    sink = MemorySink()
    result = pipe([ex("true")], sink, hasher=hashlib.sha256())
    assert result.size == 0
    assert result.digest == hashlib.sha256(b"").hexdigest()
    assert sink.closed


def test_stage_results_record_every_status() -> None:
    result = pipe([ex(*SEQ, id="numbers"), ex("sh", "-c", "cat; exit 1", ec="<2")], MemorySink())
    assert result.stages == (
        StageResult(argv=SEQ, label="numbers", status=0, signal=None, accepted=True),
        StageResult(
            argv=("sh", "-c", "cat; exit 1"), label="sh", status=1, signal=None, accepted=True
        ),
    )


def test_env_is_added_for_each_stage() -> None:
    sink = MemorySink()
    pipe([ex("env", env={"PALHM_STAGE": "one"}), ex("cat")], sink)
    lines = bytes(sink.data).decode().splitlines()
    assert "PALHM_STAGE=one" in lines
    assert f"PATH={os.environ['PATH']}" in lines


def test_stdout_of_stages_never_reaches_palhm_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    sink = MemorySink()
    stages = [ex("echo", "payload", vl_stdout=0), ex("cat", vl_stdout=0)]
    bounded(lambda: run_pipeline(stages, sink, context=CONTEXT, verbosity=9))
    assert capfd.readouterr().out == ""
    assert bytes(sink.data) == b"payload\n"


def test_stderr_of_every_stage_is_routed_by_its_level(capfd: pytest.CaptureFixture[str]) -> None:
    first = py("import sys; print('err-one', file=sys.stderr); print('data')")
    second = py(
        "import sys; sys.stdout.write(sys.stdin.read()); print('err-two', file=sys.stderr)",
        vl_stderr=3,
    )
    sink = MemorySink()
    bounded(lambda: run_pipeline([first, second], sink, context=CONTEXT, verbosity=2))
    err = capfd.readouterr().err
    assert "err-one" in err
    assert "err-two" not in err
    assert bytes(sink.data) == b"data\n"


def test_chatty_stderr_in_every_stage_does_not_deadlock() -> None:
    noisy = (
        "import sys; sys.stderr.write('e' * 2_000_000 + '\\n');"
        " sys.stdout.write(sys.stdin.read() or 'x')"
    )
    result = pipe([py(noisy), py(noisy), py(noisy)], MemorySink())
    assert result.size == 1


# --------------------------------------------------------------------------- failures


def test_failed_stage_is_named_with_index_label_argv_status_and_stderr() -> None:
    stages = [
        ex(*SEQ),
        py(
            "import sys; sys.stdin.read(); print('zstd: bad level', file=sys.stderr); sys.exit(2)",
            id="filter-zstd-plain",
        ),
    ]
    error = failure(stages)
    assert error.context == f"{CONTEXT}, stage 2 (filter-zstd-plain)"
    assert error.outcome == "exited with status 2"
    assert error.stderr_tail == ["zstd: bad level"]
    assert str(error).startswith(f"{CONTEXT}, stage 2 (filter-zstd-plain): ")


def test_downstream_failure_is_reported_not_the_upstream_sigpipe() -> None:
    error = failure([ex("yes"), ex("head", "-c1"), ex("false")])
    assert error.context.endswith("stage 3 (false)")
    assert error.outcome == "exited with status 1"


def test_stage_that_stops_reading_early_blames_the_killed_writer() -> None:
    error = failure([ex("yes"), ex("head", "-c1")])
    assert error.context.endswith("stage 1 (yes)")
    assert error.outcome == "killed by SIGPIPE (stage 2 (head) stopped reading early)"


def test_upstream_failure_with_healthy_downstream_is_reported() -> None:
    error = failure([ex("sh", "-c", "echo partial; exit 5"), ex("cat")])
    assert error.context.endswith("stage 1 (sh)")
    assert error.outcome == "exited with status 5"


def test_writer_that_ignores_sigpipe_does_not_hide_the_real_failure() -> None:
    # exits 1 on EPIPE instead of dying of SIGPIPE: still a consequence
    writer = py(
        "import signal, sys\nsignal.signal(signal.SIGPIPE, signal.SIG_IGN)\n"
        "while True: sys.stdout.buffer.write(b'y' * 65536)"
    )
    reader = ex("sh", "-c", "head -c 10 >/dev/null; exit 6", id="picky")
    error = failure([writer, reader])
    assert error.context.endswith("stage 2 (picky)")
    assert error.outcome == "exited with status 6"


def test_upstream_killed_by_another_signal_is_reported() -> None:
    error = failure([ex("sh", "-c", "echo x; kill -KILL $$"), ex("cat")])
    assert error.context.endswith("stage 1 (sh)")
    assert error.outcome == "killed by SIGKILL"


def test_same_exec_twice_first_instance_failing_is_reported() -> None:
    # passes its input on if it is "ok", else says so and fails: the second instance
    # (fed "ok") succeeds, so only checking the last process would report success
    check = py(
        "import sys\ndata = sys.stdin.buffer.read()\nprint('ok')\n"
        "sys.exit(0 if data == b'ok\\n' else 4)",
        id="check",
    )
    error = failure([ex("echo", "bad"), check, check])
    assert error.context.endswith("stage 2 (check)")
    assert error.outcome == "exited with status 4"


def test_same_exec_twice_both_succeeding_is_fine() -> None:
    cat = ex("cat", id="relay")
    result = pipe([ex("echo", "hi"), cat, cat], MemorySink())
    assert [stage.label for stage in result.stages] == ["echo", "relay", "relay"]
    assert all(stage.accepted for stage in result.stages)


def test_sink_error_is_reported_and_stages_are_stopped() -> None:
    sink = FailingSink(limit=3 << 20)
    with pytest.raises(BackendError) as caught:
        pipe([ex("yes")], sink, hasher=hashlib.sha256())
    assert "No space left on device" in str(caught.value)
    assert sink.aborted and not sink.closed


def test_sink_error_beats_the_sigpipe_it_causes_upstream() -> None:
    sink = FailingSink(limit=1 << 20)
    with pytest.raises(BackendError):
        pipe([ex("yes"), ex("cat"), ex("cat")], sink)
    assert sink.aborted


def test_full_device_behind_the_splice_fd_raises_backend_error() -> None:
    # /dev/full cannot be spliced into: palhm falls back to write(), which fails
    sink = FileSink("/dev/full")
    with pytest.raises(BackendError) as caught:
        pipe([ex("yes"), ex("cat", id="last")], sink)
    assert "No space left on device" in str(caught.value)
    assert sink.aborted


def test_full_device_on_the_read_path_raises_backend_error() -> None:
    sink = FileSink("/dev/full", offer_fd=False)
    with pytest.raises(BackendError) as caught:
        pipe([ex("yes")], sink)
    assert "No space left on device" in str(caught.value)
    assert sink.aborted


def test_stage_that_cannot_start_stops_the_started_ones() -> None:
    error = failure([ex("yes"), ex("/nonexistent/palhm-prog", id="ghost"), ex("cat")])
    assert error.context.endswith("stage 2 (ghost)")
    assert error.outcome.startswith("could not be started")


def test_timeout_kills_a_stuck_stage_and_reports_it() -> None:
    error = failure([ex("sleep", "100", timeout=0.5, id="stuck"), ex("cat")])
    assert error.context.endswith("stage 1 (stuck)")
    assert error.outcome == "timed out after 0.5 s"


def test_timeout_of_a_downstream_stage_wins_over_the_failures_it_causes() -> None:
    stages = [ex("yes"), ex("sh", "-c", "head -c1 >/dev/null; sleep 100", timeout=0.4)]
    error = failure(stages)
    assert error.context.endswith("stage 2 (sh)")
    assert error.outcome == "timed out after 0.4 s"


def test_empty_pipeline_is_refused() -> None:
    with pytest.raises(ValueError):
        run_pipeline([], MemorySink(), context=CONTEXT, verbosity=0)


def test_fd_path_progress_follows_the_sink_offset(tmp_path: Path) -> None:
    seen_first_part = tmp_path / "seen"

    def progress(total: int) -> None:
        if total == 100_000:
            seen_first_part.touch()  # lets the stage write the rest

    stage = ex(
        "sh",
        "-c",
        f"head -c 100000 /dev/zero; while [ ! -e {seen_first_part} ]; do sleep 0.01; done;"
        " head -c 10 /dev/zero",
    )
    result = pipe([stage], FileSink(tmp_path / "object"), progress=progress)
    assert result.size == 100_010
    assert seen_first_part.exists()


@pytest.mark.parametrize(
    ("stages", "stage", "outcome"),
    [
        (["yes", "head -c1", "false"], 3, "exited with status 1"),
        (["yes", "head -c1"], 1, "killed by SIGPIPE (stage 2 (head) stopped reading early)"),
    ],
)
def test_exits_are_seen_without_pidfd_support(
    monkeypatch: pytest.MonkeyPatch, stages: list[str], stage: int, outcome: str
) -> None:
    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    error = failure([ex(*text.split()) for text in stages])
    assert error.context.endswith(f"stage {stage} ({stages[stage - 1].split()[0]})")
    assert error.outcome == outcome
    result = pipe([ex(*SEQ), ex("cat")], MemorySink(), hasher=hashlib.sha256())
    assert result.size == len(expected_seq_bytes())


def test_without_checksum_a_file_sink_is_spliced_into_never_given_to_the_stage(
    tmp_path: Path,
) -> None:
    target = tmp_path / "object"
    sink = FileSink(target)
    result = pipe([ex(*SEQ[:1], "1", "3")], sink)
    assert sink.writes == 0  # spliced by palhm, not written through write()
    assert target.read_bytes() == b"1\n2\n3\n" and result.size == 6
    probe = "import os, sys; sys.stdout.write(os.readlink('/proc/self/fd/1'))"
    pipe([py(probe)], FileSink(target))
    assert target.read_text().startswith("pipe:[")  # the stage's stdout is palhm's pipe


def test_a_sink_reporting_another_size_than_it_was_given_fails_the_object() -> None:
    class Lying(MemorySink):
        def close(self) -> int:
            return len(self.data) + 1

    sink = Lying()
    with pytest.raises(BackendError, match="reports 7 bytes stored, 6 were written"):
        pipe([ex(*SEQ[:1], "1", "3")], sink, hasher=hashlib.sha256())
