"""Throughput of palhm's pipeline runner against the same pipeline run by a shell.

Streams SIZE bytes (`head -c SIZE /dev/zero | cat`) into a file on tmpfs
(/dev/shm) and prints, best of N runs each, the wall time and the ratio to
`sh -c 'head ... | cat > FILE'`:
- fd path: no checksum, the last stage writes straight into the sink's fd;
- read path: palhm reads the last stage's stdout and writes it into the file
  (no checksum, then each checksum of palhm.engine.checksum). This costs one more copy
  of every byte than the shell pipeline, like a relay process would: the line
  `shell + relay` (`head | cat | cat > FILE`) is that baseline.
A ratio near 1.0 means palhm adds nothing measurable to the shell pipeline. On a
busy machine wall times vary a lot: the last column, palhm's own CPU time (all its
threads, children excluded) per GiB, does not depend on the load much.

Usage: .venv/bin/python bench/bench_pipeline.py [--size-mib 2048] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from palhm.backends.base import ObjectSink
from palhm.engine.checksum import ALGORITHMS
from palhm.engine.execute import run_pipeline
from palhm.model import Exec


class FileSink(ObjectSink):
    """A plain file; offers its fd unless `offer_fd` is False."""

    def __init__(self, path: Path, *, offer_fd: bool) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.offer_fd = offer_fd

    def fileno(self) -> int | None:
        return self.fd if self.offer_fd else None

    def write(self, data: memoryview) -> None:
        while data:
            data = data[os.write(self.fd, data) :]

    def close(self) -> int:
        size = os.fstat(self.fd).st_size
        os.close(self.fd)
        return size

    def abort(self) -> None:
        os.close(self.fd)


def best_of(runs: int, call: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib << 20
    stages = [Exec(argv=("head", "-c", str(size), "/dev/zero")), Exec(argv=("cat",))]
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        target = Path(d) / "object"
        shell = f"head -c {size} /dev/zero | cat > {target}"
        base = best_of(args.runs, lambda: subprocess.run(["sh", "-c", shell], check=True))
        print(f"{args.size_mib} MiB, best of {args.runs}")
        print(f"  shell pipeline        {base:7.3f} s  {size / base / 1e9:6.2f} GB/s  1.00")
        relay = f"head -c {size} /dev/zero | cat | cat > {target}"
        took = best_of(args.runs, lambda: subprocess.run(["sh", "-c", relay], check=True))
        print(f"  shell + relay         {took:7.3f} s  {size / took / 1e9:6.2f} GB/s", end="")
        print(f"  {took / base:.2f}")

        def palhm(offer_fd: bool, algorithm: str | None) -> None:
            factory = ALGORITHMS.get(algorithm) if algorithm else None
            result = run_pipeline(
                stages,
                FileSink(target, offer_fd=offer_fd),
                context="bench",
                verbosity=0,
                hasher=factory() if factory else None,
            )
            assert result.size == size

        cases: list[tuple[str, bool, str | None]] = [("fd path", True, None)]
        cases.append(("read path, no checksum", False, None))
        cases += [(f"read path, {name}", False, name) for name in ALGORITHMS if name != "none"]
        for label, offer_fd, algorithm in cases:
            cpu = own_cpu()
            took = best_of(args.runs, lambda o=offer_fd, a=algorithm: palhm(o, a))  # type: ignore[misc]
            per_gib = (own_cpu() - cpu) / args.runs / (size / (1 << 30))
            print(
                f"  {label:22}{took:7.3f} s  {size / took / 1e9:6.2f} GB/s  {took / base:.2f}",
                end="",
            )
            print(f"  {per_gib:5.2f} s CPU/GiB")


if __name__ == "__main__":
    main()
