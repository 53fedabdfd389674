"""How well `upload-rate-limit` holds: a ~30 s upload to a local moto S3 server.

Starts its own moto server on 127.0.0.1 (bench_s3's helpers), then runs
`palhm run --json` on an aws-s3 task whose one object is RATE * SECONDS bytes of
random data from a file, with `upload-rate-limit: RATE`. The measured rate is the
object's size divided by its build time as recorded in the manifest (from the start
of its pipeline to the completed upload, so the last part's upload counts too).
Prints the limit, the measured rate and the deviation in percent; it does not
assert anything (a busy machine can only make the upload slower, never faster).

Usage: .venv/bin/python bench/bench_upload_rate_limit.py [--rate-mib 2] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_s3 import BUCKET, client_env, moto_server  # noqa: E402

MiB = 1 << 20


def config(directory: Path, data: Path, endpoint: str, rate: int) -> Path:
    task = {
        "id": "bench",
        "type": "backup",
        "backend": "aws-s3",
        "checksum": "none",
        "backend-param": {
            "bucket": BUCKET,
            "root": "rate",
            "endpoint-url": endpoint,
            "region": "us-east-1",
            "upload-rate-limit": rate,
        },
        "objects": [
            {"path": "blob", "pipeline": [{"type": "exec-inline", "argv": ["cat", str(data)]}]}
        ],
    }
    path = directory / "palhm.conf"
    path.write_text(json.dumps({"modules": ["aws"], "tasks": [task]}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-mib", type=float, default=2.0, help="limit in MiB/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="intended upload time")
    args = parser.parse_args()
    rate = int(args.rate_mib * MiB)
    size = int(rate * args.seconds)
    with tempfile.TemporaryDirectory(prefix="palhm-bench-rate-") as name:
        directory = Path(name)
        data = directory / "data"
        with open(data, "wb") as out:
            left = size
            while left:
                chunk = os.urandom(min(left, 4 * MiB))
                out.write(chunk)
                left -= len(chunk)
        with moto_server(directory) as endpoint:
            env = client_env(endpoint, directory)
            os.environ.update(env)  # for boto3 below
            import boto3  # the bench needs the aws extra anyway

            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket=BUCKET
            )
            path = config(directory, data, endpoint, rate)
            done = subprocess.run(
                [sys.executable, "-m", "palhm", "-q", "-f", str(path), "run", "--json", "bench"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            report(json.loads(done.stdout), rate)


def report(document: dict[str, object], rate: int) -> None:
    (obj,) = document["objects"]  # type: ignore[misc]
    seconds = float(obj["duration"])
    measured = obj["size"] / seconds
    print(f"limit     {rate / MiB:8.3f} MiB/s")
    print(f"uploaded  {obj['size'] / MiB:8.1f} MiB in {seconds:.2f} s")
    deviation = 100 * (measured - rate) / rate
    print(f"measured  {measured / MiB:8.3f} MiB/s  ({deviation:+.2f}% of the limit)")
    print(f"at        {datetime.now().isoformat(timespec='seconds')}")


if __name__ == "__main__":
    main()
