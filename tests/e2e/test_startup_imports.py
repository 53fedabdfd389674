"""A backup run imports only what it needs: start-up is most of a small run's time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.backup_support import TASK, backup_config, inline, obj

# Imported only when their feature is used: a ping hook (urllib.request, http.client,
# ssl, email), a config error (jsonschema), the schema compiler (never at run time),
# another checksum (xxhash), an S3 backend (boto3).
NOT_NEEDED = (
    "urllib.request",
    "http.client",
    "ssl",
    "email",
    "jsonschema",
    "fastjsonschema",
    "xxhash",
    "importlib.resources",
    "boto3",
)


def test_a_small_backup_run_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    config = backup_config(tmp_path / "c.json", tmp_path / "root", [obj("a", inline("echo", "a"))])
    code = (
        "import json, sys\n"
        "from palhm.cli.main import main\n"
        f"status = main(['-q', '-f', {str(config)!r}, 'run', {TASK!r}])\n"
        "print(json.dumps([status, sorted(sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    status, modules = json.loads(done.stdout.splitlines()[-1])
    assert status == 0, done.stderr
    unwanted = [m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_NEEDED)]
    assert unwanted == []
