"""`palhm restore` and `palhm drill` through the CLI, with small real pipelines.

Restore stages here are tiny Python programs: `sink` copies its stdin into a file
and, only once it has seen the END of its input, writes FILE.eof. That marker is
how the tests see whether a last stage ever got a clean end of input.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import descendants, run_palhm, wait_for, write_config
from tests.ping_receiver import PingReceiver
from tests.prometheus_text import by_task, parse_prometheus
from tests.services.moto import MotoServer

MiB = 1 << 20

SINK = (
    "import sys\n"
    "with open(sys.argv[1], 'wb') as out:\n"
    "    while data := sys.stdin.buffer.read(65536):\n"
    "        out.write(data)\n"
    "open(sys.argv[1] + '.eof', 'w').close()\n"
)


def sink(target: Path) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": [sys.executable, "-c", SINK, str(target)]}


def inline(*argv: str, **extra: Any) -> dict[str, Any]:
    return {"type": "exec-inline", "argv": list(argv), **extra}


def make_config(root: Path, out: Path, *, size: int = 3 * MiB, **task: Any) -> dict[str, Any]:
    """Three objects: `schema` (group first), `data.zst` (depends on it), `notes.txt`
    (no restore pipeline)."""
    return {
        "tasks": [
            {
                "id": "db",
                "type": "backup",
                "backend": "localfs",
                "backend-param": {"root": str(root)},
                "object-groups": [{"id": "data", "depends": ["schema"]}, {"id": "schema"}],
                "objects": [
                    {
                        "path": "data.zst",
                        "group": "data",
                        "pipeline": [
                            inline("head", "-c", str(size), "/dev/urandom"),
                            inline("zstd", "-q", "-1"),
                        ],
                        "restore": [inline("zstd", "-q", "-d"), sink(out / "data")],
                    },
                    {
                        "path": "schema",
                        "group": "schema",
                        "pipeline": [inline("echo", "CREATE TABLE t;")],
                        "restore": [sink(out / "schema")],
                    },
                    {"path": "sub/notes.txt", "pipeline": [inline("echo", "notes")]},
                ],
                **task,
            }
        ]
    }


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    root, out = tmp_path / "root", tmp_path / "out"
    out.mkdir()
    return root, out, make_config(root, out)


def backup(tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> Path:
    config_file = write_config(tmp_path / "palhm.json", config)
    done = run_palhm(["-f", str(config_file), "run", "db"], env=env)
    assert done.returncode == 0, done.stderr
    return config_file


def the_copy(root: Path) -> Path:
    (copy,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    return copy


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- restore


def test_dry_run_prints_objects_in_dependency_order_with_argv_and_runs_nothing(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "--dry-run"])

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("  1. schema (group 'schema'")
    assert lines[3].startswith("  2. data.zst (group 'data'")
    assert lines[4].startswith("       | zstd -q -d | ")
    assert lines[4].endswith(str(out / "data"))
    assert "skipped: sub/notes.txt (no restore pipeline" in done.stdout
    assert list(out.iterdir()) == []


def test_restore_runs_each_pipeline_in_order_and_writes_plain_objects_with_to(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)
    target = tmp_path / "files"

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "--to", str(target)])

    assert done.returncode == 0, done.stderr
    assert (out / "schema").read_bytes() == b"CREATE TABLE t;\n"
    expected = subprocess.run(
        ["zstd", "-d", "-c", str(the_copy(root) / "data.zst")], capture_output=True, check=True
    ).stdout
    assert (out / "data").read_bytes() == expected
    assert len(expected) == 3 * MiB
    assert (target / "sub" / "notes.txt").read_bytes() == b"notes\n"
    assert (target / "sub" / "notes.txt").stat().st_mode & 0o777 == 0o600
    assert (target / "sub").stat().st_mode & 0o777 == 0o700
    # schema (group 'schema') was restored before data (which depends on it)
    assert (out / "schema.eof").stat().st_mtime_ns <= (out / "data.eof").stat().st_mtime_ns
    assert done.stdout.index("ok  schema") < done.stdout.index("ok  data.zst")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["latest", "nope"], "no object 'nope' in copy"),
        (["latest", "sub/notes.txt"], "no restore pipeline for sub/notes.txt: use --to DIR"),
        (["2000-01-01T00:00:00+00:00"], "no copy '2000-01-01T00:00:00+00:00'"),
        (["latest", "../etc/passwd"], "'../etc/passwd' is not an object path"),
    ],
)
def test_bad_selection_is_a_usage_error_and_runs_nothing(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]], args: list[str], message: str
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "restore", "db", *args])

    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert list(out.iterdir()) == []


def test_to_never_overwrites_an_existing_file(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)
    target = tmp_path / "files"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "notes.txt").write_text("mine")

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "--to", str(target)])

    assert done.returncode == 2
    assert "would overwrite" in done.stderr
    assert (target / "sub" / "notes.txt").read_text() == "mine"
    assert list(out.iterdir()) == []


def test_no_complete_copy_is_an_error_naming_the_task(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = write_config(tmp_path / "palhm.json", config)
    root.mkdir()

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest"])

    assert done.returncode == 1
    assert "task 'db': no copies in" in done.stderr


@pytest.mark.parametrize("offset", [10, 3 * MiB // 2, -10])
def test_a_flipped_byte_stops_the_restore_before_the_last_stage_sees_end_of_input(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]], offset: int
) -> None:
    """Wherever the damage is, the sink never gets a clean EOF; zstd may see it first."""
    root, out, config = setup
    # restore the raw bytes (cat), so that only palhm's check can see the damage
    obj = config["tasks"][0]["objects"][0]
    obj["restore"] = [inline("cat"), sink(out / "data")]
    config_file = backup(tmp_path, config)
    stored = the_copy(root) / "data.zst"
    flip(stored, offset if offset >= 0 else stored.stat().st_size + offset)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest"])

    assert done.returncode == 1
    assert "object 'data.zst', restore, stored object: checksum differs" in done.stderr
    assert "killed before its input ended" in done.stderr
    assert "restored before the failure: schema" in done.stderr
    assert not (out / "data.eof").exists()
    assert (out / "schema.eof").exists()


def test_a_truncated_object_is_reported_with_both_sizes(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)
    stored = the_copy(root) / "data.zst"
    size = stored.stat().st_size
    os.truncate(stored, size - 1000)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "data.zst"])

    assert done.returncode == 1
    assert f"size differs (manifest {size} bytes, read {size - 1000} bytes)" in done.stderr
    assert not (out / "data.eof").exists()


def test_verify_first_reads_the_object_before_feeding_anything(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)
    flip(the_copy(root) / "data.zst", 10)

    done = run_palhm(
        ["-f", str(config_file), "restore", "db", "latest", "data.zst", "--verify-first"]
    )

    assert done.returncode == 1
    assert "checksum differs" in done.stderr
    assert not (out / "data").exists()  # the pipeline never started


def test_a_first_stage_that_stops_reading_early_fails_the_restore(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config["tasks"][0]["objects"][0]["restore"] = [inline("true")]
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "data.zst"])

    assert done.returncode == 1
    assert (
        "object 'data.zst', restore, stage 1 (true): true stopped reading its input" in done.stderr
    )


def test_a_failing_restore_stage_is_named_with_its_stderr(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config["tasks"][0]["objects"][1]["restore"] = [
        inline(sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit('no such table')")
    ]
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest"])

    assert done.returncode == 1
    assert "object 'schema', restore, stage 1 (" in done.stderr
    assert "exited with status 1" in done.stderr
    assert "| no such table" in done.stderr
    assert "not restored: data.zst" in done.stderr
    assert not (out / "data").exists()


@pytest.mark.services
def test_restore_from_s3_streams_and_checks_like_localfs(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    config = make_config(tmp_path / "unused", out)
    config["modules"] = ["aws"]
    task = config["tasks"][0]
    task["backend"] = "aws-s3"
    task["backend-param"] = {
        "bucket": s3_bucket,
        "root": "hosts/db",
        "endpoint-url": moto_server.endpoint_url,
    }
    config_file = backup(tmp_path, config, moto_server.env)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest"], env=moto_server.env)
    assert done.returncode == 0, done.stderr
    assert len((out / "data").read_bytes()) == 3 * MiB

    s3 = moto_server.client("s3")
    manifest = next(
        item["Key"]
        for item in s3.list_objects_v2(Bucket=s3_bucket, Prefix="hosts/db/")["Contents"]
        if item["Key"].endswith("/.palhm-manifest.json")
    )
    key = manifest.rsplit("/", 1)[0] + "/data.zst"
    body = bytearray(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 1
    s3.put_object(Bucket=s3_bucket, Key=key, Body=bytes(body))
    for name in ("data", "data.eof", "schema", "schema.eof"):
        (out / name).unlink()

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest"], env=moto_server.env)
    assert done.returncode == 1
    assert "object 'data.zst', restore, stored object" in done.stderr
    assert not (out / "data.eof").exists()


def test_restoring_a_large_object_keeps_memory_bounded(tmp_path: Path) -> None:
    """512 MiB through palhm restore: palhm's peak RSS stays far below the object."""
    root, out = tmp_path / "root", tmp_path / "out"
    size = 512 * MiB
    config = {
        "tasks": [
            {
                "id": "db",
                "type": "backup",
                "backend": "localfs",
                "backend-param": {"root": str(root)},
                "objects": [
                    {
                        "path": "big",
                        "pipeline": [inline("head", "-c", str(size), "/dev/zero")],
                        "restore": [inline("cmp", "-", "/dev/zero", "-n", str(size))],
                    }
                ],
            }
        ]
    }
    config_file = backup(tmp_path, config)
    out.mkdir()
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(done.returncode)\n"
    )
    argv = [sys.executable, "-m", "palhm", "-f", str(config_file), "restore", "db", "latest"]
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.splitlines()[-1])
    assert peak_kib < 120 * 1024, f"peak RSS {peak_kib} KiB while restoring {size} bytes"


# --------------------------------------------------------------------------- drill


def drill_config(tmp_path: Path, **drill: Any) -> tuple[dict[str, Any], Path]:
    root, out = tmp_path / "root", tmp_path / "out"
    out.mkdir(exist_ok=True)
    config = make_config(root, out, size=100_000)
    obj = config["tasks"][0]["objects"][0]
    # in the drill, data.zst goes into the drill's own directory
    obj["drill"] = {"restore": [inline("zstd", "-q", "-d"), sink(Path("{drill-dir}/data"))]}
    marker = tmp_path / "torn-down"
    config["tasks"][0]["drill"] = {
        "set-up": [inline("touch", "{drill-dir}/ready")],
        "checks": [
            {
                "name": "size of data",
                "run": inline("stat", "-c", "%s", "{drill-dir}/data"),
                "expect-output": "^100000$",
            }
        ],
        "tear-down": [inline("cp", "{drill-dir}/ready", str(marker))],
        **drill,
    }
    config["metrics"] = {"textfile": str(tmp_path / "palhm.prom")}
    return config, marker


def test_drill_passes_restores_into_its_own_directory_and_tears_down(tmp_path: Path) -> None:
    config, marker = drill_config(tmp_path)
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})

    assert done.returncode == 0, done.stderr
    assert "ok  size of data" in done.stdout
    assert "ok  data.zst  " in done.stdout
    # no restore pipeline is used in a drill without use-restore-pipelines
    assert not (tmp_path / "out" / "schema").exists()
    assert "ok  schema  16 bytes  read and checked only" in done.stdout
    assert marker.exists()  # tear-down ran, with {drill-dir} replaced
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("palhm-drill-")] == []
    families = parse_prometheus((tmp_path / "palhm.prom").read_text())
    assert by_task(families, "palhm_last_drill_success") == {"db": 1}
    # the backup run's own series are kept
    assert by_task(families, "palhm_last_run_success") == {"db": 1}


def test_use_restore_pipelines_is_what_lets_a_drill_run_the_restore_pipeline(
    tmp_path: Path,
) -> None:
    config, _ = drill_config(tmp_path, **{"use-restore-pipelines": True})
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "schema").read_bytes() == b"CREATE TABLE t;\n"


def test_a_failing_set_up_still_tears_down_and_reports_the_phase(tmp_path: Path) -> None:
    config, marker = drill_config(tmp_path)
    config["tasks"][0]["drill"]["set-up"].append(inline("false"))
    config["tasks"][0]["drill"]["tear-down"].insert(0, inline("false"))  # fails, others still run
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})

    assert done.returncode == 1
    assert "drill failed at set-up 2: task 'db', drill, set-up 2: false exited with status 1" in (
        done.stderr
    )
    assert "also: drill failed at tear-down 1" in done.stderr
    assert marker.exists()
    families = parse_prometheus((tmp_path / "palhm.prom").read_text())
    assert by_task(families, "palhm_last_drill_success") == {"db": 0}


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            {"run": inline("echo", "0 rows"), "expect-output": "^[1-9]"},
            "drill failed at check 1: task 'db', drill, check 1: output does not match /^[1-9]/",
        ),
        (
            {
                "name": "status",
                "run": inline(sys.executable, "-c", "raise SystemExit(3)"),
                "expect-status": "0-2",
            },
            "'raise SystemExit(3)' exited with status 3 (accepted: 0-2)",
        ),
    ],
)
def test_a_failing_check_is_named_and_fails_the_drill(
    tmp_path: Path, check: dict[str, Any], message: str
) -> None:
    config, marker = drill_config(tmp_path)
    config["tasks"][0]["drill"]["checks"] = [check]
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})

    assert done.returncode == 1
    assert message in done.stderr
    assert "drill failed at " in done.stderr
    assert marker.exists()


def test_a_drill_without_a_copy_fails_before_setting_anything_up(tmp_path: Path) -> None:
    config, marker = drill_config(tmp_path)
    config_file = write_config(tmp_path / "palhm.json", config)
    (tmp_path / "root").mkdir()

    done = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})

    assert done.returncode == 1
    assert "no copies in" in done.stderr
    assert not marker.exists()


def test_drill_result_reaches_the_drill_hooks(tmp_path: Path) -> None:
    config, _ = drill_config(tmp_path)
    with PingReceiver() as receiver:
        config["tasks"][0]["drill"]["on-success"] = [{"type": "ping", "url": receiver.url("/ok")}]
        config["tasks"][0]["drill"]["on-failure"] = [
            {"type": "ping", "url": receiver.url("/fail"), "method": "POST"}
        ]
        config_file = backup(tmp_path, config)
        good = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})
        flip(the_copy(tmp_path / "root") / "data.zst", 100)
        bad = run_palhm(["-f", str(config_file), "drill", "db"], env={"TMPDIR": str(tmp_path)})
        pings = list(receiver.requests)

    assert (good.returncode, bad.returncode) == (0, 1)
    assert [p.path for p in pings] == ["/ok", "/fail"]
    assert b"status: failure" in pings[1].body
    assert b"checksum differs" in pings[1].body


def test_drill_of_a_task_without_a_drill_section_is_a_usage_error(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = write_config(tmp_path / "palhm.json", config)

    done = run_palhm(["-f", str(config_file), "drill", "db"])

    assert done.returncode == 2
    assert "task 'db' has no 'drill' section" in done.stderr


def test_sigterm_during_a_drill_still_tears_down_and_exits_143(tmp_path: Path) -> None:
    config, marker = drill_config(tmp_path)
    started = tmp_path / "check-started"
    config["tasks"][0]["drill"]["checks"] = [
        {"run": inline(sys.executable, "-c", SLOW_CHECK, str(started))}
    ]
    config_file = backup(tmp_path, config)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    argv = [sys.executable, "-m", "palhm", "-f", str(config_file), "drill", "db"]
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as palhm:
        wait_for(started.exists, timeout=60)
        palhm.send_signal(signal.SIGTERM)
        _, stderr = palhm.communicate(timeout=60)

    assert palhm.returncode == 143, stderr
    assert marker.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("palhm-drill-")] == []


SLOW_CHECK = "import sys, time\nopen(sys.argv[1], 'w').close()\ntime.sleep(120)\n"


def test_damage_found_after_a_stage_failed_reports_both(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    gives_up = "import sys; sys.stdin.buffer.read(1000); sys.exit('bad block')"
    config["tasks"][0]["objects"][0]["restore"] = [inline(sys.executable, "-c", gives_up)]
    config_file = backup(tmp_path, config)
    stored = the_copy(root) / "data.zst"
    flip(stored, stored.stat().st_size - 5)

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "data.zst"])

    assert done.returncode == 1
    assert "object 'data.zst', restore, stored object: checksum differs" in done.stderr
    assert "(also: task 'db', copy " in done.stderr
    assert ", stage 1 (" in done.stderr and "exited with status 1)" in done.stderr


def test_drill_dry_run_prints_every_command_and_runs_nothing(tmp_path: Path) -> None:
    config, marker = drill_config(tmp_path)
    config_file = backup(tmp_path, config)

    done = run_palhm(["-f", str(config_file), "drill", "db", "--dry-run"])

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "  set-up 1: touch '{drill-dir}/ready'"
    assert lines[2] == "  restore schema (group 'schema'): read and check only"
    assert lines[4].startswith("  restore data.zst (group 'data'): zstd -q -d | ")
    assert lines[5] == (
        "  size of data: stat -c %s '{drill-dir}/data' (status ==0, output matching /^100000$/)"
    )
    assert lines[6] == f"  tear-down 1: cp '{{drill-dir}}/ready' {marker}"
    assert not marker.exists()


def test_sigint_during_a_restore_kills_the_pipeline_and_exits_130(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    started = tmp_path / "stage-started"
    config["tasks"][0]["objects"][0]["restore"] = [
        inline(sys.executable, "-c", SLOW_CHECK, str(started))
    ]
    config_file = backup(tmp_path, config)
    argv = [sys.executable, "-m", "palhm", "-f", str(config_file), "restore", "db", "latest"]
    argv.append("data.zst")
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as palhm:
        wait_for(started.exists, timeout=60)
        stage_pids = descendants(palhm.pid)
        palhm.send_signal(signal.SIGINT)
        _, stderr = palhm.communicate(timeout=60)

    assert palhm.returncode == 130, stderr
    assert "interrupted by SIGINT" in stderr
    assert "Traceback" not in stderr
    assert stage_pids
    assert not [pid for pid in stage_pids if Path(f"/proc/{pid}").exists()]


def test_an_object_longer_than_its_manifest_stops_at_once(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = backup(tmp_path, config)
    stored = the_copy(root) / "data.zst"
    size = stored.stat().st_size
    with stored.open("ab") as grown:
        grown.write(b"\0" * (8 * MiB))

    done = run_palhm(["-f", str(config_file), "restore", "db", "latest", "data.zst"])

    assert done.returncode == 1
    assert f"stored object: size differs (manifest {size} bytes, read at least " in done.stderr
    assert not (out / "data.eof").exists()


def test_a_copy_without_manifest_is_refused_and_get_is_suggested(
    tmp_path: Path, setup: tuple[Path, Path, dict[str, Any]]
) -> None:
    root, out, config = setup
    config_file = write_config(tmp_path / "palhm.json", config)
    legacy = root / "2022-05-01T06:59:17+00:00"  # made by the original PALHM
    legacy.mkdir(parents=True)
    (legacy / "schema").write_text("CREATE TABLE t;\n")

    named = run_palhm(["-f", str(config_file), "restore", "db", legacy.name])
    latest = run_palhm(["-f", str(config_file), "restore", "db", "latest"])

    assert named.returncode == 2
    assert "has no manifest (made by the original PALHM): restore its objects with 'palhm get'" in (
        named.stderr
    )
    assert latest.returncode == 1
    assert "no complete copy" in latest.stderr
    assert list(out.iterdir()) == []
