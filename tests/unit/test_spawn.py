"""palhm.engine.spawn: the environment (pure); starting one process (real, cheap ones)."""

from __future__ import annotations

import fcntl
import json
import os
import sys

from palhm.engine.spawn import PIPE_SIZE, data_pipe, environment, pipe_size, spawn
from palhm.model import Exec

# What a child tells of itself, as JSON on stdout: its argv, process group, parent-death
# signal (prctl PR_GET_PDEATHSIG = 2), open descriptors and stdin.
REPORT = """
import ctypes, json, os, sys
sig = ctypes.c_int(0)
ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)
print(json.dumps({
    "argv": sys.argv[1:],
    "pgid": os.getpgid(0),
    "pid": os.getpid(),
    "pdeathsig": sig.value,
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "stdin": os.readlink("/proc/self/fd/0"),
    "env": os.environ.get("PALHM_SPAWN_TEST"),
}))
"""


def report(argv: tuple[str, ...] = (), *, pgid: int | None = None, **fields: object) -> dict:
    """Start REPORT through spawn() and return what it printed."""
    cmd = Exec(argv=(sys.executable, "-c", REPORT, *argv), **fields)  # type: ignore[arg-type]
    read_end, write_end = os.pipe()
    err = os.open(os.devnull, os.O_WRONLY)
    try:
        proc = spawn(cmd, stdin=None, stdout=write_end, stderr=err, pgid=pgid)
    finally:
        os.close(write_end)
        os.close(err)
    with os.fdopen(read_end, "rb") as stream:
        out = stream.read()
    assert proc.wait() == 0
    return json.loads(out)  # type: ignore[no-any-return]


def test_environment_adds_to_palhm_environment() -> None:
    env = environment(Exec(argv=("x",), env={"PALHM_UNIT": "1"}))
    assert env is not None
    assert env["PALHM_UNIT"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_environment_without_additions_is_inherited_as_is() -> None:
    assert environment(Exec(argv=("x",))) is None


def test_spawn_passes_argv_as_is_never_through_a_shell() -> None:
    argv = ("$HOME", "a b", "; echo no", "*")
    assert report(argv)["argv"] == list(argv)


def test_spawn_gives_stdin_dev_null_and_no_other_descriptor() -> None:
    held = os.open(os.devnull, os.O_RDONLY)
    high = os.dup2(held, 200, inheritable=True)  # inheritable in palhm: must not reach the child
    try:
        seen = report()
    finally:
        os.close(held)
        os.close(high)
    assert seen["stdin"] == "/dev/null"
    assert {0, 1, 2} <= set(seen["fds"])
    assert high not in seen["fds"]


def test_spawn_founds_a_group_then_joins_it() -> None:
    first = report()
    assert first["pgid"] == first["pid"] != os.getpgid(0)
    # a group whose leader is gone still exists while one member lives: use a live one
    read_end, write_end = os.pipe()
    waiting = Exec(argv=(sys.executable, "-c", "import sys; sys.stdin.read()"))
    leader = spawn(waiting, stdin=read_end, stdout=None, stderr=2, pgid=None)
    os.close(read_end)
    try:
        assert report(pgid=leader.pid)["pgid"] == leader.pid
    finally:
        os.close(write_end)  # its end of input: it exits
        assert leader.wait() == 0


def test_spawn_sets_the_parent_death_signal_to_sigkill() -> None:
    assert report()["pdeathsig"] == 9


def test_spawn_adds_the_exec_environment() -> None:
    assert report(env={"PALHM_SPAWN_TEST": "yes"})["env"] == "yes"


def test_data_pipe_is_close_on_exec_and_enlarged_when_allowed() -> None:
    read_end, write_end = data_pipe()
    try:
        for fd in (read_end, write_end):
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert pipe_size(write_end) in (PIPE_SIZE, 1 << 16)  # 64 KiB past the user quota
    finally:
        os.close(read_end)
        os.close(write_end)


def test_pipe_size_of_a_non_pipe_is_zero() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        assert pipe_size(fd) == 0
    finally:
        os.close(fd)
