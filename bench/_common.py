"""Shared parts of the benchmarks: run palhm's backup engine or a shell reference in
a child process and measure wall time, CPU time (user + sys of the process and
everything it waited for) and palhm's own peak RSS.

palhm is driven through `palhm.engine.backup.run_backup` in a child Python process
(bench/_palhm_driver.py): the driver imports palhm first and times only the run,
so the figures compare the data path, not the interpreter's start-up (printed once
on its own by `startup_cost`). The shell reference runs through `bash -c` here in
the benchmarks only: it *is* the thing palhm is measured against.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRIVER = Path(__file__).with_name("_palhm_driver.py")


@dataclass(frozen=True)
class Measure:
    wall: float  # seconds
    cpu: float  # user + sys seconds, the process and its children
    palhm_cpu: float = 0.0  # user + sys of the palhm process alone (0 for the shell)
    maxrss_kib: int = 0  # peak RSS of the palhm process (0 for the shell)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_shell(script: str) -> Measure:
    """Time `bash -c SCRIPT` (the reference pipeline)."""
    before, start = children_cpu(), time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    return Measure(time.perf_counter() - start, children_cpu() - before)


def run_palhm(spec: dict[str, Any]) -> Measure:
    """Run one backup through the driver; spec: root, objects [{path, stages}], checksum,
    nb_workers. The driver reports its own timing of run_backup."""
    done = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec)], check=True, capture_output=True, text=True
    )
    report = json.loads(done.stdout)
    # CPU of the run only: palhm's own threads plus the stage processes it waited for
    total_cpu = report["cpu_self_run"] + report["cpu_children_run"]
    return Measure(report["wall"], total_cpu, report["cpu_self_run"], report["maxrss_kib"])


def startup_cost() -> float:
    """Seconds for `python -c 'import palhm.engine.backup'`: the fixed cost a CLI run adds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import palhm.engine.backup, palhm.cli.main"], check=True)
    return time.perf_counter() - start


def fresh_dir(base: str | None, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"palhm-bench-{name}-", dir=base))


def clear(path: Path) -> None:
    """Remove a run's output and let the kernel write back before the next run."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()


def median(measures: Sequence[Measure]) -> Measure:
    return Measure(
        statistics.median(m.wall for m in measures),
        statistics.median(m.cpu for m in measures),
        statistics.median(m.palhm_cpu for m in measures),
        max(m.maxrss_kib for m in measures),
    )


def row(label: str, measure: Measure, reference: Measure | None = None) -> str:
    text = f"{label:<34} wall {measure.wall:8.3f} s   cpu {measure.cpu:8.3f} s"
    if measure.palhm_cpu:
        text += f" (palhm {measure.palhm_cpu:6.3f} s)"
    if reference is not None:
        text += f"   wall x{measure.wall / reference.wall:5.3f}"
        if reference.cpu > 0:
            text += f"  cpu x{measure.cpu / reference.cpu:5.3f}"
    return text


def stage(*argv: str) -> list[str]:
    return list(argv)


def head_cat_config(work: Path, mib: int) -> Path:
    """WORK/c.json: task `b`, one object `head -c MIB MiB /dev/zero | cat` into a
    localfs root WORK/root, default settings (the in-process experiments' config)."""
    stage = [{"type": "exec-inline", "argv": ["/usr/bin/head", "-c", str(mib << 20), "/dev/zero"]},
             {"type": "exec-inline", "argv": ["/bin/cat"]}]  # fmt: skip
    task = {
        "id": "b",
        "type": "backup",
        "backend": "localfs",
        "backend-param": {"root": str(work / "root")},
        "objects": [{"path": "a", "pipeline": stage}],
    }
    path = work / "c.json"
    path.write_text(json.dumps({"tasks": [task]}), encoding="utf-8")
    return path


# The end of an in-process experiment's child program (exp_pump_tuning, exp_pipe_cache):
# the program before it imports `pump` (palhm.engine.pump), sets its knobs and names
# the config in `config`; this counts the pump's reads and wake-ups, runs task `b`
# and prints one JSON line: status, wall, own user and sys CPU, the stages' CPU, reads
# and wake-ups.
PUMP_CHILD_RUN = r"""
import json, resource, time
calls = {"reads": 0, "wakes": 0}
read, wake = pump.Pump._read, pump.Pump.on_readable
def counted_read(self):
    calls["reads"] += 1
    return read(self)
def counted_wake(self):
    calls["wakes"] += 1
    return wake(self)
pump.Pump._read, pump.Pump.on_readable = counted_read, counted_wake
from palhm.cli.main import main
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
status = main(["-q", "-f", config, "run", "b"])
after = resource.getrusage(resource.RUSAGE_SELF)
kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"status": status, "wall": time.perf_counter() - start,
    "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
    "stages": kids_after.ru_utime + kids_after.ru_stime - kids.ru_utime - kids.ru_stime,
    **calls}))
"""
