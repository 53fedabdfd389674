"""Progress lines on a terminal (doc/operations.md): rendering, and silence when not a tty."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator

import pytest

from palhm.engine.progress import (
    ProgressBoard,
    human_duration,
    human_size,
    open_board,
    render_line,
)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A real pseudo-terminal: (the palhm side as a text stream, the reader's fd)."""
    controller, tty = os.openpty()
    stream = open(tty, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    yield stream, controller
    stream.close()
    os.close(controller)


def read_available(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            chunks.append(os.read(fd, 65536))
    except BlockingIOError:
        pass
    return b"".join(chunks).decode()


def test_sizes_use_binary_units_with_three_significant_digits() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.50 KiB"
    assert human_size(50 * 1024**2) == "50.0 MiB"
    assert human_size(300 * 1024**3) == "300 GiB"


def test_durations_grow_hours_and_days_only_when_needed() -> None:
    assert human_duration(7.9) == "0:07"
    assert human_duration(12 * 60 + 3) == "12:03"
    assert human_duration(3723) == "1:02:03"
    assert human_duration(3 * 86400 + 4 * 3600 + 5 * 60 + 6) == "3d 04:05:06"


def test_line_shows_path_bytes_rate_and_elapsed_time() -> None:
    line = render_line("db/all.sql.zst", 20 * 1024**2, 4.0, width=80)
    assert line.split() == ["db/all.sql.zst", "20.0", "MiB", "5.00", "MiB/s", "0:04"]


def test_line_without_byte_count_shows_elapsed_time_only() -> None:
    assert render_line("etc.tar", None, 65, width=80).split() == ["etc.tar", "running", "1:05"]


def test_long_path_loses_its_beginning_and_line_fits_the_width() -> None:
    path = "very/long/directory/name/" * 6 + "final-file.tar.zst"
    line = render_line(path, 1024, 1.0, width=60)
    assert len(line) <= 60
    assert line.startswith("...")
    assert "final-file.tar.zst" in line


def test_board_lists_running_objects_in_start_order_until_finished() -> None:
    clock = FakeClock()
    board = ProgressBoard(io.StringIO(), enabled=True, clock=clock)
    board.start("a")
    clock.now += 1
    board.start("b")
    board.reporter("a")(2048)
    clock.now += 1
    lines = board.lines(width=80)
    assert [line.split()[0] for line in lines] == ["a", "b"]
    assert "2.00 KiB" in lines[0] and "0:02" in lines[0]
    assert "running" in lines[1]
    board.finish("a")
    assert [line.split()[0] for line in board.lines(width=80)] == ["b"]


def test_board_redraws_in_place_over_its_previous_block() -> None:
    stream = io.StringIO()
    board = ProgressBoard(stream, enabled=True, clock=FakeClock())
    board.start("first")
    board.start("second")
    board.refresh()
    board.refresh()
    second_draw = stream.getvalue().split("second", 1)[1]
    # back to the start of the line, one line up (2-line block), erase, redraw
    assert "\r\x1b[1A\x1b[J" in second_draw
    board.erase()
    assert stream.getvalue().endswith("\r\x1b[1A\x1b[J")


def test_disabled_board_writes_nothing() -> None:
    stream = io.StringIO()
    board = ProgressBoard(stream, enabled=False)
    with board:
        board.start("x")
        board.update("x", 10)
        board.refresh()
        board.finish("x")
    assert stream.getvalue() == ""


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    read_end, write_end = os.pipe()
    with open(write_end, "w") as pipe:
        board = open_board(4, stream=pipe)
        with board:
            board.start("x")
            board.update("x", 100)
        assert not board.enabled
    with open(read_end, "rb") as reader:
        assert reader.read() == b""


def test_quiet_run_shows_no_progress_even_on_a_terminal(
    terminal: tuple[io.TextIOWrapper, int],
) -> None:
    stream, controller = terminal
    assert not open_board(1, stream=stream).enabled
    assert not open_board(2, stream=stream).enabled
    board = open_board(3, stream=stream)
    assert board.enabled


def test_terminal_shows_object_line_and_erases_it_at_the_end(
    terminal: tuple[io.TextIOWrapper, int],
) -> None:
    stream, controller = terminal
    with open_board(3, stream=stream) as board:
        board.start("data.tar.zst")
        board.update("data.tar.zst", 3 * 1024**2)
        board.refresh()
        drawn = read_available(controller)
    after = read_available(controller)
    assert "data.tar.zst" in ANSI.sub("", drawn)
    assert "3.00 MiB" in drawn
    assert after.endswith("\x1b[J")  # the block is erased on close


def test_log_line_is_printed_above_the_block_not_inside_it(
    terminal: tuple[io.TextIOWrapper, int],
) -> None:
    stream, controller = terminal
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with open_board(3, stream=stream) as board:
            board.start("obj")
            board.refresh()
            read_available(controller)
            logging.getLogger("palhm.test").warning("a warning")
            written = read_available(controller)
        assert handler.stream is stream  # restored after the board closed
    finally:
        root.removeHandler(handler)
    # the block is erased before the log text, on the same write path
    assert written.index("\x1b[J") < written.index("a warning")
