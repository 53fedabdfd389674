"""The validated config as frozen dataclasses. Built only by `palhm.config`.

Nothing outside `palhm.config` sees a raw config dict: JSON's kebab-case keys are
converted to these snake_case fields in exactly one place (config/build.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from palhm.values import DEFAULT_EC, INFINITE, ExitCodeSpec, Limit

DEFAULT_VL: Final = 3
DEFAULT_GROUP: Final = "default"
EMPTY_ENV: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Exec:
    """One command to run: a defined exec, or a stage after exec-append/overrides.

    `env` holds variables *added* to palhm's own environment (SPEC B3).
    `vl_stderr`/`vl_stdout`: the child's stream reaches palhm's own stream when the
    current verbosity is >= that level, else /dev/null (SPEC A3.3).
    """

    argv: tuple[str, ...]
    id: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY_ENV)
    ec: ExitCodeSpec = DEFAULT_EC
    vl_stderr: int = 1
    vl_stdout: int = 3
    timeout: float | None = None  # seconds (SPEC C6)

    @property
    def label(self) -> str:
        """How messages name this command: its exec id, else its program."""
        return self.id if self.id else self.argv[0]


@dataclass(frozen=True, slots=True)
class TaskRef:
    """Routine item that runs another task."""

    task_id: str


@dataclass(frozen=True, slots=True)
class SigmaskAction:
    action: Literal["block", "unblock"]
    signals: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Builtin:
    """Routine item that runs a builtin (`sigmask`)."""

    builtin_id: str
    sigmask: tuple[SigmaskAction, ...] = ()


RoutineItem: TypeAlias = Exec | TaskRef | Builtin


@dataclass(frozen=True, slots=True)
class ObjectGroup:
    id: str
    depends: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BackupObject:
    """One file of a copy: `path` (normalised, relative) and the pipeline that makes it."""

    path: str
    pipeline: tuple[Exec, ...]
    group: str = DEFAULT_GROUP
    alloc_size: int | None = None


@dataclass(frozen=True, slots=True)
class PrefixSpec:
    """How a copy's PREFIX is formed from the run's start time (SPEC A5.4, C3).

    kind "default" = iso8601 seconds UTC; "basic" = colon-free 20220501T065917Z.
    """

    kind: Literal["default", "iso8601", "basic"] = "default"
    timespec: str = "seconds"
    tz: Literal["utc", "local"] = "utc"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which copies rotation keeps (SPEC A5.6, C5). None = rule not set."""

    nb_copy_limit: Limit = INFINITE
    root_size_limit: Limit = INFINITE
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None

    @property
    def has_keep_rules(self) -> bool:
        return any(
            v  # 0 means unset, as in restic
            for v in (
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            )
        )


@dataclass(frozen=True, slots=True)
class PingHook:
    """HTTP(S) ping in the healthchecks style (SPEC C7)."""

    url: str
    timeout: float = 10.0
    method: str = "GET"


@dataclass(frozen=True, slots=True)
class MailHook:
    """A short report sent through a MUA (SPEC C7)."""

    mua: str
    mail_to: tuple[str, ...]
    mua_param: Mapping[str, Any] = field(default_factory=lambda: EMPTY_ENV)
    subject: str | None = None


Hook: TypeAlias = PingHook | MailHook


@dataclass(frozen=True, slots=True)
class Hooks:
    on_start: tuple[Hook, ...] = ()
    on_success: tuple[Hook, ...] = ()
    on_failure: tuple[Hook, ...] = ()


NO_HOOKS: Final = Hooks()


@dataclass(frozen=True, slots=True)
class RoutineTask:
    id: str
    items: tuple[RoutineItem, ...]
    hooks: Hooks = NO_HOOKS


@dataclass(frozen=True, slots=True)
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


Task: TypeAlias = RoutineTask | BackupTask


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    metrics_textfile: Path | None = None  # Prometheus textfile (SPEC C7)
