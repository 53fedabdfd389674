"""The `palhm` command's exit (cli.main.entry): no interpreter teardown, nothing lost.

entry() ends the process with os._exit after main(); these tests check that what a
normal exit would deliver still arrives: the whole stdout (pipe or file, without a
final newline too), log lines on stderr, the exit status, and the work of a
non-daemon thread (then the usual exit is taken and waits for it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.backup_support import TASK, backup_config, inline, obj

ENTRY = "from palhm.cli.main import entry\nentry()\n"


def _palhm(*args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "palhm", *args], stdout=stdout, stderr=subprocess.PIPE, text=True
    )


def _config(tmp_path: Path, count: int) -> Path:
    objects = [obj(f"o{i:04d}", inline("echo", str(i))) for i in range(count)]
    return backup_config(tmp_path / "c.json", tmp_path / "root", objects)


def test_a_large_stdout_arrives_whole_through_a_pipe(tmp_path: Path) -> None:
    config = _config(tmp_path, 400)  # `config` prints ~100 KB: more than a pipe holds
    done = _palhm("-f", str(config), "config")
    assert done.returncode == 0, done.stderr
    effective = json.loads(done.stdout)
    assert len(effective["tasks"][0]["objects"]) == 400


def test_stdout_to_a_file_is_flushed(tmp_path: Path) -> None:
    config = _config(tmp_path, 3)
    out = tmp_path / "tasks.txt"
    with out.open("w") as handle:
        done = _palhm("-f", str(config), "config", "tasks", stdout=handle)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == f"{TASK}\n"


def test_error_lines_and_status_survive(tmp_path: Path) -> None:
    config = _config(tmp_path, 1)
    done = _palhm("-f", str(config), "run", "no-such-task")
    assert done.returncode == 2
    assert "unknown task 'no-such-task'" in done.stderr


def test_output_without_a_final_newline_is_written(tmp_path: Path) -> None:
    code = (
        "import sys, palhm.cli.main as m\n"
        "m.main = lambda: (sys.stdout.write('no newline'), sys.stderr.write('err tail'), 3)[2]\n"
        "m.entry()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "no newline", "err tail")


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    code = (
        "import threading, time, palhm.cli.main as m\n"
        f"def late():\n    time.sleep(0.3)\n    open({str(marker)!r}, 'w').write('done')\n"
        "def main():\n    threading.Thread(target=late).start()\n    return 0\n"
        "m.main = main\n"
        "m.entry()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"


def test_python_m_palhm_and_the_console_script_use_entry() -> None:
    root = Path(__file__).resolve().parents[2]
    main_module = (root / "src/palhm/__main__.py").read_text()
    assert "entry()" in main_module
    assert 'palhm = "palhm.cli.main:entry"' in (root / "pyproject.toml").read_text()
    assert "entry()" in (root / "debian/palhm.bin").read_text()
