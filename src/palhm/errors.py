"""Exception hierarchy. `cli.main` is the only place that turns these into exit statuses.

Every message is written for a system administrator reading a cron mail: it names
the place (file and JSON path, or task, object and stage) and what went wrong.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from enum import IntEnum
from typing import Final


class ExitStatus(IntEnum):
    OK = 0
    FAILURE = 1  # a task failed at run time
    USAGE = 2  # usage or config error: nothing was run
    INTERRUPTED = 130  # SIGINT, after clean-up
    TERMINATED = 143  # SIGTERM, after clean-up


class PalhmError(Exception):
    """Base of every error palhm reports without a traceback."""

    exit_status: ExitStatus = ExitStatus.FAILURE
    every_line_an_error: bool = False  # each line is an error of its own (`palhm: error:`)
    # A failed backup run: what happened on each destination (engine DestinationOutcome
    # values), set by the engine for the run's reports.
    destinations: tuple[object, ...] = ()

    def lines(self) -> list[str]:
        """The message as the lines printed on stderr."""
        return str(self).splitlines() or [type(self).__name__]


class UsageError(PalhmError):
    """Bad command line: unknown task, conflicting options."""

    exit_status = ExitStatus.USAGE


class ConfigProblem:
    """One problem in a config file: where it is and what was expected."""

    __slots__ = ("file", "path", "message")

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file = file
        # JSON path such as tasks[2].objects[0].pipeline[1].exec-id; "" for the root
        self.path = path
        self.message = message

    def __str__(self) -> str:
        where = f"at '{self.path}': " if self.path else ""
        return f"{self.file}: {where}{self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.file!r}, {self.path!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigProblem) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class ConfigError(PalhmError):
    """One or more problems found while loading or validating the config."""

    exit_status = ExitStatus.USAGE

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, path: str, message: str) -> ConfigError:
        return cls([ConfigProblem(file, path, message)])


class CommandError(PalhmError):
    """A child process exited with a status outside its `ec`, was killed, or timed out."""

    def __init__(
        self,
        context: str,
        argv: Sequence[str],
        outcome: str,
        stderr_tail: Sequence[str] = (),
    ) -> None:
        self.context = context
        self.argv = list(argv)
        self.outcome = outcome  # "exited with status 3", "killed by SIGKILL", "timed out after 5 s"
        self.stderr_tail = list(stderr_tail)
        message = f"{context}: {format_argv(argv)} {outcome}"
        if self.stderr_tail:
            message += "\n" + "\n".join("  | " + line for line in self.stderr_tail)
        super().__init__(message)


class PipelineError(CommandError):
    """A stage of a backup pipeline failed; `context` names task, object and stage."""


class BackendError(PalhmError):
    """The storage backend failed (I/O error, full disk, S3 error ...)."""


class DeleteDeniedError(BackendError):
    """The store refused to delete a copy (AccessDenied: a key without delete rights).
    `untouched`: nothing of the copy was deleted, so it is still whole."""

    def __init__(self, message: str, *, untouched: bool = True) -> None:
        super().__init__(message)
        self.untouched = untouched


class LockedError(PalhmError):
    """Another palhm run holds the lock of the same backend root."""


class CollisionError(BackendError):
    """A copy with the same prefix already exists; nothing was written."""


class RotationError(PalhmError):
    """Removing old copies failed after the new copy was committed (the new copy is safe)."""


class MailError(PalhmError):
    """A mail user agent (mailx, SMTP, SNS) failed to send."""


# errno values that mean "a limit was reached" rather than "a bug" or "bad input".
RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})


class ResourceError(PalhmError):
    """The system refused palhm a resource it needed to run a command (file
    descriptors, processes, memory): a limit to raise, not a bug."""

    def __init__(self, context: str, error: OSError) -> None:
        super().__init__(f"{context}: cannot run: {describe_resource_error(error)}")


def describe_resource_error(error: OSError) -> str:
    """The system's reason for a refused resource, and which limit to raise."""
    hint = ""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        hint = " (raise the open-files limit, `ulimit -n`, or lower nb-workers)"
    elif error.errno in (errno.EAGAIN, errno.ENOMEM):
        hint = " (too many processes or not enough memory: lower nb-workers)"
    return f"{error.strerror or error}{hint}"


class Interrupted(PalhmError):
    """A stop signal arrived; raised after clean-up so the exit status is 128+N, as a
    shell reports a process the signal killed (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""

    exit_status: int  # type: ignore[assignment]  # 128+N is not always an ExitStatus

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        name = signal.Signals(signum).name
        self.exit_status = 128 + int(signum)
        super().__init__(f"interrupted by {name}")


def format_argv(argv: Sequence[str]) -> str:
    """Quote an argv for messages (never for execution: palhm runs no shell)."""
    import shlex

    # one line whatever the argv holds: a multi-line `python -c` program must not
    # spread an error over several lines of a cron mail
    return shlex.join(argv).replace("\r", "\\r").replace("\n", "\\n")


class Cancelled(PalhmError):
    """Work stopped because the run is being cancelled (another object failed, or a
    signal arrived). Never the root cause: the scheduler reports the first real error."""
