"""Live progress of backup objects on a terminal (doc/operations.md); silent under cron.

`open_board(verbosity)` returns a `ProgressBoard`. It draws only when stderr is a
terminal and the verbosity is info or more (so never with `-q`); otherwise every
method is a cheap no-op and nothing is written. The backup engine uses it so:

    with open_board(verbosity) as board:
        board.start(obj.path)                   # an object's pipeline starts
        run_pipeline(..., progress=board.reporter(obj.path))
        board.finish(obj.path)                  # done, failed or cancelled

`reporter(path)` is the `progress` callback of `execute.run_pipeline`: it is called
with the total bytes stored so far, from the pump thread of that object. For an
object written straight into a file descriptor (no Python in the data path, so no
callback), `start(path, poll=...)` may give a function returning the bytes written
so far (e.g. an fstat of the target); without one, the line shows elapsed time only.

A background thread redraws one line per running object about twice a second: it
moves the cursor back up over the previous block and rewrites it (`\\r`, ANSI
cursor-up and erase). While the board is open, the log handlers that print to the
same stream write through the board, which erases the block first, so log lines
never get mixed into it. (Children's stderr goes to the terminal directly and may.)

Threads: `start`, `update`, `finish` may be called from any thread.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, TextIO

from palhm.records import field, record

REFRESH_SECONDS: Final = 0.5
DEFAULT_COLUMNS: Final = 80
INFO_VERBOSITY: Final = 3
_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_ERASE_LINE: Final = "\x1b[2K"


def human_size(nbytes: float) -> str:
    """Bytes in binary units with 3 significant digits: `512 B`, `1.50 KiB`, `12.3 GiB`."""
    value = float(nbytes)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {unit}"


def human_duration(seconds: float) -> str:
    """`0:07`, `12:03`, `1:02:03`, `3d 04:05:06`: elapsed times and ages."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def render_line(path: str, nbytes: int | None, elapsed: float, *, width: int) -> str:
    """One object's line: `path  12.3 MiB  45.6 MiB/s  0:12`, cut to `width` columns.

    `nbytes` None means the byte count is unknown (direct-fd path without a poll).
    A long path loses its beginning, not its end: the file name matters most.
    """
    if nbytes is None:
        stats = f"running  {human_duration(elapsed)}"
    else:
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        stats = f"{human_size(nbytes)}  {human_size(rate)}/s  {human_duration(elapsed)}"
    room = width - len(stats) - 2
    if room < 8:
        return (path + "  " + stats)[: max(width, 0)]
    if len(path) > room:
        path = "..." + path[-(room - 3) :]
    return f"{path}  {stats}"


@record(frozen=False)
class _Running:
    started: float
    nbytes: int | None = None
    poll: Callable[[], int | None] | None = field(default=None)

    def current_bytes(self) -> int | None:
        if self.poll is not None:
            try:
                return self.poll()
            except OSError:
                return self.nbytes
        return self.nbytes


class ProgressBoard:
    """The live lines of the running objects. Disabled boards do nothing at all."""

    def __init__(
        self, stream: TextIO, *, enabled: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self._clock = clock
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._drawn = 0  # lines of the block currently on the terminal
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swapped: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    # ------------------------------------------------------------ engine side
    def start(self, path: str, *, poll: Callable[[], int | None] | None = None) -> None:
        """An object's pipeline starts (its line appears at the next refresh)."""
        if self.enabled:
            with self._lock:
                self._running[path] = _Running(self._clock(), poll=poll)

    def update(self, path: str, nbytes: int) -> None:
        """`nbytes` stored so far for `path`. Cheap: called for every chunk."""
        running = self._running.get(path)
        if running is not None:
            running.nbytes = nbytes

    def reporter(self, path: str) -> Callable[[int], None]:
        """The `progress` callback for `run_pipeline` of object `path`."""

        def report(nbytes: int) -> None:
            self.update(path, nbytes)

        return report

    def finish(self, path: str) -> None:
        """The object is done (or failed): its line goes away at the next refresh."""
        if self.enabled:
            with self._lock:
                self._running.pop(path, None)

    # ------------------------------------------------------------ drawing
    def lines(self, *, width: int) -> list[str]:
        """The block as it would be drawn now, in start order."""
        now = self._clock()
        with self._lock:
            items = list(self._running.items())
        return [
            render_line(path, run.current_bytes(), now - run.started, width=width)
            for path, run in items
        ]

    def refresh(self) -> None:
        """Redraw the block in place (called by the refresh thread)."""
        if not self.enabled:
            return
        lines = self.lines(width=max(self._columns() - 1, 20))
        with self._lock:
            if not lines and not self._drawn:
                return
            text = self._erase_text() + "\n".join(_ERASE_LINE + line for line in lines)
            self._drawn = len(lines)
            self._write(text)

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return DEFAULT_COLUMNS
        return columns or DEFAULT_COLUMNS  # a fresh pty may report 0

    def erase(self) -> None:
        """Remove the block from the terminal (at the end)."""
        self.write_above("")

    def write_above(self, text: str) -> None:
        """Erase the block, then write `text` (a log line); the next refresh redraws
        the block below it."""
        with self._lock:
            if self._drawn:
                text = self._erase_text() + text
                self._drawn = 0
            if text:
                self._write(text)

    def _erase_text(self) -> str:
        # back to the first line of the block, then clear from there to the end
        if not self._drawn:
            return "\r"
        up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
        return f"\r{up}\x1b[J"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # terminal gone: progress is best effort
            self.enabled = False

    # ------------------------------------------------------------ lifetime
    def __enter__(self) -> ProgressBoard:
        if self.enabled:
            self._swapped = _redirect_handlers(self)
            self._thread = threading.Thread(target=self._loop, name="palhm-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop refreshing and erase the block. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.enabled:
            self.erase()
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped = []

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            if self.enabled:
                self.refresh()


class _LogStream:
    """Stands in for the stream of a log handler while the board is open: a log line
    first erases the block, under the board's lock, so the two never interleave."""

    def __init__(self, board: ProgressBoard, stream: TextIO) -> None:
        self.board = board
        self.stream = stream

    def write(self, text: str) -> int:
        self.board.write_above(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _redirect_handlers(board: ProgressBoard) -> list[tuple[logging.StreamHandler[TextIO], TextIO]]:
    """Point every root handler printing to the board's stream at a `_LogStream`."""
    swapped = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is board.stream:
            proxy: TextIO = _LogStream(board, board.stream)  # type: ignore[assignment]
            swapped.append((handler, handler.setStream(proxy) or board.stream))
    return swapped


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def open_board(verbosity: int, *, stream: TextIO | None = None) -> ProgressBoard:
    """A board for this run: live on a terminal at verbosity >= 3 (info), else silent.

    Use it as a context manager so the refresh thread stops and the block is erased.
    """
    target = stream if stream is not None else sys.stderr
    enabled = verbosity >= INFO_VERBOSITY and is_terminal(target)
    return ProgressBoard(target, enabled=enabled)
