"""palhm.engine.judge: when to stop and what to report, from plain data (no process)."""

from __future__ import annotations

import signal

from palhm.engine.judge import (
    Ending,
    StageResult,
    culprit,
    failure,
    place,
    results,
    stop_reason,
    wait_time,
)
from palhm.errors import BackendError, Cancelled, CommandError, PipelineError
from palhm.model import Exec
from palhm.values import ExitCodeSpec

TAR = Exec(argv=("tar", "-c", "/etc"))
ZSTD = Exec(argv=("zstd",), id="compress")
GPG = Exec(argv=("gpg", "-e"))


def exited(cmd: Exec, index: int, status: int, **fields: bool) -> Ending:
    return Ending(cmd, index, status=status, exited=True, **fields)  # type: ignore[arg-type]


def killed(cmd: Exec, index: int, signum: int, **fields: bool) -> Ending:
    return Ending(cmd, index, signum=signum, exited=True, **fields)  # type: ignore[arg-type]


def running(cmd: Exec, index: int, deadline: float | None = None) -> Ending:
    return Ending(cmd, index, deadline=deadline)


def test_a_status_is_accepted_by_the_exec_ec_only() -> None:
    lenient = Exec(argv=("grep",), ec=ExitCodeSpec.parse("<2"))
    assert exited(lenient, 0, 1).accepted
    assert not exited(lenient, 0, 2).accepted
    assert not exited(TAR, 0, 1).accepted
    assert not killed(TAR, 0, signal.SIGTERM).accepted  # a signal is never success
    assert not running(TAR, 0).accepted


def test_the_run_stops_when_a_stage_fails_on_its_own() -> None:
    endings = [running(TAR, 0), exited(ZSTD, 1, 1)]
    assert stop_reason(endings, now=0.0, cancelled=False) == "failed"


def test_an_upstream_sigpipe_alone_does_not_stop_the_run() -> None:
    endings = [killed(TAR, 0, signal.SIGPIPE), running(ZSTD, 1)]
    assert stop_reason(endings, now=0.0, cancelled=False) is None


def test_a_stage_past_its_deadline_is_marked_timed_out() -> None:
    late = running(ZSTD, 1, deadline=10.0)
    endings = [running(TAR, 0, deadline=50.0), late]
    assert stop_reason(endings, now=9.0, cancelled=False) is None
    assert stop_reason(endings, now=10.0, cancelled=False) == "timeout"
    assert late.timed_out
    assert not endings[0].timed_out


def test_a_failure_is_reported_before_a_timeout_and_a_timeout_before_cancel() -> None:
    assert stop_reason([exited(TAR, 0, 2), running(ZSTD, 1, 1.0)], now=5, cancelled=True) == (
        "failed"
    )
    assert stop_reason([running(TAR, 0, 1.0)], now=5.0, cancelled=True) == "timeout"
    assert stop_reason([running(TAR, 0)], now=5.0, cancelled=True) == "cancel"


def test_the_wait_ends_at_the_next_deadline_of_a_running_child() -> None:
    endings = [running(TAR, 0, deadline=3.0), exited(ZSTD, 1, 0), running(GPG, 2)]
    assert wait_time(endings, now=2.5, longest=1.0) == 0.5
    assert wait_time(endings, now=5.0, longest=0.1) == 0.0  # already past: no sleep
    assert wait_time([running(GPG, 0)], now=0.0, longest=0.1) == 0.1


def test_the_root_cause_is_downstream_not_the_upstream_sigpipe() -> None:
    endings = [killed(TAR, 0, signal.SIGPIPE), exited(ZSTD, 1, 0), exited(GPG, 2, 2)]
    assert culprit(endings) is endings[2]


def test_a_sigpipe_is_the_cause_only_when_nothing_else_failed() -> None:
    endings = [exited(TAR, 0, 0), killed(ZSTD, 1, signal.SIGPIPE), exited(GPG, 2, 0)]
    assert culprit(endings) is endings[1]


def test_ends_after_palhm_began_killing_are_consequences() -> None:
    endings = [
        exited(TAR, 0, 3),
        killed(ZSTD, 1, signal.SIGTERM, after_kill=True),
        killed(GPG, 2, signal.SIGKILL, after_kill=True),
    ]
    assert culprit(endings) is endings[0]


def test_the_timed_out_stage_is_the_cause_whatever_the_others_did() -> None:
    late = killed(TAR, 0, signal.SIGTERM, after_kill=True, timed_out=True)
    assert culprit([late, exited(ZSTD, 1, 1)]) is late


def test_success_has_no_culprit_and_no_failure() -> None:
    endings = [exited(TAR, 0, 0), exited(ZSTD, 1, 0)]
    assert culprit(endings) is None
    assert failure(None, endings, context="t", pipeline=True) is None


def test_pipeline_failure_names_the_stage_its_argv_outcome_and_stderr() -> None:
    gpg = exited(GPG, 2, 2)
    gpg.tail.feed(b"gpg: no public key\n")
    endings = [killed(TAR, 0, signal.SIGPIPE), exited(ZSTD, 1, 0), gpg]
    error = failure("failed", endings, context="task 't', object 'o'", pipeline=True)
    assert isinstance(error, PipelineError)
    assert str(error) == (
        "task 't', object 'o', stage 3 (gpg): gpg -e exited with status 2\n  | gpg: no public key"
    )


def test_a_sigpipe_message_names_the_reader_that_stopped_early() -> None:
    endings = [killed(TAR, 0, signal.SIGPIPE), exited(ZSTD, 1, 0)]
    error = failure(None, endings, context="c", pipeline=True)
    assert str(error) == (
        "c, stage 1 (tar): tar -c /etc killed by SIGPIPE (stage 2 (compress) stopped reading early)"
    )
    last = failure(None, [killed(ZSTD, 0, signal.SIGPIPE)], context="c", pipeline=True)
    assert str(last).endswith("killed by SIGPIPE (the sink stopped reading early)")


def test_a_command_failure_names_the_context_and_the_accepted_statuses() -> None:
    lenient = Exec(argv=("grep", "x"), ec=ExitCodeSpec.parse("<2"))
    error = failure("failed", [exited(lenient, 0, 2)], context="task 'r'", pipeline=False)
    assert type(error) is CommandError
    assert str(error) == "task 'r': grep x exited with status 2 (accepted: <2)"


def test_a_timeout_message_gives_the_limit() -> None:
    slow = Exec(argv=("sleep", "9"), timeout=1.5)
    late = killed(slow, 0, signal.SIGTERM, after_kill=True, timed_out=True)
    error = failure("timeout", [late], context="c", pipeline=False)
    assert str(error) == "c: sleep 9 timed out after 1.5 s"


def test_cancel_comes_first_then_the_sink_error() -> None:
    failed = [exited(TAR, 0, 2)]
    sink_error = BackendError("c: No space left on device")
    cancelled = failure("cancel", failed, context="c", pipeline=True, sink_error=sink_error)
    assert isinstance(cancelled, Cancelled)
    assert str(cancelled) == "c: cancelled"
    assert failure("sink", failed, context="c", pipeline=True, sink_error=sink_error) is (
        sink_error
    )


def test_place_names_a_stage_only_in_a_pipeline() -> None:
    assert place("task 't'", 1, ZSTD, pipeline=True) == "task 't', stage 2 (compress)"
    assert place("task 't'", 1, ZSTD, pipeline=False) == "task 't'"


def test_results_record_each_stage() -> None:
    endings = [killed(TAR, 0, signal.SIGPIPE), exited(ZSTD, 1, 0)]
    assert results(endings) == (
        StageResult(("tar", "-c", "/etc"), "tar", None, "SIGPIPE", False),
        StageResult(("zstd",), "compress", 0, None, True),
    )
