"""The default data path against the shell and the original PALHM, alternating in one
sitting: every figure is a ratio of runs made in the same rounds.

Every run is a whole CLI process (`python -m palhm -q -f CFG run b`), palhm's start-up
included, so the tiny run measures start-up and the others the data path. Cases:

  stream    one object `head -c SIZE /dev/zero | cat` on localfs, checksum blake3
            (default), none, xxh3-128; reference `sh -c 'head | cat > F; sync F'`
            (palhm fsyncs each object: the synced shell is the fair reference);
            goals x1.10, x1.03, x1.05
  parallel  4 objects of SIZE/4 with nb-workers 4, blake3; reference the same four
            shell pipelines in parallel, then sync of the four files; goal x1.10
  null      the stream object on the null backend (nothing kept)
  tiny      a two-object `echo` backup (start-up); goal x1.3 of the original
  original  with --orig-python: the original PALHM 0.0.3 runs the same configs
            (stream, parallel, null, tiny); goal <= x0.85 of its wall time. The
            original never syncs its objects (`dd of=FILE`), so stream and parallel
            also run it followed by `sync -f ROOT` ("original 0.0.3 + sync", the same
            durability as palhm), and "disk alone": the same bytes written with
            O_DIRECT, four in flight, and fsynced (_disk_alone.py), about the least
            any tool must wait to have them on this disk
  rss       palhm's peak RSS (ru_maxrss of the palhm process alone), printed for
            every case: goal <= 64 MiB whatever the size

Each line gives the wall time, the CPU time of the whole run (stages included) and
"own": the CPU of the palhm (or original) process alone, stages excluded: the cost
of the data path and start-up, the figure that varies least on a busy machine.

Install the original once (its own venv; it runs as `python -m palhm`):

    python3 -m venv /work/orig-palhm && /work/orig-palhm/bin/pip install palhm==0.0.3

Run from the repository (on a real disk, not a tmpfs):

    .venv/bin/python bench/bench_default_path.py --dir /var/tmp \\
        --orig-python /work/orig-palhm/bin/python [--quick] [--rounds N] [--cases ...]

palhm's modules are byte-compiled first (as `pip install` does) so that no run pays
for compiling them; the tree is synced (untimed) before every run.

Memory. This VM reports freed memory to its host (free page reporting), and the first
touch of a page the host took back costs ~3 s per GiB instead of ~0.3 s: a 2 GiB run
that lands on such pages takes twice as long whatever it runs, and which run lands on
them depends on what ran before (bench/README.md, "Cold memory"). So before every
run of a case that writes to the disk, the script writes as many bytes as the run
will through the page cache into a scratch file and deletes it (untimed): every
contender then starts on the same freshly freed pages. --no-warm-memory turns it off.
Each line also gives the time the host stole from the VM during the runs (steal), and
the time the disk under --dir had I/O in flight (disk busy, io_ticks): a run whose
disk was busy for most of its wall time waits on the disk, not on the CPU.
"""

from __future__ import annotations

import argparse
import compileall
import json
import mmap
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1 << 30
MIB = 1 << 20
CASES = ("stream", "parallel", "null", "tiny")
WRITES_DISK = ("stream", "parallel")  # the cases whose runs write SIZE to the disk
ECHO_REPEAT = 5  # tiny runs per round: each is short


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys of the process and everything it waited for
    maxrss_mib: float  # peak RSS of the palhm process alone (of the shell: its children)
    own_cpu: float | None = None  # palhm's own user + sys, its stages excluded
    steal: float = 0.0  # s of CPU the host took from this VM during the run
    reported: float = 0.0  # MiB of free memory handed back to the host during the run
    disk_busy: float = 0.0  # s the disk under --dir had I/O in flight during the run


SELF = Path(__file__).with_name("_self_cpu.py")
DISK_ALONE = Path(__file__).with_name("_disk_alone.py")
ORIG = "original 0.0.3"
ORIG_SYNCED = "original 0.0.3 + sync"
DISK = "disk alone, O_DIRECT+fsync"


@dataclass
class Contender:
    label: str
    start: Callable[[], list[str]]  # argv to time (after preparing the output)
    reset: Callable[[], None]
    runs: list[Run] = field(default_factory=list)


def stolen() -> float:
    """Seconds of CPU the host has taken from this VM since boot (all CPUs)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")


def reported_mib() -> float:
    """MiB of free memory this VM has handed back to its host since boot (0 when the
    kernel does not say)."""
    try:
        return int(REPORTED.read_text()) / 1024
    except (OSError, ValueError):
        return 0.0


def disk_busy(work: Path) -> float:
    """Seconds the block device holding `work` has had I/O in flight since boot
    (io_ticks of /sys/dev/block/MAJ:MIN/stat; 0 when the kernel does not say)."""
    device = os.stat(work).st_dev
    try:
        stat = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat").read_text()
        return int(stat.split()[9]) / 1000
    except (OSError, ValueError, IndexError):
        return 0.0


def fill(path: Path, size: int) -> float:
    """Write `size` bytes (whole MiB) into `path` through the page cache, no fsync;
    the system CPU seconds it took."""
    block = memoryview(mmap.mmap(-1, MIB))  # page-aligned, no copy per write
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    before = os.times().system
    try:
        for _ in range(size // MIB):
            os.write(fd, block)
    finally:
        os.close(fd)
    return os.times().system - before


def warm_memory(work: Path, size: int) -> None:
    """Write `size` bytes through the page cache into a scratch file, then delete it:
    the run that follows gets these freshly freed pages, not ones the host took back."""
    if size <= 0:
        return
    path = work / "warm-memory"
    try:
        fill(path, size)
    finally:
        path.unlink(missing_ok=True)


def timed(argv: list[str], work: Path) -> Run:
    own = work / "self.json"
    own.unlink(missing_ok=True)
    env = {**os.environ, "PALHM_BENCH_SELF": str(own)}
    steal, reported, busy = stolen(), reported_mib(), disk_busy(work)
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    steal, reported = stolen() - steal, reported_mib() - reported
    busy = disk_busy(work) - busy
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(argv)}")
    cpu = usage.ru_utime + usage.ru_stime
    run = Run(wall, cpu, usage.ru_maxrss / 1024, steal=steal, reported=reported, disk_busy=busy)
    if own.exists():
        report = json.loads(own.read_text())
        run.own_cpu, run.maxrss_mib = report["cpu"], report["maxrss_kib"] / 1024
    return run


def empty(directory: Path) -> Callable[[], None]:
    def reset() -> None:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        os.sync()

    return reset


def inline(*argv: str) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv)}


def config(
    path: Path,
    root: Path | None,
    objects: list[tuple[str, list[dict[str, Any]]]],
    *,
    checksum: str | None = None,
    nb_workers: int | None = None,
) -> Path:
    """A config both palhm and the original read (no key the original lacks unless
    `checksum` is given: palhm's default is blake3)."""
    task: dict[str, Any] = {
        "id": "b",
        "type": "backup",
        "backend": "localfs" if root is not None else "null",
        "objects": [{"path": name, "pipeline": stages} for name, stages in objects],
    }
    if root is not None:
        task["backend-param"] = {"root": str(root)}
    if checksum is not None:
        task["checksum"] = checksum
    doc: dict[str, Any] = {"tasks": [task]}
    if nb_workers is not None:
        doc["nb-workers"] = nb_workers
    path.write_text(json.dumps(doc, indent=1))
    return path


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="palhm-bench-default-", dir=args.dir))
        # `python -m palhm`, through a wrapper that reports palhm's own CPU time
        self.palhm = [sys.executable, str(SELF), "-q", "-f"]
        self.orig = [args.orig_python, str(SELF), "-q", "-f"] if args.orig_python else None
        self.size = (256 * MIB) if args.quick else (2 * GIB)
        self.rounds = args.rounds

    def path(self, name: str) -> Path:
        return self.work / name

    def contender_palhm(self, label: str, cfg: Path, root: Path | None) -> Contender:
        reset = empty(root) if root is not None else os.sync
        return Contender(label, lambda: [*self.palhm, str(cfg), "run", "b"], reset)

    def contender_orig(self, cfg: Path, root: Path | None) -> Contender | None:
        if self.orig is None:
            return None
        orig, reset = self.orig, empty(root) if root is not None else os.sync
        return Contender(ORIG, lambda: [*orig, str(cfg), "run", "b"], reset)

    def contender_orig_synced(self, cfg: Path, root: Path) -> Contender | None:
        """The original, then `sync -f` of its root: the same durability palhm gives
        (the original leaves its objects in the page cache, unsynced)."""
        if self.orig is None:
            return None
        script = f'"$@" && sync -f {shlex.quote(str(root))}'
        argv = ["sh", "-c", script, "sh", *self.orig, str(cfg), "run", "b"]
        return Contender(ORIG_SYNCED, lambda: argv, empty(root))

    def shell(self, label: str, script: str, out: Path) -> Contender:
        return Contender(label, lambda: ["sh", "-c", script], empty(out))

    def disk_alone(self, size: int, out: Path, names: list[str]) -> Contender:
        """The same bytes written straight to the disk and fsynced (_disk_alone.py)."""
        files = [str(out / name) for name in names]
        argv = [sys.executable, str(DISK_ALONE), str(size), *files]
        return Contender(DISK, lambda: argv, empty(out))

    # ------------------------------------------------------------------ cases

    def stream(self) -> list[Contender]:
        size = self.size
        stages = [inline("head", "-c", str(size), "/dev/zero"), inline("cat")]
        out = self.path("shell-stream")
        target = out / "f"
        found = [
            self.shell(
                "shell + sync", f"head -c {size} /dev/zero | cat > {target}; sync {target}", out
            )
        ]
        for checksum in ("blake3", "none", "xxh3-128"):
            root = self.path(f"stream-{checksum}")
            cfg = config(
                self.path(f"stream-{checksum}.json"), root, [("zeros", stages)], checksum=checksum
            )
            found.append(self.contender_palhm(f"palhm {checksum}", cfg, root))
        orig_root = self.path("stream-orig")
        orig_cfg = config(self.path("stream-orig.json"), orig_root, [("zeros", stages)])
        extra = [
            self.contender_orig(orig_cfg, orig_root),
            self.contender_orig_synced(orig_cfg, orig_root),
            self.disk_alone(size, self.path("disk-stream"), ["f"]),
        ]
        return found + [c for c in extra if c is not None]

    def parallel(self) -> list[Contender]:
        part = self.size // 4
        stages = [inline("head", "-c", str(part), "/dev/zero"), inline("cat")]
        objects = [(f"o{i}", stages) for i in range(4)]
        out = self.path("shell-parallel")
        files = " ".join(str(out / f"o{i}") for i in range(4))
        script = " ".join(f"head -c {part} /dev/zero | cat > {out / f'o{i}'} &" for i in range(4))
        found = [self.shell("shell x4 + sync", f"{script} wait; sync {files}", out)]
        root = self.path("parallel")
        cfg = config(self.path("parallel.json"), root, objects, nb_workers=4)
        found.append(self.contender_palhm("palhm blake3 nb-workers 4", cfg, root))
        orig_root = self.path("parallel-orig")
        orig_cfg = config(self.path("parallel-orig.json"), orig_root, objects, nb_workers=4)
        extra = [
            self.contender_orig(orig_cfg, orig_root),
            self.contender_orig_synced(orig_cfg, orig_root),
            self.disk_alone(part, self.path("disk-parallel"), [f"o{i}" for i in range(4)]),
        ]
        return found + [c for c in extra if c is not None]

    def null(self) -> list[Contender]:
        stages = [inline("head", "-c", str(self.size), "/dev/zero"), inline("cat")]
        cfg = config(self.path("null.json"), None, [("zeros", stages)])
        found = [
            self.shell(
                "shell > /dev/null",
                f"head -c {self.size} /dev/zero | cat > /dev/null",
                self.path("shell-null"),
            ),
            self.contender_palhm("palhm null", cfg, None),
        ]
        orig = self.contender_orig(cfg, None)
        return found + ([orig] if orig else [])

    def tiny(self) -> list[Contender]:
        objects = [("a", [inline("echo", "a")]), ("b", [inline("echo", "b")])]
        root, orig_root = self.path("tiny"), self.path("tiny-orig")
        found = [self.contender_palhm("palhm", config(self.path("tiny.json"), root, objects), root)]
        orig = self.contender_orig(
            config(self.path("tiny-orig.json"), orig_root, objects), orig_root
        )
        return found + ([orig] if orig else [])


def run_rounds(
    contenders: list[Contender], rounds: int, repeat: int, work: Path, warm: int
) -> None:
    """Alternate: every round runs each contender once (rotating who goes first).

    Before each run, every contender's output is removed (and synced), not only the
    next one's: otherwise the other contenders' 2 GiB files of the round stay in the
    page cache, and whoever runs later in a round allocates its pages against several
    GiB of cache to reclaim (the same code measured x2 apart by its place in a round).
    Then `warm` bytes go through the page cache (warm_memory), untimed."""
    for number in range(rounds):
        order = contenders[number % len(contenders) :] + contenders[: number % len(contenders)]
        for contender in order:
            for _ in range(repeat):
                for each in contenders:
                    each.reset()
                warm_memory(work, warm)
                contender.runs.append(timed(contender.start(), work))
    for each in contenders:  # nor may this case's files weigh on the next case
        each.reset()


def round_ratios(a: Contender, b: Contender) -> list[float]:
    """The ratios a/b of the runs made in the same round, round by round."""
    return [x.wall / y.wall for x, y in zip(a.runs, b.runs, strict=True)]


def report(case: str, contenders: list[Contender]) -> list[str]:
    print(f"\n== {case}")
    for c in contenders:
        walls = [r.wall for r in c.runs]
        own = [r.own_cpu for r in c.runs if r.own_cpu is not None]
        print(
            f"  {c.label:<28} wall median {statistics.median(walls):7.3f} s"
            f" (min {min(walls):.3f})  cpu median {statistics.median(r.cpu for r in c.runs):7.3f}"
            + (f" s (own {statistics.median(own):6.3f} s)" if own else " s")
            + f"  peak RSS {max(r.maxrss_mib for r in c.runs):6.1f} MiB"
            + f"  steal {statistics.median(r.steal for r in c.runs):.2f} s"
            + f" (max {max(r.steal for r in c.runs):.2f})"
            + f"  disk busy {statistics.median(r.disk_busy for r in c.runs):.2f} s"
        )
        print(
            "  "
            + " " * 28
            + " per run: wall "
            + ", ".join(f"{r.wall:.2f}" for r in c.runs)
            + " s; cpu "
            + ", ".join(f"{r.cpu:.2f}" for r in c.runs)
            + " s; disk busy "
            + ", ".join(f"{r.disk_busy:.2f}" for r in c.runs)
            + " s; memory handed back meanwhile "
            + ", ".join(f"{r.reported:.0f}" for r in c.runs)
            + " MiB"
        )
    by_label = {c.label: c for c in contenders}
    orig, disk = by_label.get(ORIG), by_label.get(DISK)
    shell = contenders[0] if contenders[0].label.startswith("shell") else None
    references = [shell, orig, by_label.get(ORIG_SYNCED), disk]
    lines = []
    for c in contenders:
        if not c.label.startswith("palhm") and not (c.label == ORIG and disk is not None):
            continue
        for reference in references:
            if reference is None or reference is c or (c is orig and reference is not disk):
                continue
            name = "original" if reference is orig else reference.label
            ratios = round_ratios(c, reference)
            value = statistics.median(ratios)
            goal = GOALS.get(f"{c.label} / {name}")
            mark = ""
            if goal is not None:
                mark = f"  (goal <= x{goal:.2f}: {'met' if value <= goal else 'MISSED'})"
            line = f"{c.label} / {name}: x{value:.3f}{mark}"
            spread = ", ".join(f"x{r:.2f}" for r in ratios)
            print(f"  ratio {line}  (pair by pair: {spread})")
            lines.append(f"{case:<9} {line}")
    if orig is not None and disk is not None:
        goal = GOALS["palhm blake3 / original"] * statistics.median(r.wall for r in orig.runs)
        floor = statistics.median(r.wall for r in disk.runs)
        line = (
            f"x0.85 of the original is {goal:.3f} s; the disk alone took {floor:.3f} s"
            f" to keep the same bytes (x{goal / floor:.3f})"
        )
        print(f"  {line}")
        lines.append(f"{case:<9} {line}")
    return lines


GOALS = {
    "palhm blake3 / shell + sync": 1.10,
    "palhm none / shell + sync": 1.03,
    "palhm xxh3-128 / shell + sync": 1.05,
    "palhm blake3 / original": 0.85,
    "palhm blake3 nb-workers 4 / shell x4 + sync": 1.10,
    "palhm blake3 nb-workers 4 / original": 0.85,
    "palhm null / original": 0.85,
    "palhm / original": 1.30,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="where to write (a real disk)")
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 2 GiB")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--orig-python", help="python of a venv with palhm==0.0.3 installed")
    parser.add_argument(
        "--no-warm-memory",
        dest="warm_memory",
        action="store_false",
        help="do not pass the run's size through the page cache before each run",
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    args = parser.parse_args()
    import palhm

    compileall.compile_dir(str(Path(palhm.__file__).parent), quiet=1)  # as pip install does
    bench = Bench(args)
    print(f"{bench.size / MIB:g} MiB per stream, {args.rounds} rounds, in {bench.work}")
    if bench.orig is None:
        print("no --orig-python: the original PALHM is not measured")
    summary: list[str] = []
    try:
        for case in args.cases.split(","):
            contenders = getattr(bench, case)()
            repeat = ECHO_REPEAT if case == "tiny" else 1
            warm = bench.size if case in WRITES_DISK and args.warm_memory else 0
            run_rounds(contenders, args.rounds, repeat, bench.work, warm)
            summary += report(case, contenders)
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
    print("\n== all ratios (median of the per-round ratios of wall times)")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
