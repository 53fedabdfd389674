"""SIGKILL palhm at random moments of real runs, many times, and check every invariant
of the crash matrix (tests/reliability/test_crash_localfs.py) after each kill and
after the recovery run that follows it.

    .venv/bin/python scripts/kill_loop.py --kills 120 --seed 1

Each kill: clone the seeded root (3 copies, a legacy copy, stale incomplete copies,
foreign files), start `palhm run` (hashed path `blake3` or direct-fd path `none`,
alternately), SIGKILL it after a random delay in [0, 1.3 x a normal run's
duration], then check: no marked stage process survives; counted copies are whole;
at most one new copy, complete; copies lost only among those rotation was to
remove, and only once the new copy counted; foreign files untouched. Then a normal
run must succeed and leave no incomplete copy and the newest 3 copies, all whole.
Failures are collected, not fatal; the summary is printed at the end.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.harness import (  # noqa: E402
    LIMIT,
    assert_counted_copies_whole,
    clone_root,
    crash_config,
    inspect_root,
    planned_removals,
    run,
    seed_root,
    start,
    survivors,
)
from tests.reliability.test_crash_localfs import check_after_recovery  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="palhm-kill-loop-"))
    seeded = base / "seed"
    seed_root(seeded, crash_config(base / "seed.json", seeded, uuid.uuid4().hex))
    durations = []
    for checksum in ("blake3", "none"):
        probe = base / f"probe-{checksum}"
        clone_root(seeded, probe)
        began = time.monotonic()
        assert run(crash_config(base / "probe.json", probe, "p", checksum=checksum)).returncode == 0
        durations.append(time.monotonic() - began)
    span = 1.3 * max(durations)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    began = time.monotonic()
    for index in range(args.kills):
        checksum = ("blake3", "none")[index % 2]
        delay = rng.uniform(0, span)
        try:
            outcome = one_kill(base / f"k{index}", seeded, checksum, delay)
            outcomes[f"{checksum}: {outcome}"] += 1
            shutil.rmtree(base / f"k{index}")  # kept when it failed, for a look
        except Exception:  # noqa: BLE001 - collect every failure
            failures.append(f"kill {index} ({checksum}, {delay:.3f} s): {traceback.format_exc()}")
            outcomes[f"{checksum}: FAILED"] += 1
    elapsed = time.monotonic() - began
    print(f"{args.kills} kills in {elapsed:.0f} s (seed {args.seed}, delays 0-{span:.2f} s)")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:4d}  {outcome}")
    print(f"failures: {len(failures)}")
    for failure in failures:
        print(failure)
    if not failures:
        shutil.rmtree(base)
    return 1 if failures else 0


def one_kill(work: Path, seeded: Path, checksum: str, delay: float) -> str:
    root = work / "root"
    work.mkdir(parents=True)
    clone_root(seeded, root)
    marker = uuid.uuid4().hex
    config = crash_config(work / "c.json", root, marker, checksum=checksum)
    before = inspect_root(root)
    process = start(config)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    killed = process.returncode == -signal.SIGKILL
    assert survivors(marker) == [], "stage processes outlived the killed palhm"
    crashed = inspect_root(root)
    assert_counted_copies_whole(root, crashed)
    new = set(crashed.counted) - set(before.counted)
    lost = set(before.counted) - set(crashed.counted)
    assert len(new) <= 1 and new <= set(crashed.complete), f"new: {sorted(new)}"
    assert lost <= set(planned_removals(before.counted, LIMIT)), f"lost: {sorted(lost)}"
    assert not lost or new, "a copy was lost before the new one was committed"
    assert crashed.foreign == before.foreign
    recovery = run(config)
    assert recovery.returncode == 0, recovery.stderr
    check_after_recovery(root, crashed, inspect_root(root))
    if not killed:
        return "run finished before the kill"
    if not new:
        return "killed before commit"
    return f"killed after commit, {len(lost)} removed"


if __name__ == "__main__":
    raise SystemExit(main())
