"""Notifications around a task run (SPEC C7): `on-start`, `on-success`, `on-failure`
hooks, then the Prometheus textfile.

    result = run_with_hooks(config, task, lambda: run_the_task(...))

A hook is a `ping` (an HTTP(S) request) or a `mail` (a short report through any
MUA). Ping URLs are requested exactly as written, so the config says what each
event pings; with healthchecks.io that is `https://hc-ping.com/UUID/start` in
`on-start`, `.../UUID` in `on-success` and `.../UUID/fail` in `on-failure`. A POST
ping carries the short report as its body (healthchecks shows it in the event log).

A failing hook or metrics write is logged as a warning and never changes the run's
outcome: a good run stays good, and a failed run re-raises its own error.
"""

from __future__ import annotations

import logging
import socket
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, TypeVar

from palhm import __version__
from palhm.errors import PalhmError
from palhm.metrics import RunMetrics, update_textfile
from palhm.model import BackupTask, Config, Hook, MailHook, PingHook, Task
from palhm.progress import human_size

log = logging.getLogger(__name__)

T = TypeVar("T")
Status = Literal["started", "success", "failure"]

DEFAULT_SUBJECT: Final = "palhm: task '{task}' {status} on {hostname}"
_ANSWER_LIMIT: Final = 4096  # bytes of a ping's answer read before closing


@dataclass(frozen=True, slots=True)
class RunReport:
    """What the hooks and the textfile say about one run of one task."""

    task_id: str
    status: Status
    start: float  # Unix time
    duration: float | None = None
    bytes_written: int | None = None
    copies_kept: int | None = None
    error: str | None = None

    def text(self) -> str:
        """The short report: `key: value` lines (YAML, like the boot report)."""
        lines = [
            f"task: {self.task_id}",
            f"status: {self.status}",
            f"host: {socket.gethostname()}",
            f"start: {datetime.fromtimestamp(self.start, UTC).isoformat(timespec='seconds')}",
        ]
        if self.duration is not None:
            lines.append(f"duration-seconds: {self.duration:.1f}")
        if self.bytes_written is not None:
            lines.append(f"bytes-written: {self.bytes_written}  # {human_size(self.bytes_written)}")
        if self.copies_kept is not None:
            lines.append(f"copies-kept: {self.copies_kept}")
        if self.error is not None:
            lines.append("error: |")
            lines.extend("  " + line for line in self.error.splitlines() or [""])
        return "\n".join(lines) + "\n"


def run_with_hooks(config: Config, task: Task, action: Callable[[], T]) -> T:
    """Fire on-start hooks, run `action`, fire on-success or on-failure hooks, then
    update the metrics textfile if configured; return `action`'s result or re-raise
    its exception unchanged. Hook and metrics failures are only logged as warnings.

    When `action` returns the backup engine's `BackupResult`, the copy's size and the
    number of copies kept after rotation go into the report and the textfile.
    """
    start, clock = time.time(), time.monotonic()
    fire(task.hooks.on_start, RunReport(task.id, "started", start))
    try:
        result = action()
    except BaseException as error:
        report = RunReport(
            task.id, "failure", start, time.monotonic() - clock, error=_error_text(error)
        )
        fire(task.hooks.on_failure, report)
        write_metrics(config, task, report)
        raise
    bytes_written, copies_kept = _backup_figures(result)
    report = RunReport(
        task.id,
        "success",
        start,
        time.monotonic() - clock,
        bytes_written=bytes_written,
        copies_kept=copies_kept,
    )
    fire(task.hooks.on_success, report)
    write_metrics(config, task, report)
    return result


def fire(hooks: Sequence[Hook], report: RunReport) -> None:
    """Send every hook in order; each failure is a warning naming the hook."""
    for hook in hooks:
        try:
            if isinstance(hook, PingHook):
                send_ping(hook, report)
            else:
                send_mail(hook, report)
        except Exception as error:  # a notification never fails a run
            log.warning(
                "task '%s': %s hook %s failed: %s",
                report.task_id,
                _event(report.status),
                describe_hook(hook),
                _one_line(error),
            )


def send_ping(hook: PingHook, report: RunReport) -> None:
    """Request the hook's URL (POST: with the report as body). Raises on HTTP >= 400,
    a connection error or the timeout."""
    import urllib.request  # with http.client and ssl: only when a ping is sent

    data = report.text().encode() if hook.method == "POST" else None
    request = urllib.request.Request(
        hook.url,
        data=data,
        method=hook.method,
        headers={"User-Agent": f"palhm/{__version__}", "Content-Type": "text/plain; charset=utf-8"},
    )
    with urllib.request.urlopen(request, timeout=hook.timeout) as answer:
        answer.read(_ANSWER_LIMIT)
    log.debug("task '%s': pinged %s", report.task_id, _url_for_log(hook.url))


def send_mail(hook: MailHook, report: RunReport) -> None:
    """Send the report through the hook's MUA. Raises MailError (or KeyError: unknown MUA)."""
    from palhm.mua import create_mua

    subject = (hook.subject or DEFAULT_SUBJECT).replace("{task}", report.task_id)
    subject = subject.replace("{status}", report.status)
    subject = subject.replace("{hostname}", socket.gethostname())
    create_mua(hook.mua, hook.mua_param).send(
        subject=subject, body=report.text(), recipients=hook.mail_to
    )
    log.debug("task '%s': mailed %s", report.task_id, ", ".join(hook.mail_to))


def write_metrics(config: Config, task: Task, report: RunReport) -> None:
    """Update the textfile for this run, if the config names one (warning on failure)."""
    if config.metrics_textfile is None:
        return
    duration = report.duration or 0.0
    run = RunMetrics(
        task_id=task.id,
        end_time=report.start + duration,
        duration=duration,
        success=report.status == "success",
        backup=isinstance(task, BackupTask),
        bytes_written=report.bytes_written,
        copies_kept=report.copies_kept,
    )
    try:
        update_textfile(config.metrics_textfile, run)
    except OSError as error:
        log.warning(
            "task '%s': cannot write metrics to %s: %s", task.id, config.metrics_textfile, error
        )


def describe_hook(hook: Hook) -> str:
    """How messages name a hook: `ping GET https://host/...`, `mail via smtp to a@b`."""
    if isinstance(hook, PingHook):
        return f"ping {hook.method} {_url_for_log(hook.url)}"
    return f"mail via {hook.mua} to {', '.join(hook.mail_to)}"


def _url_for_log(url: str) -> str:
    # the path of a ping URL is often its secret (healthchecks UUID): show the host only
    parts = urllib.parse.urlsplit(url)
    return (
        f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/..."
    )


def _event(status: Status) -> str:
    return {"started": "on-start", "success": "on-success", "failure": "on-failure"}[status]


def _error_text(error: BaseException) -> str:
    if isinstance(error, PalhmError):
        return "\n".join(error.lines())
    if isinstance(error, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return f"{type(error).__name__}: {error}"


def _one_line(error: BaseException) -> str:
    import urllib.error

    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(error).__name__


def _backup_figures(result: object) -> tuple[int | None, int | None]:
    """(bytes written, copies kept) when `result` is the backup engine's result."""
    from palhm.backup import BackupResult

    if isinstance(result, BackupResult):
        return result.size, len(result.rotation.keep)
    return None, None
