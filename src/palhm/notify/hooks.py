"""What runs around a task: `on-start`, `on-success`, `on-failure` and `finally` hooks,
then the Prometheus textfile (doc/operations.md, "Hooks").

    result = run_with_hooks(config, task, lambda: run_the_task(...), run_task=..., verbosity=3)

A hook item is a notification -- a `ping` (an HTTP(S) request: method, headers, a
body template, retries) or a `mail` (a short report through any MUA) -- or a command,
any routine item kind (exec, exec-append, exec-inline, task, builtin), run like a
routine item with the run's outcome in PALHM_* environment variables.

Order: on-start; the task's main part; on-failure (when it failed, or a signal
stopped it) or on-success; finally (always). Each list runs at most once per run.

- A failing notification is a warning: it never changes the run's outcome.
- A failing command in on-start stops the run before its main part (on-failure and
  finally then run); in on-success or finally it makes a successful run fail; in
  on-failure (and finally after a failure) it is logged as an error and the run keeps
  its first error. Clean-up lists (on-failure, finally) run every item even when one
  fails; on-start and on-success stop at their first failing command.
- After SIGTERM/SIGINT the clean-up lists still run, within CLEANUP_GRACE seconds in
  all (commands past it are terminated); notifications then get one attempt of at
  most SIGNALLED_TIMEOUT seconds. A signal cuts short an on-start notification, and
  every wait between retries.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

from palhm import __version__
from palhm.engine import interrupts
from palhm.engine.progress import human_size
from palhm.errors import Cancelled, ExitStatus, PalhmError
from palhm.model import (
    DEFAULT_VL,
    BackupTask,
    Builtin,
    Config,
    Exec,
    HeaderValue,
    Hook,
    MailHook,
    PingHook,
    Task,
    TaskRef,
)
from palhm.records import field, record

if TYPE_CHECKING:
    import http.client

    from palhm.engine.backup import DestinationOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")
Status = Literal["started", "success", "failure"]
Event = Literal["on-start", "on-success", "on-failure", "finally"]

DEFAULT_SUBJECT: Final = "palhm: task '{task}' {status} on {hostname}"
CLEANUP_GRACE: Final = 60.0  # s the clean-up lists may take in all after a signal
SIGNALLED_TIMEOUT: Final = 5.0  # s for one notification attempt after a signal
LOG_TAIL_LINES: Final = 20  # lines of palhm's own log kept for {log}
RETRY_DELAY_MAX: Final = 300.0  # s: the doubling wait between attempts stops growing here
_ANSWER_LIMIT: Final = 4096  # bytes of an HTTP answer read before closing
_POLL: Final = 0.1  # s between looks at the cancel event while a request runs
_PLACEHOLDER: Final = re.compile(r"\{([a-z][a-z0-9_-]*)\}")


# --------------------------------------------------------------------------- the report


@record
class RunReport:
    """What hooks, the textfile and `run --json` say about one run of one task."""

    task_id: str
    status: Status
    start: float  # Unix time
    duration: float | None = None
    bytes_written: int | None = None
    copies_kept: int | None = None
    error: str | None = None
    exit_code: int | None = None
    result: object = None  # the backup engine's BackupResult, for backup tasks
    log_tail: tuple[str, ...] = field(default=())
    destinations: tuple[DestinationOutcome, ...] = ()  # backup tasks, once finished

    @property
    def prefix(self) -> str | None:
        return getattr(self.result, "prefix", None)

    def text(self) -> str:
        """The short report: `key: value` lines (YAML, like the boot report)."""
        lines = [
            f"task: {self.task_id}",
            f"status: {self.status}",
            f"host: {os.uname().nodename}",
            f"start: {_iso(self.start)}",
        ]
        if self.prefix is not None:
            lines.append(f"copy: {self.prefix}")
        if self.duration is not None:
            lines.append(f"duration-seconds: {self.duration:.1f}")
        if self.bytes_written is not None:
            lines.append(f"bytes-written: {self.bytes_written}  # {human_size(self.bytes_written)}")
        if self.copies_kept is not None:
            lines.append(f"copies-kept: {self.copies_kept}")
        if len(self.destinations) > 1:
            lines.append("destinations:")
            lines.extend(f"  {outcome_text(d)}" for d in self.destinations)
        if self.exit_code is not None and self.status != "started":
            lines.append(f"exit-code: {self.exit_code}")
        if self.error is not None:
            lines.append("error: |")
            lines.extend("  " + line for line in self.error.splitlines() or [""])
        return "\n".join(lines) + "\n"

    def document(self) -> dict[str, Any]:
        """The run summary: what `run --json` prints and templates draw from."""
        from palhm.notify.summary import backup_document

        document: dict[str, Any] = {
            "task": self.task_id,
            "status": self.status,
            "exit-code": self.exit_code,
            "host": os.uname().nodename,
            "start": _iso(self.start),
            "duration": round(self.duration, 3) if self.duration is not None else None,
            "error": self.error,
        }
        document.update(backup_document(self.result))
        if self.destinations:
            document["destinations"] = [
                {
                    "name": d.name,
                    "backend": d.backend,
                    "location": d.location,
                    "status": d.status,
                    "error": d.error,
                    "copies-kept": d.copies_kept,
                }
                for d in self.destinations
            ]
        return document

    def destination_names(self, status: str) -> str:
        """The names of the destinations with `status` ("ok", "failed"), space separated."""
        return " ".join(d.name for d in self.destinations if d.status == status)

    def fields(self) -> dict[str, str]:
        """Template values: the document's scalars as text, plus `size-human`, `log`
        (palhm's last log lines), `error-line` (the first line) and `json`."""
        document = self.document()
        values = {
            key: "" if value is None else str(value)
            for key, value in document.items()
            if not isinstance(value, dict | list)
        }
        copy = document.get("copy") or {}
        values["prefix"] = str(copy.get("prefix") or "")
        values["size"] = str(copy.get("size") if copy.get("size") is not None else "")
        values["size-human"] = human_size(copy["size"]) if copy.get("size") is not None else ""
        values["duration"] = f"{self.duration:.1f}" if self.duration is not None else ""
        values["error-line"] = (self.error or "").split("\n", 1)[0]
        values["log"] = "\n".join(self.log_tail)
        values["destinations"] = ", ".join(outcome_text(d) for d in self.destinations)
        values["destinations-ok"] = self.destination_names("ok")
        values["destinations-failed"] = self.destination_names("failed")
        values["json"] = json.dumps(document, ensure_ascii=False)
        return values

    def environment(self, event: Event) -> dict[str, str]:
        """PALHM_* variables for command hooks."""
        values = self.fields()
        return {
            "PALHM_EVENT": event,
            "PALHM_TASK": self.task_id,
            "PALHM_STATUS": self.status,
            "PALHM_EXIT_CODE": values["exit-code"],
            "PALHM_ERROR": values["error"],
            "PALHM_PREFIX": values["prefix"],
            "PALHM_SIZE": values["size"],
            "PALHM_DURATION": values["duration"],
            "PALHM_HOST": values["host"],
            "PALHM_DESTINATIONS_OK": values["destinations-ok"],
            "PALHM_DESTINATIONS_FAILED": values["destinations-failed"],
        }


def outcome_text(outcome: DestinationOutcome) -> str:
    """`localfs: ok`, `aws-s3: failed (cause)`: one destination in a text report."""
    cause = f" ({outcome.error})" if outcome.error else ""
    return f"{outcome.name}: {outcome.status}{cause}"


def render(template: str, values: Mapping[str, str]) -> str:
    """`{name}` replaced by values[name]; unknown names and other braces stay as they
    are, so JSON or shell text needs no escaping."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render_json(template: Any, values: Mapping[str, str]) -> Any:
    """A JSON value with every string (keys too) rendered as a template."""
    if isinstance(template, str):
        return render(template, values)
    if isinstance(template, list):
        return [render_json(item, values) for item in template]
    if isinstance(template, dict):
        return {render(k, values): render_json(v, values) for k, v in template.items()}
    return template


# --------------------------------------------------------------------------- the run


def run_with_hooks(
    config: Config,
    task: Task,
    action: Callable[[], T],
    *,
    run_task: Callable[[str], object] | None = None,
    verbosity: int = DEFAULT_VL,
    on_report: Callable[[RunReport], None] | None = None,
) -> T:
    """Run `action` inside the task's hooks (see the module docstring); return its
    result or raise the run's first error. `run_task(task_id)` runs a hook's task
    pointer. `on_report` receives the final report (for `run --json`) before the
    error, if any, is raised."""
    session = _Session(config, task, run_task=run_task, verbosity=verbosity)
    with _captured_log() as tail:
        session.tail = tail
        log.info("task '%s': starting", task.id)
        try:
            result = session.run(action)
        finally:
            if on_report is not None and session.report is not None:
                on_report(session.report)
    return result


class _Session:
    """One run of one task and its hooks."""

    def __init__(
        self,
        config: Config,
        task: Task,
        *,
        run_task: Callable[[str], object] | None,
        verbosity: int,
    ) -> None:
        self.config = config
        self.task = task
        self.run_task = run_task
        self.verbosity = verbosity
        self.start = time.time()
        self.clock = time.monotonic()
        self.tail: collections.deque[str] = collections.deque()
        self.report: RunReport | None = None
        self.error: BaseException | None = None

    def run(self, action: Callable[[], T]) -> T:
        hooks = self.task.hooks
        result: T | None = None
        try:
            self._fire(
                "on-start", hooks.on_start, self._make_report(None, "started"), cleanup=False
            )
            interrupts.check()
            if self.error is None:  # a failing on-start command skips the main part
                result = action()
        except BaseException as error:
            self.error = error
        with _Grace() as grace:
            if self.error is not None:
                self._fire("on-failure", hooks.on_failure, self._final(result), grace=grace)
            else:
                self._fire("on-success", hooks.on_success, self._final(result), cleanup=False)
            self._fire("finally", hooks.always, self._final(result), grace=grace)
        report = self._final(result)
        write_metrics(self.config, self.task, report)
        self.report = report
        if self.error is not None:
            raise self.error
        return result  # type: ignore[return-value]  # no error: action returned

    def _make_report(self, result: object, status: Status) -> RunReport:
        from palhm.engine.backup import BackupResult

        error = self.error
        if result is None and error is not None:
            result = getattr(error, "result", None)  # a suspect copy was committed
        backup = result if isinstance(result, BackupResult) else None
        destinations: tuple[DestinationOutcome, ...] = ()
        if backup is not None:
            destinations = backup.destinations
        elif isinstance(error, PalhmError) and status != "started":
            destinations = cast("tuple[DestinationOutcome, ...]", error.destinations)
        return RunReport(
            self.task.id,
            status,
            self.start,
            None if status == "started" else time.monotonic() - self.clock,
            bytes_written=backup.size if backup else None,
            copies_kept=len(backup.rotation.keep) if backup else None,
            error=error_text(error) if error is not None else None,
            exit_code=exit_code(error) if status != "started" else None,
            result=backup,
            log_tail=tuple(self.tail),
            destinations=destinations,
        )

    def _final(self, result: object) -> RunReport:
        return self._make_report(result, "failure" if self.error is not None else "success")

    def _fire(
        self,
        event: Event,
        items: Sequence[Hook],
        report: RunReport,
        *,
        cleanup: bool = True,
        grace: _Grace | None = None,
    ) -> None:
        """Run one hook list. A failing command becomes the run's error when the run
        has none yet (then, outside clean-up, the list stops), else an error line."""
        for index, item in enumerate(items, start=1):
            if isinstance(item, PingHook | MailHook):
                notify(item, report, event=event, cancel=_cancel_for(cleanup, grace))
                continue
            try:
                self._command(event, index, item, report, grace if cleanup else None)
            except BaseException as error:
                if self.error is None:
                    self.error = error
                    if not cleanup:
                        return
                else:
                    lines = error_text(error).splitlines() or [""]
                    log.error("task '%s': %s also failed: %s", self.task.id, event, lines[0])
                    for line in lines[1:]:
                        log.error("%s", line)

    def _command(
        self, event: Event, index: int, item: Exec | TaskRef | Builtin, report: RunReport,
        grace: _Grace | None,
    ) -> None:  # fmt: skip
        from palhm.engine.routine import run_item

        def run_pointer(task_id: str) -> None:
            if self.run_task is None:
                raise PalhmError(f"task '{self.task.id}', {event} item {index}: cannot run tasks")
            self.run_task(task_id)

        run_item(
            item,
            context=f"task '{self.task.id}', {event} item {index}",
            run_task=run_pointer,
            verbosity=self.verbosity,
            cancel=grace.expired if grace is not None else interrupts.CANCEL,
            env=report.environment(event),
        )


def _cancel_for(cleanup: bool, grace: _Grace | None) -> threading.Event:
    if cleanup and grace is not None:
        return grace.expired
    return interrupts.CANCEL


class _Grace:
    """The clean-up budget after a signal: `expired` is set CLEANUP_GRACE seconds after
    SIGTERM/SIGINT (or after clean-up began, if the signal came before)."""

    def __init__(self, seconds: float = CLEANUP_GRACE) -> None:
        self.seconds = seconds
        self.expired = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="palhm-grace", daemon=True)

    def __enter__(self) -> _Grace:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not interrupts.CANCEL.wait(_POLL):
            if self._done.is_set():
                return
        if not self._done.wait(self.seconds):
            log.error("clean-up took more than %.0f s after the signal: stopping it", self.seconds)
            self.expired.set()


# --------------------------------------------------------------------------- notifications


def notify(
    hook: PingHook | MailHook, report: RunReport, *, event: Event, cancel: threading.Event
) -> None:
    """Send one notification; a failure is a warning naming the hook."""
    try:
        if isinstance(hook, PingHook):
            send_ping(hook, report, cancel=cancel)
        else:
            send_mail(hook, report)
    except Exception as error:  # a notification never fails a run
        log.warning(
            "task '%s': %s hook %s failed: %s",
            report.task_id,
            event,
            describe_hook(hook),
            _one_line(error),
        )


def send_ping(hook: PingHook, report: RunReport, *, cancel: threading.Event | None = None) -> None:
    """Send the hook's request, with its retries. Raises on HTTP >= 400, a connection
    error or the timeout (the last attempt's), Cancelled when `cancel` is set.

    After a signal there is one attempt of at most SIGNALLED_TIMEOUT seconds."""
    import http.client  # with ssl: only when a request is sent (start-up time)

    values = report.fields()
    url = render(hook.url, {k: urllib.parse.quote(v, safe="") for k, v in values.items()})
    body, content_type = _body(hook, report, values)
    headers = {"User-Agent": f"palhm/{__version__}"}
    if body is not None:
        headers["Content-Type"] = content_type
    one_line = {k: " ".join(v.split()) for k, v in values.items()}  # no header injection
    headers.update({name: header_value(name, value, one_line) for name, value in hook.headers})
    signalled = interrupts.received_signal() is not None
    attempts = 1 if signalled else 1 + hook.retries
    timeout = min(hook.timeout, SIGNALLED_TIMEOUT) if signalled else hook.timeout
    delay = hook.retry_delay
    for attempt in range(1, attempts + 1):
        try:
            status = http_request(
                hook.method, url, headers=headers, body=body, timeout=timeout, cancel=cancel
            )
            if status >= 400:
                raise OSError(f"HTTP {status}")
            break
        except (OSError, http.client.HTTPException) as error:
            if attempt == attempts:
                raise
            log.info(
                "task '%s': %s: attempt %d failed (%s), retrying in %.0f s",
                report.task_id, describe_hook(hook), attempt, _one_line(error), delay,
            )  # fmt: skip
            if cancel is not None and cancel.wait(delay):
                raise Cancelled(f"{describe_hook(hook)}: cancelled") from error
            delay = min(delay * 2, RETRY_DELAY_MAX)
    log.debug("task '%s': sent %s", report.task_id, describe_hook(hook))


def _body(hook: PingHook, report: RunReport, values: Mapping[str, str]) -> tuple[bytes | None, str]:
    if hook.method in ("GET", "HEAD"):
        return None, ""
    if hook.body_json is not None:
        data = json.dumps(render_json(hook.body_json, values), ensure_ascii=False)
        return data.encode(), "application/json"
    text = render(hook.body, values) if hook.body is not None else report.text()
    return text.encode(), "text/plain; charset=utf-8"


def header_value(name: str, source: HeaderValue, values: Mapping[str, str]) -> str:
    """A header's value, read now (a written one is a template). Raises OSError naming
    the file or variable."""
    if source.file is not None:
        with open(source.file, encoding="utf-8") as file:
            lines = file.read().splitlines()
        return lines[0].strip() if lines else ""
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise OSError(f"header {name}: environment variable {source.env} is not set")
        return value
    return render(source.value or "", values)


def http_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
    cancel: threading.Event | None,
) -> int:
    """One HTTP(S) request; returns the status. The whole exchange gets `timeout`
    seconds; `cancel` set cuts it short (Cancelled). Runs in a helper thread so the
    caller can stop waiting at once: closing the socket ends that thread. The
    http_proxy / https_proxy / no_proxy environment is honoured like urllib's."""
    connection, target = _connection(url, timeout)
    outcome: dict[str, Any] = {}

    def exchange() -> None:
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            answer = connection.getresponse()
            answer.read(_ANSWER_LIMIT)
            outcome["status"] = answer.status
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=exchange, name="palhm-http", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    try:
        while worker.is_alive():
            worker.join(_POLL)
            if cancel is not None and cancel.is_set() and worker.is_alive():
                raise Cancelled(f"request to {url_for_log(url)} cancelled")
            if time.monotonic() > deadline and worker.is_alive():
                raise TimeoutError(f"no answer within {timeout:g} s")
    finally:
        _close(connection)
    if "error" in outcome:
        raise outcome["error"]
    return int(outcome["status"])


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """The connection to open for `url` (to a proxy when the environment names one)
    and the request target to send on it."""
    import http.client
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    proxy = urllib.request.getproxies().get(parts.scheme.lower())
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if https:  # a CONNECT tunnel through the proxy; TLS end to end
            tunnel = http.client.HTTPSConnection(
                via.hostname or "", via.port or 8080, timeout=timeout
            )
            tunnel.set_tunnel(parts.hostname or "", port)
            return tunnel, target
        plain = http.client.HTTPConnection(via.hostname or "", via.port or 8080, timeout=timeout)
        return plain, url  # a plain-HTTP proxy takes the absolute URL
    kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
    return kind(parts.hostname or "", port, timeout=timeout), target


def _close(connection: http.client.HTTPConnection) -> None:
    import socket

    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the helper thread's recv()
        except OSError:
            pass
    connection.close()


def send_mail(hook: MailHook, report: RunReport) -> None:
    """Send the report through the hook's MUA. Raises MailError (or KeyError: unknown MUA)."""
    from palhm.notify.mua import create_mua

    subject = (hook.subject or DEFAULT_SUBJECT).replace("{task}", report.task_id)
    subject = subject.replace("{status}", report.status)
    subject = subject.replace("{hostname}", os.uname().nodename)
    create_mua(hook.mua, hook.mua_param).send(
        subject=subject, body=report.text(), recipients=hook.mail_to
    )
    log.debug("task '%s': mailed %s", report.task_id, ", ".join(hook.mail_to))


def write_metrics(config: Config, task: Task, report: RunReport) -> None:
    """Update the textfile for this run, if the config names one (warning on failure)."""
    if config.metrics_textfile is None:
        return
    from palhm.notify.metrics import RunMetrics, update_textfile  # only with a textfile

    duration = report.duration or 0.0
    run = RunMetrics(
        task_id=task.id,
        end_time=report.start + duration,
        duration=duration,
        success=report.status == "success",
        backup=isinstance(task, BackupTask),
        bytes_written=report.bytes_written,
        copies_kept=report.copies_kept,
        destinations=tuple((d.name, d.status == "ok") for d in report.destinations),
    )
    try:
        update_textfile(config.metrics_textfile, run)
    except OSError as error:
        log.warning(
            "task '%s': cannot write metrics to %s: %s", task.id, config.metrics_textfile, error
        )


# --------------------------------------------------------------------------- helpers


def describe_hook(hook: Hook) -> str:
    """How messages name a hook: `ping GET https://host/...`, `mail via smtp to a@b`,
    `exec-inline sh -c ...`, `task cleanup`."""
    from palhm.errors import format_argv

    if isinstance(hook, PingHook):
        return f"ping {hook.method} {url_for_log(hook.url)}"
    if isinstance(hook, MailHook):
        return f"mail via {hook.mua} to {', '.join(hook.mail_to)}"
    if isinstance(hook, Exec):
        return f"exec {format_argv(hook.argv)}"
    if isinstance(hook, TaskRef):
        return f"task {hook.task_id}"
    return f"builtin {hook.builtin_id}"


def url_for_log(url: str) -> str:
    """The scheme and host of a URL: its path is often its secret (healthchecks UUID)."""
    parts = urllib.parse.urlsplit(url)
    return (
        f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/..."
    )


def error_text(error: BaseException) -> str:
    """An error as the lines palhm prints for it."""
    if isinstance(error, PalhmError):
        return "\n".join(error.lines())
    if isinstance(error, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return f"{type(error).__name__}: {error}"


def exit_code(error: BaseException | None) -> int:
    """The exit status palhm ends with for `error` (cli.main's map)."""
    if error is None:
        return int(ExitStatus.OK)
    if isinstance(error, PalhmError):
        return int(error.exit_status)
    if isinstance(error, KeyboardInterrupt):
        return int(ExitStatus.INTERRUPTED)
    return int(ExitStatus.FAILURE)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(error).__name__


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


@contextmanager
def _captured_log() -> Iterator[collections.deque[str]]:
    """The last LOG_TAIL_LINES lines palhm logs while the block runs (for {log})."""
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    handler = _TailHandler(tail)
    root = logging.getLogger()
    # INFO lines go to the tail even under -q; the other handlers keep their level
    saved = root.level, [(h, h.level) for h in root.handlers]
    for other, level in saved[1]:
        other.setLevel(max(level, saved[0]))
    root.setLevel(min(saved[0], logging.INFO))
    root.addHandler(handler)
    try:
        yield tail
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for other, level in saved[1]:
            other.setLevel(level)


class _TailHandler(logging.Handler):
    def __init__(self, tail: collections.deque[str]) -> None:
        super().__init__(logging.INFO)
        self.tail = tail

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.tail.extend(record.getMessage().splitlines())
        except Exception:  # a bad log call must not break the run
            pass
