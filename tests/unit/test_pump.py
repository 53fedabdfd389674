"""palhm.engine.pump alone: a real pipe written by the test, real sinks, no stage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from palhm.engine.pump import Pump
from palhm.engine.spawn import data_pipe
from palhm.errors import BackendError
from tests.integration.execute_support import FailingSink, FileSink, MemorySink

DATA = bytes(range(256)) * 1000  # 256,000 bytes: more than one 64 KiB block


def pump_all(pump: Pump, write_end: int, data: bytes) -> None:
    """Write `data` into the pipe in pieces the pipe can hold, moving them on each time."""
    for start in range(0, len(data), 32 << 10):
        os.write(write_end, data[start : start + (32 << 10)])
        pump.on_readable()
    os.close(write_end)
    while not pump.eof and pump.error is None:
        pump.on_readable()


def test_read_path_hashes_and_stores_every_byte_in_whole_blocks() -> None:
    read_end, write_end = data_pipe()
    sink = MemorySink()
    sizes: list[int] = []
    pump = Pump(read_end, sink, hashlib.sha256(), 1 << 16, sizes.append, "c")
    pump_all(pump, write_end, DATA)
    pump.close()
    assert bytes(sink.data) == DATA
    assert pump.size == len(DATA)
    assert pump.hasher is not None
    assert pump.hasher.hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert sink.chunk_sizes == [1 << 16] * 3 + [len(DATA) - 3 * (1 << 16)]
    assert sizes == [1 << 16, 2 << 16, 3 << 16, len(DATA)]  # progress: the running total


def test_without_a_checksum_the_pipe_is_spliced_into_the_sink_file(tmp_path: Path) -> None:
    read_end, write_end = data_pipe()
    sink = FileSink(tmp_path / "object")
    pump = Pump(read_end, sink, None, 1 << 20, None, "c")
    assert pump.splice_to == sink.fd
    pump_all(pump, write_end, DATA)
    pump.close()
    assert sink.close() == len(DATA) == pump.size
    assert sink.writes == 0  # no byte went through write()
    assert (tmp_path / "object").read_bytes() == DATA


def test_a_file_that_cannot_be_spliced_into_falls_back_to_write(tmp_path: Path) -> None:
    read_end, write_end = data_pipe()
    sink = FileSink(tmp_path / "object")
    os.close(sink.fd)
    sink.fd = os.open(tmp_path / "object", os.O_WRONLY | os.O_APPEND)  # splice: EINVAL
    pump = Pump(read_end, sink, None, 1 << 16, None, "c")
    pump_all(pump, write_end, DATA)
    pump.close()
    assert pump.splice_to is None
    assert sink.close() == len(DATA) == pump.size


def test_a_sink_error_is_kept_and_ends_the_pumping() -> None:
    read_end, write_end = data_pipe()
    pump = Pump(read_end, FailingSink(100_000), None, 1 << 16, None, "c")
    pump_all(pump, write_end, DATA)
    pump.close()
    assert isinstance(pump.error, BackendError)
    assert "No space left on device" in str(pump.error)
    assert pump.size == 1 << 16  # only what the sink accepted is counted


def test_a_bug_in_a_sink_becomes_a_backend_error_naming_the_context() -> None:
    class Broken(MemorySink):
        def write(self, data: memoryview) -> None:
            raise ZeroDivisionError

    read_end, write_end = data_pipe()
    pump = Pump(read_end, Broken(), None, 1 << 16, None, "task 't', object 'o'")
    pump_all(pump, write_end, DATA)
    pump.close()
    assert str(pump.error) == "task 't', object 'o': sink failed: ZeroDivisionError()"


def test_stop_stores_what_the_pipe_holds_though_a_writer_keeps_it_open() -> None:
    read_end, write_end = data_pipe()
    sink = MemorySink()
    pump = Pump(read_end, sink, hashlib.sha256(), 1 << 20, None, "c")
    os.write(write_end, b"partial object")
    pump.stop()
    pump.close()
    os.close(write_end)
    assert (pump.eof, pump.error, bytes(sink.data)) == (True, None, b"partial object")


def test_stop_keeps_the_sink_error_of_the_last_block() -> None:
    read_end, write_end = data_pipe()
    pump = Pump(read_end, FailingSink(3), None, 1 << 20, None, "c")
    os.write(write_end, b"four")
    pump.stop()
    pump.close()
    os.close(write_end)
    assert isinstance(pump.error, BackendError)
    assert pump.size == 0


def test_close_closes_the_pipe_once() -> None:
    read_end, write_end = data_pipe()
    pump = Pump(read_end, MemorySink(), None, 1 << 16, None, "c")
    pump.close()
    pump.close()
    assert pump.fd == -1
    with pytest.raises(BrokenPipeError):  # writers get SIGPIPE / EPIPE from now on
        os.write(write_end, b"x")
    os.close(write_end)
