"""The validated config as frozen records (palhm.records). Built only by `palhm.config`.

Nothing outside `palhm.config` sees a raw config dict: JSON's kebab-case keys are
converted to these snake_case fields in exactly one place (config/build.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from palhm.durations import Duration
from palhm.records import field, record, replace
from palhm.values import DEFAULT_EC, INFINITE, ExitCodeSpec, Limit

DEFAULT_VL: Final = 3
DEFAULT_GROUP: Final = "default"
EMPTY_ENV: Final[Mapping[str, str]] = MappingProxyType({})


@record
class Exec:
    """One command to run: a defined exec, or a stage after exec-append/overrides.

    `env` holds variables *added* to palhm's own environment
    (doc/design.md#execs-and-pipeline-stages).
    `vl_stderr`/`vl_stdout`: the child's stream reaches palhm's own stream when the
    current verbosity is >= that level, else /dev/null (doc/design.md#execs-and-pipeline-stages).
    """

    argv: tuple[str, ...]
    id: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY_ENV)
    ec: ExitCodeSpec = DEFAULT_EC
    vl_stderr: int = 1
    vl_stdout: int = 3
    timeout: float | None = None  # seconds (doc/design.md#execs-and-pipeline-stages)

    @property
    def label(self) -> str:
        """How messages name this command: its exec id, else its program."""
        return self.id if self.id else self.argv[0]


@record
class TaskRef:
    """Routine item that runs another task."""

    task_id: str


@record
class SigmaskAction:
    action: Literal["block", "unblock"]
    signals: tuple[int, ...]


@record
class Builtin:
    """Routine item that runs a builtin (`sigmask`)."""

    builtin_id: str
    sigmask: tuple[SigmaskAction, ...] = ()


RoutineItem: TypeAlias = Exec | TaskRef | Builtin


@record
class ObjectGroup:
    id: str
    depends: tuple[str, ...] = ()


@record
class BackupObject:
    """One file of a copy: `path` (normalised, relative) and the pipeline that makes it."""

    path: str
    pipeline: tuple[Exec, ...]
    group: str = DEFAULT_GROUP
    alloc_size: int | None = None
    restore: tuple[Exec, ...] = ()  # undoes `pipeline`: reads the object on stdin
    drill_restore: tuple[Exec, ...] = ()  # the restore pipeline used in a drill
    min_size: int | None = None  # smaller: the copy is suspect (guards.py)
    retries: int = 0  # more attempts after a failed one
    retry_delay: float = 10.0  # s before the first retry, doubled after each


@record
class PrefixSpec:
    """How a copy's PREFIX is formed from the run's start time (doc/design.md#copy-names-prefixes).

    kind "default" = iso8601 seconds UTC; "basic" = colon-free 20220501T065917Z.
    """

    kind: Literal["default", "iso8601", "basic"] = "default"
    timespec: str = "seconds"
    tz: Literal["utc", "local"] = "utc"


@record
class RetentionPolicy:
    """Which copies rotation keeps (doc/design.md#rotation-order). None = rule not set."""

    nb_copy_limit: Limit = INFINITE
    root_size_limit: Limit = INFINITE
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: Duration | None = None

    @property
    def has_keep_rules(self) -> bool:
        return any(
            v  # 0 means unset, as in restic
            for v in (
                self.keep_within,
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            )
        )


@record
class HeaderValue:
    """An HTTP header's value: written in the config, or read at send time from a
    file (first line) or an environment variable, so tokens stay out of configs."""

    value: str | None = None
    file: str | None = None
    env: str | None = None


@record
class PingHook:
    """An HTTP(S) request (healthchecks, ntfy, Gotify, webhooks ...).

    `url`, `body` and the strings of `body_json` are templates ({task}, {status} ...,
    see hooks.py). `retries` more attempts after a failure, waiting `retry_delay`
    seconds, doubled after each attempt.
    """

    url: str
    timeout: float = 10.0
    method: str = "GET"
    headers: tuple[tuple[str, HeaderValue], ...] = ()
    body: str | None = None
    body_json: Any = None
    retries: int = 0
    retry_delay: float = 1.0


@record
class MailHook:
    """A short report sent through a MUA (doc/design.md#notifications)."""

    mua: str
    mail_to: tuple[str, ...]
    mua_param: Mapping[str, Any] = field(default_factory=lambda: EMPTY_ENV)
    subject: str | None = None


Notification: TypeAlias = PingHook | MailHook
Hook: TypeAlias = PingHook | MailHook | Exec | TaskRef | Builtin
"""A hook item: a notification, or a command run like a routine item."""


@record
class Hooks:
    on_start: tuple[Hook, ...] = ()
    on_success: tuple[Hook, ...] = ()
    on_failure: tuple[Hook, ...] = ()
    always: tuple[Hook, ...] = ()  # `finally`


NO_HOOKS: Final = Hooks()


@record
class RoutineTask:
    id: str
    items: tuple[RoutineItem, ...]
    hooks: Hooks = NO_HOOKS


@record
class ObjectLock:
    """aws-s3 `object-lock`: every object and the manifest of a copy is written with S3
    Object Lock retention in `mode` until its start time plus the longest of `periods`
    (the `period` given, else one per time-based retention rule; see
    engine/rotation.py `lock_periods`). `source` says where the periods come from, for
    messages: "period 30d" or "keep-daily 7, keep-weekly 4"."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    periods: tuple[Duration, ...]
    source: str = ""

    def retain_until(self, start: datetime) -> datetime:
        """The retain-until date of a copy started at `start` (aware), whole seconds
        rounded up (what S3 stores)."""
        until = max(period.after(start) for period in self.periods)
        if until.microsecond:
            until = until.replace(microsecond=0) + timedelta(seconds=1)
        return until


@record
class Destination:
    """One place a backup task's copies go (doc/backup.md#several-destinations): a
    backend with its own parameters, copy prefix form and retention. `name` is unique
    in the task ("localfs", "aws-s3", "aws-s3-2" ... when the config gives none)."""

    name: str
    backend: str
    backend_param: Mapping[str, Any] = field(default_factory=lambda: EMPTY_ENV)
    prefix: PrefixSpec = PrefixSpec()
    retention: RetentionPolicy = RetentionPolicy()


Require: TypeAlias = Literal["all", "any"]


@record
class BackupTask:
    """A backup task. `backend_param` holds the backend's own parameters with
    snake_case keys and parsed values (modes as int, sizes as int); the common
    ones (prefix, retention) are lifted into their own fields."""

    id: str
    backend: str
    objects: tuple[BackupObject, ...]
    groups: tuple[ObjectGroup, ...] = ()
    backend_param: Mapping[str, Any] = field(default_factory=lambda: EMPTY_ENV)
    prefix: PrefixSpec = PrefixSpec()
    retention: RetentionPolicy = RetentionPolicy()
    checksum: Literal["blake3", "sha256", "xxh3-128", "none"] = "blake3"
    hooks: Hooks = NO_HOOKS
    drill: Drill | None = None
    max_shrink: float | None = None  # percent (guards.py)
    lock_wait: float = 0.0  # s to wait for the backend's lock
    # Every destination, the first one's backend/params/prefix/retention repeated in
    # the fields above; empty for a task built without the config layer (tests).
    destinations: tuple[Destination, ...] = ()
    require: Require = "all"  # which destinations must succeed for a run to commit

    def all_destinations(self) -> tuple[Destination, ...]:
        """The task's destinations (one, named after its backend, for a task built
        with the single `backend` fields only)."""
        if self.destinations:
            return self.destinations
        only = Destination(self.backend, self.backend, self.backend_param)
        return (replace(only, prefix=self.prefix, retention=self.retention),)

    def at(self, destination: Destination) -> BackupTask:
        """This task seen through one destination: its backend, parameters, prefix and
        retention, and that destination alone (what list, verify, rotation ... use)."""
        return replace(
            self,
            backend=destination.backend,
            backend_param=destination.backend_param,
            prefix=destination.prefix,
            retention=destination.retention,
            destinations=(destination,),
        )


Task: TypeAlias = RoutineTask | BackupTask


@record
class DrillCheck:
    """One check of a drill: `command` (its `ec` is the expected status) and an
    optional pattern its stdout must match."""

    name: str
    command: Exec
    expect_output: str | None = None


@record
class Drill:
    """A task's restore drill (`palhm drill`). `env` is added to every drill command;
    `hooks` is None when the drill uses the task's own hooks."""

    set_up: tuple[Exec, ...] = ()
    checks: tuple[DrillCheck, ...] = ()
    tear_down: tuple[Exec, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY_ENV)
    use_restore_pipelines: bool = False
    hooks: Hooks | None = None


@record
class BootReport:
    mua: str
    mail_to: tuple[str, ...]
    mua_param: Mapping[str, Any] = field(default_factory=lambda: EMPTY_ENV)
    subject: str = "Boot Report from {hostname}"
    header: str | None = None
    uptime_since: bool = True
    uptime: bool = True
    boot_id: bool = True
    boot_wait: Literal["systemd"] | None = None
    delay: float = 0.0


@record
class Config:
    """The effective config after includes, merging and validation."""

    source: Path  # the -f file (or builtin:NAME), for messages
    files: tuple[str, ...] = ()  # every file loaded, in load order
    modules: frozenset[str] = frozenset()
    nb_workers: int = 0
    vl: int = DEFAULT_VL
    execs: Mapping[str, Exec] = field(default_factory=dict)
    tasks: Mapping[str, Task] = field(default_factory=dict)
    boot_report: BootReport | None = None
    metrics_textfile: Path | None = None  # Prometheus textfile (doc/design.md#notifications)
