"""Prometheus textfile of each task's last run (doc/design.md#notifications), for node_exporter's
textfile
collector (`--collector.textfile.directory`; the file name must end in `.prom`).

One file holds every task: a run replaces only its own task's samples and keeps
the others' (parsed from the file as it is). The file is written atomically (a
temp file in the same directory, fsync, rename), so the collector never reads half
a file; a lock file beside it (`.NAME.lock`) serialises two palhm runs updating it.

Series (gauges, label `task`):
  palhm_last_run_timestamp_seconds      end of the last run (Unix time)
  palhm_last_run_duration_seconds       its duration
  palhm_last_run_success                1 if it succeeded, else 0
  palhm_last_success_timestamp_seconds  end of the last successful run (kept on failure)
  palhm_last_run_bytes_written          bytes of the copy made (backup tasks; 0 on failure)
  palhm_copies_kept                     copies under the root after rotation (backup
                                        tasks; kept from the previous run on failure)
Alert on `time() - palhm_last_success_timestamp_seconds > 2 * 86400`, for example.

Per destination (labels `task` and `destination`, every backup task; several for a
task with `destinations`, doc/backup.md#several-destinations):
  palhm_destination_last_run_success    1 if the last run committed its copy there
  palhm_destination_last_success_timestamp_seconds  end of the last run that did
                                        (kept when a run fails there)
Alert on `palhm_destination_last_run_success == 0`: with `require: any` the run
committed on the other destinations.

`palhm verify` writes its own series (same label), never touching the run's:
  palhm_last_verify_timestamp_seconds          end of the last verify
  palhm_last_verify_success                    1 if every object matched its manifest
  palhm_last_verify_success_timestamp_seconds  end of the last good verify (kept on failure)
  palhm_last_verify_objects_checked            objects read by the last verify
  palhm_last_verify_bytes_read                 bytes read by the last verify
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

from palhm.records import record

METRICS: Final[dict[str, str]] = {
    "palhm_last_run_timestamp_seconds": "Unix time at which the task's last run ended.",
    "palhm_last_run_duration_seconds": "Duration of the task's last run in seconds.",
    "palhm_last_run_success": "1 if the task's last run succeeded, 0 if it failed.",
    "palhm_last_success_timestamp_seconds": "Unix time at which the last successful run ended.",
    "palhm_last_run_bytes_written": "Bytes of the copy made by the last run (0 if it failed).",
    "palhm_copies_kept": "Copies under the backup root after the last rotation.",
}
VERIFY_METRICS: Final[dict[str, str]] = {
    "palhm_last_verify_timestamp_seconds": "Unix time at which the task's last verify ended.",
    "palhm_last_verify_success": "1 if the last verify found every object as its manifest says.",
    "palhm_last_verify_success_timestamp_seconds": "Unix time at which the last good verify ended.",
    "palhm_last_verify_objects_checked": "Objects read by the last verify.",
    "palhm_last_verify_bytes_read": "Bytes read by the last verify.",
}
DESTINATION_METRICS: Final[dict[str, str]] = {
    "palhm_destination_last_run_success": (
        "1 if the task's last run committed its copy on this destination, 0 if not."
    ),
    "palhm_destination_last_success_timestamp_seconds": (
        "Unix time at which the last run that committed its copy on this destination ended."
    ),
}
METRICS.update(DESTINATION_METRICS)
RUN_METRICS: Final = dict(METRICS)
METRICS.update(VERIFY_METRICS)
# Kept from the previous file when a run does not produce a new value.
CARRIED_OVER: Final = (
    "palhm_last_success_timestamp_seconds",
    "palhm_copies_kept",
    "palhm_last_drill_timestamp_seconds",
    "palhm_last_drill_duration_seconds",
    "palhm_last_drill_success",
    "palhm_last_drill_success_timestamp_seconds",
    "palhm_last_verify_success_timestamp_seconds",
    "palhm_destination_last_success_timestamp_seconds",
)

# Restore drills (`palhm drill`, doc/restore.md) have series of their own: a drill
# replaces only these (update_drill_textfile), and a run carries them over.
DRILL_METRICS: Final[dict[str, str]] = {
    "palhm_last_drill_timestamp_seconds": "Unix time at which the task's last restore drill ended.",
    "palhm_last_drill_duration_seconds": "Duration of the task's last restore drill in seconds.",
    "palhm_last_drill_success": "1 if the task's last restore drill passed, 0 if it failed.",
    "palhm_last_drill_success_timestamp_seconds": "End (Unix time) of the last drill that passed.",
}
METRICS.update(DRILL_METRICS)

_SAMPLE: Final = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{task="(?P<task>(?:[^"\\]|\\.)*)"'
    r'(?:,destination="(?P<destination>(?:[^"\\]|\\.)*)")?\}\s+(?P<value>\S+)\s*$'
)

# A sample's labels: (task, None), or (task, destination) for the destination series.
Labels = tuple[str, str | None]


@record
class RunMetrics:
    """What one task run reports. None = not applicable (routine tasks) or unknown."""

    task_id: str
    end_time: float  # Unix time
    duration: float  # seconds
    success: bool
    backup: bool = False  # a backup task: bytes and copies apply
    bytes_written: int | None = None
    copies_kept: int | None = None
    destinations: tuple[tuple[str, bool], ...] = ()  # (name, holds the new copy)

    def samples(self, previous: Mapping[str, float]) -> dict[str, float]:
        """name -> value for this task; `previous` is the task's samples in the file."""
        values: dict[str, float] = {
            # milliseconds are plenty for alerting and keep the file readable
            "palhm_last_run_timestamp_seconds": round(self.end_time, 3),
            "palhm_last_run_duration_seconds": round(self.duration, 3),
            "palhm_last_run_success": 1.0 if self.success else 0.0,
        }
        if self.success:
            values["palhm_last_success_timestamp_seconds"] = round(self.end_time, 3)
        if self.backup:
            values["palhm_last_run_bytes_written"] = float(self.bytes_written or 0)
        if self.copies_kept is not None:
            values["palhm_copies_kept"] = float(self.copies_kept)
        for name in CARRIED_OVER:
            if name not in values and name in previous:
                values[name] = previous[name]
        return values

    def destination_samples(
        self, previous: Mapping[tuple[str, str], float]
    ) -> dict[tuple[str, str], float]:
        """(name, destination) -> value; `previous` holds the task's destination
        samples in the file (the last success of a destination is kept)."""
        values: dict[tuple[str, str], float] = {}
        success = "palhm_destination_last_success_timestamp_seconds"
        for destination, ok in self.destinations:
            values["palhm_destination_last_run_success", destination] = 1.0 if ok else 0.0
            if ok:
                values[success, destination] = round(self.end_time, 3)
            elif (success, destination) in previous:
                values[success, destination] = previous[success, destination]
        return values


@record
class VerifyMetrics:
    """What one `palhm verify` reports."""

    task_id: str
    end_time: float  # Unix time
    success: bool
    objects_checked: int
    bytes_read: int

    owned = VERIFY_METRICS

    def samples(self, previous: Mapping[str, float]) -> dict[str, float]:
        values = {
            "palhm_last_verify_timestamp_seconds": round(self.end_time, 3),
            "palhm_last_verify_success": 1.0 if self.success else 0.0,
            "palhm_last_verify_objects_checked": float(self.objects_checked),
            "palhm_last_verify_bytes_read": float(self.bytes_read),
        }
        name = "palhm_last_verify_success_timestamp_seconds"
        if self.success:
            values[name] = round(self.end_time, 3)
        elif name in previous:
            values[name] = previous[name]
        return values


# metric name -> labels -> value, plus the lines of metrics that are not palhm's
Series = dict[str, dict[Labels, float]]


def parse_textfile(text: str) -> tuple[Series, list[str]]:
    """palhm's samples in an existing textfile, and every other line (foreign
    metrics with their HELP/TYPE comments) verbatim, in order."""
    series: Series = {name: {} for name in METRICS}
    foreign: list[str] = []
    for line in text.splitlines():
        if _is_own_comment(line) or not line.strip():
            continue
        match = _SAMPLE.match(line)
        if match and match["name"] in METRICS:
            try:
                value = float(match["value"])
            except ValueError:
                continue  # a damaged sample is dropped, not copied forward
            destination = match["destination"]
            labels = (_unescape(match["task"]), _unescape(destination) if destination else None)
            series[match["name"]][labels] = value
        else:
            foreign.append(line)
    return series, foreign


def _is_own_comment(line: str) -> bool:
    parts = line.split(maxsplit=3)
    return (
        len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE") and parts[2] in METRICS
    )


def render_textfile(series: Series, foreign: Iterable[str] = ()) -> str:
    """The whole file: each palhm metric with HELP and TYPE, samples sorted by task."""
    out: list[str] = []
    for name, help_text in METRICS.items():
        samples = series.get(name, {})
        if not samples:
            continue
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        for labels in sorted(samples, key=lambda pair: (pair[0], pair[1] or "")):
            task, destination = labels
            text = f'task="{_escape(task)}"'
            if destination is not None:
                text += f',destination="{_escape(destination)}"'
            out.append(f"{name}{{{text}}} {_format_value(samples[labels])}")
    out.extend(foreign)
    return "\n".join(out) + "\n" if out else ""


MAX_TEXTFILE_SIZE: Final = 16 << 20


def update_textfile(path: Path, run: RunMetrics | VerifyMetrics) -> None:
    """Replace `run.task_id`'s samples in the textfile at `path`, atomically.

    The directory may be writable by another user (node_exporter's): every name in
    it is opened relative to the directory's descriptor and never through a link;
    the textfile is read only when it is a regular file of palhm's own user with
    one link (never a link, FIFO, device, or hard link to another file), and the
    lock file likewise. Anything else is refused, not replaced.

    Raises OSError (the caller logs it as a warning: metrics never fail a run).
    """
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with _locked(dir_fd, path):
            text = _read_own(dir_fd, path)
            series, foreign = parse_textfile(text)
            _replace_samples(series, run)
            _write_atomically(dir_fd, path, render_textfile(series, foreign))
    finally:
        os.close(dir_fd)


def _replace_samples(series: Series, run: RunMetrics | VerifyMetrics) -> None:
    """Put `run`'s samples in place of the ones of its task it owns."""
    task = (run.task_id, None)
    previous = {name: samples[task] for name, samples in series.items() if task in samples}
    earlier = {
        (name, str(labels[1])): value
        for name, samples in series.items()
        for labels, value in samples.items()
        if labels[0] == run.task_id and labels[1] is not None
    }
    owned = run.owned if isinstance(run, VerifyMetrics) else RUN_METRICS
    for name, samples in series.items():
        if name in owned:  # a run keeps the verify series, and the other way round
            for labels in [k for k in samples if k[0] == run.task_id]:
                del samples[labels]
    for name, value in run.samples(previous).items():
        series[name][task] = value
    if isinstance(run, RunMetrics):
        for (name, destination), value in run.destination_samples(earlier).items():
            series[name][run.task_id, destination] = value


def _open_own(dir_fd: int, path: Path, name: str, flags: int, mode: int = 0o600) -> int:
    """Open NAME in DIR_FD (never through a link, never blocking on a FIFO) and check
    it is a regular file of ours with a single link; OSError otherwise."""
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
            raise OSError(
                errno.EPERM,
                "not a regular file of palhm's own user with one link: not used",
                str(path.with_name(name)),
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_own(dir_fd: int, path: Path) -> str:
    try:
        fd = _open_own(dir_fd, path, path.name, os.O_RDONLY)
    except FileNotFoundError:
        return ""
    with open(fd, "rb") as file:
        data = file.read(MAX_TEXTFILE_SIZE + 1)
    if len(data) > MAX_TEXTFILE_SIZE:
        raise OSError(errno.EFBIG, f"larger than {MAX_TEXTFILE_SIZE} bytes", str(path))
    return data.decode("utf-8", errors="replace")


@contextmanager
def _locked(dir_fd: int, path: Path) -> Iterator[None]:
    # The textfile itself is replaced by rename, so the lock lives in a file of its own.
    fd = _open_own(dir_fd, path, f".{path.name}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(dir_fd: int, path: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        temp_name = f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(temp_name, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "w", encoding="utf-8") as temp:
            temp.write(text)
            temp.flush()
            # node_exporter runs as another user: the file must be world-readable
            os.fchmod(temp.fileno(), 0o644)
            os.fsync(temp.fileno())
        os.replace(temp_name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp_name, dir_fd=dir_fd)
        raise


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**63:
        return str(int(value))
    return repr(value)


def _escape(label: str) -> str:
    return label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(label: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], label)


@record
class DrillMetrics:
    """What one restore drill reports: the DRILL_METRICS series of its task."""

    task_id: str
    end_time: float  # Unix time
    duration: float  # seconds
    success: bool

    def samples(self, previous: Mapping[str, float]) -> dict[str, float]:
        """The drill series; the last passing drill's time is kept on failure."""
        values = {
            "palhm_last_drill_timestamp_seconds": round(self.end_time, 3),
            "palhm_last_drill_duration_seconds": round(self.duration, 3),
            "palhm_last_drill_success": 1.0 if self.success else 0.0,
        }
        name = "palhm_last_drill_success_timestamp_seconds"
        if self.success:
            values[name] = round(self.end_time, 3)
        elif name in previous:
            values[name] = previous[name]
        return values


def update_drill_textfile(path: Path, drill: DrillMetrics) -> None:
    """Replace only `drill.task_id`'s drill series in the textfile, atomically; every
    other series (the task's runs, other tasks, foreign metrics) is kept as it is.
    Files are opened as update_textfile opens them.

    Raises OSError (the caller logs it as a warning).
    """
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with _locked(dir_fd, path):
            series, foreign = parse_textfile(_read_own(dir_fd, path))
            task = (drill.task_id, None)
            previous = {name: series[name][task] for name in DRILL_METRICS if task in series[name]}
            for name in DRILL_METRICS:
                series[name].pop(task, None)
            for name, value in drill.samples(previous).items():
                series[name][task] = value
            _write_atomically(dir_fd, path, render_textfile(series, foreign))
    finally:
        os.close(dir_fd)
