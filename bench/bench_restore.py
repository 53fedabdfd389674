"""`palhm restore` of one large object: wall time against the shell, and peak RSS.

The object is `head -c SIZE /dev/zero | zstd -1` in a localfs copy (blake3 in the
manifest). Restored through `zstd -d | cat > /dev/null`, by:
- palhm (CLI: `palhm restore TASK latest`; checks blake3 while streaming),
- the shell without any check: `zstd -dc FILE | cat > /dev/null`,
- the shell as a careful admin would: `b3sum FILE` first, then the same.
Peak RSS is ru_maxrss of palhm *and* its stages (the largest of them), for a small
and the large object: bounded means the same for both.

    .venv/bin/python bench/bench_restore.py [--size GIB] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import clear, fresh_dir

WRAPPER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(done.returncode)\n"
)


def config(root: Path, size: int) -> dict[str, object]:
    return {
        "tasks": [
            {
                "id": "db",
                "type": "backup",
                "backend": "localfs",
                "backend-param": {"root": str(root)},
                "objects": [
                    {
                        "path": "big.zst",
                        "pipeline": [
                            {"type": "exec-inline", "argv": ["head", "-c", str(size), "/dev/zero"]},
                            {"type": "exec-inline", "argv": ["zstd", "-q", "-1"]},
                        ],
                        "restore": [
                            {"type": "exec-inline", "argv": ["zstd", "-q", "-d"]},
                            {"type": "exec-inline", "argv": ["cat"], "vl-stdout": 9},
                        ],
                    }
                ],
            }
        ]
    }


def palhm(*args: str) -> list[str]:
    return [sys.executable, "-m", "palhm", *args]


def measure(work: Path, size: int) -> tuple[float, float, float, float]:
    """(palhm s, shell s, shell with b3sum s, peak RSS MiB) for one size."""
    root = work / "root"
    path = work / "palhm.json"
    path.write_text(json.dumps(config(root, size)))
    subprocess.run(palhm("-q", "-f", str(path), "run", "db"), check=True)
    (stored,) = root.glob("*/big.zst")
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *palhm("-q", "-f", str(path), "restore", "db", "latest")],
        capture_output=True,
        text=True,
        check=True,
    )
    palhm_time = time.monotonic() - start
    peak = int(done.stdout.split()[-1]) / 1024
    shell = f"zstd -dc '{stored}' | cat > /dev/null"
    start = time.monotonic()
    subprocess.run(["bash", "-c", shell], check=True)
    shell_time = time.monotonic() - start
    start = time.monotonic()
    subprocess.run(["bash", "-c", f"b3sum '{stored}' > /dev/null && {shell}"], check=True)
    careful_time = time.monotonic() - start
    clear(root)
    return palhm_time, shell_time, careful_time, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=2.0, help="GiB (default 2)")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    work = fresh_dir(args.dir, "restore")
    try:
        peaks = []
        for label, size in (
            ("64 MiB", 64 << 20),
            (f"{args.size:g} GiB", int(args.size * (1 << 30))),
        ):
            palhm_time, shell_time, careful_time, peak = measure(work, size)
            peaks.append(peak)
            print(
                f"{label:>8}: palhm restore {palhm_time:6.2f} s, shell {shell_time:6.2f} s"
                f" (x{palhm_time / shell_time:.2f}), b3sum + shell {careful_time:6.2f} s"
                f" (x{palhm_time / careful_time:.2f}); peak RSS {peak:.1f} MiB"
            )
        print(f"peak RSS large/small x{peaks[1] / peaks[0]:.3f}")
    finally:
        clear(work)


if __name__ == "__main__":
    main()
