"""The data path: the last stage's output, from its pipe into the object's sink.

    pump = Pump(read_end, sink, hasher, block_size, progress, context)
    moved = pump.on_readable()       # each time the pipe is readable
    pump.settle(moved)               # a short nap after a small wake-up
    ...                              # until pump.eof or pump.error
    pump.close()

The caller owns the waiting (it watches `pump.fd` beside the stages and `cancel`);
the pump only moves bytes, hashes them and counts them (doc/design.md#data-path).
Errors never escape: a failing sink is kept in `error` as a BackendError naming
`context`, and the caller stops the run.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Final, Protocol

from palhm import faults
from palhm.backends.base import ObjectSink
from palhm.engine.spawn import PIPE_SIZE, pipe_size
from palhm.errors import BackendError

_SMALL_WAKEUP: Final = 256 << 10  # bytes: a wake-up that moved less ...
_COALESCE_WAIT: Final = 0.0005  # s: ... is followed by this nap (a 1 MiB pipe only)
_BURST: Final = 16  # data chunks moved per wake-up before the stages are looked at again
_NO_SPLICE: Final = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})
_SPLICE_FLAGS: Final = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class Hasher(Protocol):
    """What the pump needs of a checksum (hashlib, blake3, xxhash objects fit)."""

    def update(self, data: memoryview | bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


class Pump:
    """Moves the last stage's output from its pipe into the sink, counting every byte.

    One thread (the caller's, between its waits for the stages) does it all: on 2
    cores already busy with the stages, a second thread and the hand-over between
    the two cost more than they overlap (bench/README.md). The pipe is non-blocking:
    each wake-up moves what the pipe holds, up to _BURST chunks, then goes back to
    watching the stages and `cancel`.

    - sink offers splice_fd() and no checksum: splice(2) pipe -> object file, no
      byte copied into Python;
    - sink `reads_into` (aws-s3): read straight into the sink's own memory (the part
      being filled), hash it there, and hand it over with sink.took();
    - else: read into one reused buffer, hash it while it is hot in the cache, and
      hand it to sink.write() (the path every sink supports).

    `size` counts exactly the bytes the sink accepted; the stages never get the
    object's file descriptor, so nothing else can write into the object.
    A sink error is kept in `error` and the run is stopped.

    The pump owns `fd` (made non-blocking here) and closes it in close().
    """

    def __init__(
        self,
        fd: int,
        sink: ObjectSink,
        hasher: Hasher | None,
        block_size: int,
        progress: Callable[[int], None] | None,
        context: str,
    ) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.coalesce = pipe_size(fd) >= PIPE_SIZE
        self.sink = sink
        self.hasher = hasher
        self.block_size = block_size
        self.progress = progress
        self.context = context
        self.splice_to = sink.splice_fd() if hasher is None else None
        self.direct = self.splice_to is None and sink.reads_into
        # where the next read goes; a direct sink's view is asked for read by read
        own = self.splice_to is None and not self.direct
        self.view = memoryview(bytearray(block_size)) if own else None
        self.filled = 0  # bytes of `view` read, not yet stored
        self.size = 0  # bytes the sink accepted
        self.eof = False
        self.error: BackendError | None = None

    def on_readable(self) -> int:
        """Move what the pipe holds now into the sink (at most _BURST reads). Returns
        the bytes taken from the pipe."""
        moved = 0
        for _ in range(_BURST):
            if self.eof or self.error is not None:
                break
            try:
                count = self._splice() if self.splice_to is not None else self._read()
            except BlockingIOError:  # drained: back to watching the stages
                break
            except BackendError as error:
                self.error = error
                break
            except Exception as error:  # a bug in a sink must not hang the run
                self.error = BackendError(f"{self.context}: sink failed: {error!r}")
                break
            if count == 0:
                self.eof = True
                break
            moved += count
        return moved

    def settle(self, moved: int) -> None:
        """After a wake-up that moved `moved` bytes: when it was a small one, nap.

        A stage writing a few KiB at a time would wake palhm for each write; a short
        nap lets the pipe fill (the writer never blocks below 2 GB/s)."""
        if 0 < moved < _SMALL_WAKEUP and self.coalesce:
            time.sleep(_COALESCE_WAIT)

    def stop(self) -> None:
        """End the object now, though the pipe is still open (a stray holds it): move
        what the pipe holds, store the buffer, and mark the end. A sink error is
        kept in `error`."""
        self.on_readable()
        try:
            self.flush()
        except BackendError as error:
            self.error = error
        self.eof = True

    def close(self) -> None:
        """Close the pipe (its writers get SIGPIPE from now on); `fd` becomes -1."""
        self._drop_sink_view()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _splice(self) -> int:
        """Splice what the pipe holds into the file. BlockingIOError when empty."""
        assert self.splice_to is not None
        try:
            count = os.splice(self.fd, self.splice_to, self.block_size, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            raise
        except OSError as error:
            if error.errno not in _NO_SPLICE:
                raise BackendError(
                    f"{self.context}: cannot write the object: {error.strerror}"
                ) from None
            # this file cannot be spliced into (nothing moved): write() from now on
            self.splice_to = None
            self.view = memoryview(bytearray(self.block_size))
            return self._read()
        if count:
            self.sink.spliced(count)
            self._stored(count)
        return count

    def _read(self) -> int:
        """Read into the buffer; hash and store it when full or at EOF. The pipe often
        holds a few KiB at a time: hashing and writing whole buffers keeps the cost
        per byte low. BlockingIOError when the pipe is empty."""
        if self.view is None:  # direct: the sink's memory for the next bytes
            self.view = self.sink.read_buffer(self.block_size)
        count = os.readv(self.fd, [self.view[self.filled :]])
        self.filled += count
        if count == 0 or self.filled == len(self.view):
            self.flush()
        return count

    def flush(self) -> None:
        """Hash and store what the buffer holds (read path; nothing to do when splicing)."""
        if not self.filled or self.view is None:
            self._drop_sink_view()
            return
        with self.view[: self.filled] as chunk:
            if self.hasher is not None:
                self.hasher.update(chunk)
            if not self.direct:
                try:
                    self.sink.write(chunk)
                except OSError as error:
                    raise BackendError(f"{self.context}: {error}") from error
        count, self.filled = self.filled, 0
        if self.direct:
            self._drop_sink_view()
            try:
                self.sink.took(count)
            except OSError as error:
                raise BackendError(f"{self.context}: {error}") from error
        self._stored(count)

    def _drop_sink_view(self) -> None:
        """A direct sink's view is released before the sink is told anything: the
        sink may then cut or reuse its memory."""
        if self.direct and self.view is not None:
            self.view.release()
            self.view = None

    def _stored(self, count: int) -> None:
        self.size += count
        faults.crashpoint("chunk-written")
        if self.progress is not None:
            self.progress(self.size)
