"""The stderr of the children of one call: drained in one thread, relayed, tailed.

    relay = StderrRelay()
    relay.add(read_end, StderrTail(forward=verbosity >= cmd.vl_stderr))  # per child
    relay.start()                     # once every child is started
    ...                               # the children run and end
    relay.stop(STDERR_WAIT)           # after they are reaped; closes every pipe

One thread per call drains every child's stderr pipe, so a chatty child never
blocks on a full pipe whatever the calling thread is doing. A StderrTail relays
whole lines to fd 2 when `forward` (doc/design.md#execs-and-pipeline-stages) and
keeps the last STDERR_TAIL_LINES non-blank lines for error messages either way.
The relay thread blocks SIGINT and SIGTERM: Python's handlers run in the main thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
from collections import deque
from typing import Final

STDERR_TAIL_LINES: Final = 20  # lines of a child's stderr kept for its error message
STDERR_WAIT: Final = 1.0  # s to wait for stderr EOF after the children are reaped
TAIL_LINE_CHARS: Final = 400  # a tail line longer than this is cut

_STDERR_LINE_MAX: Final = 1 << 16  # bytes: relay a partial line once it is this long
_READ_CHUNK: Final = 1 << 16  # bytes read from a stderr pipe at a time
_DRAIN_READS: Final = 64  # reads of a pipe when forced to stop: a stray may never stop


class StderrTail:
    """The last lines of one child's stderr; relays whole lines to fd 2 when `forward`."""

    def __init__(self, forward: bool) -> None:
        self.forward = forward
        self._lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream; whole lines are relayed and kept."""
        self._partial += data
        end = self._partial.rfind(b"\n") + 1
        if end == 0:
            if len(self._partial) < _STDERR_LINE_MAX:
                return
            end = len(self._partial)
        chunk = bytes(self._partial[:end])
        del self._partial[:end]
        self._emit(chunk)

    def finish(self) -> None:
        """The stream ended: an unterminated last line counts as a line."""
        if self._partial:
            self._emit(bytes(self._partial) + b"\n")
            self._partial.clear()

    def lines(self) -> list[str]:
        return list(self._lines)

    def _emit(self, chunk: bytes) -> None:
        if self.forward:
            _write_all(2, chunk)
        for raw in chunk.rstrip(b"\n").rsplit(b"\n", STDERR_TAIL_LINES)[-STDERR_TAIL_LINES:]:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._lines.append(line[:TAIL_LINE_CHARS])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError:  # palhm's own stderr is gone: nothing better to do with it
            return
        view = view[written:]


class StderrRelay:
    """Drains the stderr pipes of one call's children in one thread."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._stop_read, self._stop_write = os.pipe()
        self._selector.register(self._stop_read, selectors.EVENT_READ, None)
        self._open = 0
        self._thread = threading.Thread(target=self._run, name="palhm-stderr", daemon=True)

    def add(self, fd: int, tail: StderrTail) -> None:
        """Take ownership of `fd` (read end of a stderr pipe). Before start() only."""
        self._selector.register(fd, selectors.EVENT_READ, tail)
        self._open += 1

    def start(self) -> None:
        """Start draining, in a daemon thread."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Wait up to `timeout` for EOF on every pipe, then read what is left and stop
        (a descendant that left the process group may hold a pipe open forever)."""
        if self._thread.ident is None:  # never started: a stage could not be started
            self._drain_all()
        else:
            self._thread.join(timeout)
            if self._thread.is_alive():
                os.write(self._stop_write, b"x")
                self._thread.join()
        self._selector.close()
        os.close(self._stop_read)
        os.close(self._stop_write)

    def _run(self) -> None:
        # signals go to the main thread, which runs Python handlers (and sigmask holds)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while self._open:
            for key, _ in self._selector.select():
                if key.data is None:
                    self._drain_all()
                    return
                self._read(key.fd, key.data)

    def _read(self, fd: int, tail: StderrTail) -> None:
        try:
            data = os.read(fd, _READ_CHUNK)
        except OSError:
            data = b""
        if data:
            tail.feed(data)
        else:
            self._close(fd, tail)

    def _drain_all(self) -> None:
        """Read what the pipes hold now (bounded), then close them all."""
        for key in [key for key in self._selector.get_map().values() if key.data is not None]:
            os.set_blocking(key.fd, False)
            with contextlib.suppress(OSError):
                for _ in range(_DRAIN_READS):
                    data = os.read(key.fd, _READ_CHUNK)
                    if not data:
                        break
                    key.data.feed(data)
            self._close(key.fd, key.data)

    def _close(self, fd: int, tail: StderrTail) -> None:
        tail.finish()
        self._selector.unregister(fd)
        os.close(fd)
        self._open -= 1
