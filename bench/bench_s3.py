"""Streaming upload to S3: palhm's aws-s3 backend against `aws s3 cp -`.

Starts its own moto server on 127.0.0.1, then alternately streams the same SIZE
bytes of random data from a pipe into it:
- palhm: `palhm -f CFG run bench`, the object's pipeline being `cat FILE` (so the
  bytes pass through palhm's pipeline runner, checksum and S3 sink, as in a backup);
- aws:   `cat FILE | aws s3 cp - s3://BUCKET/KEY` (the way the original PALHM uploads).
The data is generated once into a temporary file so that producing it costs
neither side CPU. Prints each run's wall time, CPU time (user + system: less
sensitive to a busy machine) and peak RSS (the uploader's own, from wait4), then
the best time ratio palhm/aws (below 1.0: palhm is faster) and palhm's peak RSS.
moto is the bottleneck on a small machine: compare figures of the same run.

The aws CLI sends a CRC32 checksum with every part, so palhm does the same by
default here (`request-checksums` crc32, what it sends to AWS). On this non-AWS
endpoint palhm's own default (`auto`) would be Content-MD5, about 1.2 CPU-seconds
more per GiB: measure it with `--request-checksums auto`.

Usage: .venv/bin/python bench/bench_s3.py [--size-mib 1024] [--runs 2] [--checksum blake3]
           [--request-checksums crc32|auto|md5|off]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
BUCKET = "palhm-bench"


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float  # user + system of the uploader (palhm's includes its `cat`)
    peak_rss_mib: float


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """A private moto server on a free loopback port; only this process is stopped."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(log_dir / "moto.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_ready(endpoint)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(endpoint: str) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(300):
        try:
            with opener.open(f"{endpoint}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"moto server not ready at {endpoint}")


def client_env(endpoint: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1",
    }


def timed(argv: list[str], *, env: dict[str, str], stdin: Any = subprocess.DEVNULL) -> Run:
    """Run argv; wall time and its peak RSS (ru_maxrss of the waited child, in KiB)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=stdin, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {process.returncode}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def run_aws(data: Path, env: dict[str, str]) -> Run:
    with subprocess.Popen(["cat", str(data)], stdout=subprocess.PIPE) as cat:
        run = timed([str(VENV_BIN / "aws"), "s3", "cp", "-", f"s3://{BUCKET}/aws.bin"], env=env,
                    stdin=cat.stdout)  # fmt: skip
        assert cat.stdout is not None
        cat.stdout.close()
    return run


def palhm_config(data: Path, directory: Path, checksum: str, request_checksums: str) -> Path:
    task = {
        "id": "bench",
        "type": "backup",
        "backend": "aws-s3",
        "checksum": checksum,
        "backend-param": {
            "bucket": BUCKET,
            "root": "palhm",
            "nb-copy-limit": 1,
            "request-checksums": request_checksums,
            "prefix": {"type": "iso8601", "timespec": "microseconds"},
        },
        "objects": [
            {"path": "data.bin", "pipeline": [{"type": "exec-inline", "argv": ["cat", str(data)]}]}
        ],
    }
    path = directory / "palhm.conf"
    path.write_text(json.dumps({"modules": ["aws"], "vl": 2, "tasks": [task]}))
    return path


@contextmanager
def s3_lab(size_mib: int, parent: str) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A scratch directory under `parent` holding SIZE MiB of random bytes (data.bin),
    a private moto server with the bucket made, and the environment to reach it."""
    with tempfile.TemporaryDirectory(prefix="palhm-bench-s3-", dir=parent) as tmp:
        directory = Path(tmp)
        data = directory / "data.bin"
        with open(data, "wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(1 << 20))
        with moto_server(directory) as endpoint:
            env = client_env(endpoint, directory)
            timed([str(VENV_BIN / "aws"), "s3", "mb", f"s3://{BUCKET}"], env=env)
            yield directory, data, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--checksum", default="blake3")
    parser.add_argument("--request-checksums", default="crc32")
    args = parser.parse_args()
    if shutil.which("cat") is None or not (VENV_BIN / "aws").exists():
        raise SystemExit("needs cat and the aws CLI in the venv")
    with s3_lab(args.size_mib, tempfile.gettempdir()) as (directory, data, env):
        config = palhm_config(data, directory, args.checksum, args.request_checksums)
        palhm = [str(VENV_BIN / "palhm"), "-f", str(config), "run", "bench"]
        results: dict[str, list[Run]] = {"aws": [], "palhm": []}
        for number in range(args.runs):
            for name in ("aws", "palhm"):
                run = run_aws(data, env) if name == "aws" else timed(palhm, env=env)
                results[name].append(run)
                rate = args.size_mib / run.seconds
                print(
                    f"run {number + 1} {name:5}: {run.seconds:6.2f} s {rate:6.1f} MiB/s"
                    f"  CPU {run.cpu_seconds:6.2f} s  peak RSS {run.peak_rss_mib:6.1f} MiB"
                )
    report(results, args.size_mib, f"{args.checksum}, request-checksums {args.request_checksums}")


def report(results: dict[str, list[Run]], size_mib: int, checksum: str) -> None:
    best = {name: min(run.seconds for run in runs) for name, runs in results.items()}
    cpu = {name: min(run.cpu_seconds for run in runs) for name, runs in results.items()}
    palhm_rss = max(run.peak_rss_mib for run in results["palhm"])
    aws_rss = max(run.peak_rss_mib for run in results["aws"])
    ratio = best["palhm"] / best["aws"]
    print(
        f"{size_mib} MiB, palhm checksum {checksum}: best palhm {best['palhm']:.2f} s,"
        f" best aws {best['aws']:.2f} s, ratio palhm/aws {ratio:.2f}"
    )
    print(f"least CPU: palhm {cpu['palhm']:.2f} s, aws {cpu['aws']:.2f} s")
    print(f"peak RSS: palhm {palhm_rss:.1f} MiB, aws CLI {aws_rss:.1f} MiB")


if __name__ == "__main__":
    main()
