"""The data path: the manifest describes exactly the bytes of each stored object.

Every object is checked against the system's own checksum tools (b3sum, sha256sum,
xxh128sum) and against the bytes the stage produced, for every checksum setting,
with and without alloc-size (smaller and larger than the data), including stages
that reopen their output through /proc/self/fd/1 or /dev/stdout, several objects
in parallel; and processes a stage leaves holding its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import need_program, run_palhm, wait_for
from tests.integration.backup_support import (
    TASK,
    backup_config,
    copies_in,
    inline,
    manifest_of,
    obj,
    python_stage,
)

CHECKSUMS = ("blake3", "sha256", "xxh3-128", "none")
TOOLS = {"blake3": "b3sum", "sha256": "sha256sum", "xxh3-128": "xxh128sum"}
LARGE = (5 << 20) + 12345  # more than any buffer or pipe palhm uses
# alloc-size: none, smaller than most objects, larger than any
ALLOCS = (None, 1, 64 << 20)
SALT = "0011223344556677"  # a fixed salt: openssl's output is reproducible


def openssl(*args: str) -> list[str]:
    return ["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-pass", "pass:palhm", "-S", SALT, *args]


def tool_digest(algorithm: str, path: Path) -> str:
    done = subprocess.run([TOOLS[algorithm], str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A random file larger than any buffer, and a directory to tar."""
    need_program("b3sum", "sha256sum", "xxh128sum", "openssl", "tar")
    base = tmp_path_factory.mktemp("sources")
    large = base / "large.bin"
    large.write_bytes(os.urandom(LARGE))
    tree = base / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    tar_bytes = subprocess.run(
        ["tar", "-C", str(tree), "-cf", "-", "."], capture_output=True, check=True
    ).stdout
    encrypted = subprocess.run(openssl("-in", str(large)), capture_output=True, check=True).stdout
    return {"large": large, "tree": tree, "tar": tar_bytes, "encrypted": encrypted}


def objects_and_expected(sources: dict[str, Any], alloc: int | None) -> tuple[list[Any], dict]:
    extra = {"alloc-size": alloc} if alloc is not None else {}
    tree, large = str(sources["tree"]), str(sources["large"])
    cases: dict[str, tuple[list[dict[str, Any]], bytes]] = {
        "empty": ([inline("true")], b""),
        "one-byte": ([inline("printf", "x")], b"x"),
        "large": ([inline("cat", large)], sources["large"].read_bytes()),
        "large-piped": ([inline("cat", large), inline("cat")], sources["large"].read_bytes()),
        "tar-proc-self-fd-1": (
            [inline("tar", "-C", tree, "-cf", "/proc/self/fd/1", ".")],
            sources["tar"],
        ),
        "tar-dev-stdout": ([inline("tar", "-C", tree, "-cf", "/dev/stdout", ".")], sources["tar"]),
        "openssl-dev-stdout": (
            [inline(*openssl("-in", large, "-out", "/dev/stdout"))],
            sources["encrypted"],
        ),
        "openssl-proc-self-fd-1": (
            [inline("cat", large), inline(*openssl("-out", "/proc/self/fd/1"))],
            sources["encrypted"],
        ),
    }
    objects = [obj(name, *stages, **extra) for name, (stages, _) in cases.items()]
    return objects, {name: data for name, (_, data) in cases.items()}


@pytest.mark.parametrize("alloc", ALLOCS, ids=lambda a: f"alloc-{a}")
@pytest.mark.parametrize("checksum", CHECKSUMS)
def test_manifest_describes_exactly_the_stored_bytes(
    tmp_path: Path, sources: dict[str, Any], checksum: str, alloc: int | None
) -> None:
    root = tmp_path / "root"
    objects, expected = objects_and_expected(sources, alloc)
    config = backup_config(tmp_path / "c.json", root, objects, checksum=checksum, nb_workers=4)
    done = run_palhm(["-q", "-f", str(config), "run", TASK])
    assert done.returncode == 0, done.stderr
    (prefix,) = copies_in(root)
    manifest = manifest_of(root, prefix)
    records = {record["path"]: record for record in manifest["objects"]}
    assert set(records) == set(expected)
    for name, data in expected.items():
        stored = root / prefix / name
        assert stored.read_bytes() == data, name
        record = records[name]
        assert record["size"] == len(data) == stored.stat().st_size, name
        if checksum == "none":
            assert record["checksum"] is None, name
        else:
            assert record["checksum"] == {
                "algorithm": checksum,
                "hex": tool_digest(checksum, stored),
            }, name
        if alloc is not None:  # the unused reservation was given back
            assert stored.stat().st_blocks * 512 < max(len(data), 1) + (1 << 20), name
    assert manifest["size"] == sum(len(data) for data in expected.values())
    verified = run_palhm(["-q", "-f", str(config), "verify", TASK])
    assert verified.returncode == 0, verified.stderr


def test_the_last_stage_writes_into_a_pipe_and_null_into_dev_null(tmp_path: Path) -> None:
    """localfs: the stage's stdout is palhm's pipe, never the object file; null: the
    stage writes to /dev/null itself (no byte passes through palhm)."""
    probe = "import os, sys; open(sys.argv[1], 'w').write(os.readlink('/proc/self/fd/1'))"
    seen_local, seen_null = tmp_path / "local", tmp_path / "null"
    for checksum in CHECKSUMS:
        config = backup_config(
            tmp_path / "c.json",
            tmp_path / "root",
            [obj("probe", python_stage(probe, str(seen_local)))],
            checksum=checksum,
        )
        assert run_palhm(["-q", "-f", str(config), "run", TASK]).returncode == 0
        assert seen_local.read_text().startswith("pipe:["), checksum
        config = backup_config(
            tmp_path / "n.json",
            tmp_path / "unused",
            [obj("probe", python_stage(probe, str(seen_null)))],
            checksum=checksum,
            backend="null",
        )
        assert run_palhm(["-q", "-f", str(config), "run", TASK]).returncode == 0
        assert seen_null.read_text() == os.devnull, checksum


DETACHED = """
import subprocess, sys
sys.stdout.write("hi\\n"); sys.stdout.flush()
late = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
late += "end = time.monotonic() + 120\\n"
late += "while not os.path.exists(sys.argv[2]) and time.monotonic() < end: time.sleep(0.05)\\n"
late += "sys.stdout.write('late\\\\n'); sys.stdout.flush()"
# a new session: out of reach of palhm's process group, still holding stdout; it
# writes 'late' once the file argv[2] exists (the test makes it after palhm's run)
subprocess.Popen([sys.executable, "-c", late, sys.argv[1], sys.argv[2]], start_new_session=True)
"""


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("checksum", ["none", "blake3"])
def test_detached_process_holding_the_output_is_killed_and_never_writes_the_copy(
    tmp_path: Path, checksum: str
) -> None:
    pid_file, go = tmp_path / "pid", tmp_path / "write-late"
    config = backup_config(
        tmp_path / "c.json",
        tmp_path / "root",
        [obj("out", python_stage(DETACHED, str(pid_file), str(go)))],
        checksum=checksum,
    )
    done = run_palhm(["-f", str(config), "run", TASK], timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(pid_file.read_text())
    assert f"pid {pid} " in done.stderr and "killed" in done.stderr, done.stderr
    wait_for(lambda: process_gone(pid), what="the detached process to be gone", timeout=10)
    (prefix,) = copies_in(tmp_path / "root")
    stored = tmp_path / "root" / prefix / "out"
    assert stored.read_bytes() == b"hi\n"
    before = stored.stat()
    go.touch()  # the moment the detached process would write, had it survived
    time.sleep(1)
    assert stored.read_bytes() == b"hi\n"
    assert stored.stat().st_mtime_ns == before.st_mtime_ns
    record = manifest_of(tmp_path / "root", prefix)["objects"][0]
    assert record["size"] == 3
    assert run_palhm(["-q", "-f", str(config), "verify", TASK]).returncode == 0


def test_detached_process_not_holding_the_output_is_left_alone(tmp_path: Path) -> None:
    """A daemon started by a stage with its output elsewhere is not palhm's to kill."""
    pid_file = tmp_path / "pid"
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"
        "open(sys.argv[1], 'w').write(str(p.pid)); print('started')\n"
    )
    config = backup_config(
        tmp_path / "c.json", tmp_path / "root", [obj("out", python_stage(code, str(pid_file)))]
    )
    done = run_palhm(["-f", str(config), "run", TASK])
    pid = int(pid_file.read_text())
    try:
        assert done.returncode == 0, done.stderr
        assert "killed" not in done.stderr
        assert not process_gone(pid)
    finally:
        os.kill(pid, 9)
    (prefix,) = copies_in(tmp_path / "root")
    assert (tmp_path / "root" / prefix / "out").read_bytes() == b"started\n"


def test_parallel_objects_each_get_exactly_their_bytes(tmp_path: Path) -> None:
    objects = [
        obj(
            f"o{i}",
            python_stage(f"import sys; sys.stdout.buffer.write(bytes([{i}]) * {i * 100_003})"),
        )
        for i in range(1, 9)
    ]
    config = backup_config(tmp_path / "c.json", tmp_path / "root", objects, nb_workers=4)
    done = run_palhm(["-q", "-f", str(config), "run", TASK])
    assert done.returncode == 0, done.stderr
    (prefix,) = copies_in(tmp_path / "root")
    manifest = json.loads((tmp_path / "root" / prefix / ".palhm-manifest.json").read_text())
    for record in manifest["objects"]:
        i = int(record["path"][1:])
        stored = tmp_path / "root" / prefix / record["path"]
        assert stored.read_bytes() == bytes([i]) * (i * 100_003)
        assert record["checksum"]["hex"] == tool_digest("blake3", stored)


@pytest.mark.parametrize("backend", ["localfs", "null"])
def test_detached_process_holding_a_middle_pipe_is_killed_and_the_next_stage_ends(
    tmp_path: Path, backend: str
) -> None:
    """`cat` would wait forever for the end of its input, held by a process stage 1
    left in a new session: palhm kills it after the grace and cat finishes."""
    pid_file = tmp_path / "pid"
    config = backup_config(
        tmp_path / "c.json",
        tmp_path / "root",
        [obj("out", python_stage(DETACHED, str(pid_file), str(tmp_path / "never")), inline("cat"))],
        backend=backend,
    )
    done = run_palhm(["-f", str(config), "run", TASK], timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(pid_file.read_text())
    assert "stage 1" in done.stderr and f"pid {pid} " in done.stderr, done.stderr
    wait_for(lambda: process_gone(pid), what="the detached process to be gone", timeout=10)
    if backend == "localfs":
        (prefix,) = copies_in(tmp_path / "root")
        assert (tmp_path / "root" / prefix / "out").read_bytes() == b"hi\n"


def test_a_stage_still_working_after_its_input_ended_is_left_to_finish(tmp_path: Path) -> None:
    """Nothing holds the pipe into stage 2 once stage 1 exited: palhm's look after the
    grace finds no one and stage 2 (busy 3 s more) finishes its object."""
    slow = "import sys, time; data = sys.stdin.read(); time.sleep(3); sys.stdout.write(data * 2)"
    config = backup_config(
        tmp_path / "c.json",
        tmp_path / "root",
        [obj("out", inline("printf", "ab"), python_stage(slow))],
    )
    done = run_palhm(["-f", str(config), "run", TASK])
    assert done.returncode == 0, done.stderr
    assert "killed" not in done.stderr
    (prefix,) = copies_in(tmp_path / "root")
    assert (tmp_path / "root" / prefix / "out").read_bytes() == b"abab"
