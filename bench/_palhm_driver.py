"""Child process of the benchmarks: run one backup with palhm.engine.backup.run_backup and
print, as JSON, the wall and CPU time of the run alone and the process's peak RSS.

argv[1]: {"root": DIR, "objects": [{"path": P, "stages": [[argv...], ...],
          "alloc_size": N?}], "checksum": NAME, "nb_workers": N, "backend": NAME?}
"""

from __future__ import annotations

import json
import resource
import sys
import time

from palhm.engine.backup import run_backup
from palhm.model import BackupObject, BackupTask, Exec, PrefixSpec


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    spec = json.loads(sys.argv[1])
    objects = tuple(
        BackupObject(
            o["path"], tuple(Exec(tuple(a)) for a in o["stages"]), alloc_size=o.get("alloc_size")
        )
        for o in spec["objects"]
    )
    backend = spec.get("backend", "localfs")
    task = BackupTask(
        id="bench",
        backend=backend,
        objects=objects,
        backend_param={"root": spec["root"]} if backend == "localfs" else {},
        prefix=PrefixSpec(kind="iso8601", timespec="microseconds"),
        checksum=spec["checksum"],
    )
    self_before, children_before = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run_backup(task, nb_workers=spec.get("nb_workers", 0), verbosity=1)
    wall = time.perf_counter() - start
    report = {
        "wall": wall,
        "cpu_self_run": cpu(resource.RUSAGE_SELF) - self_before,
        "cpu_children_run": cpu(resource.RUSAGE_CHILDREN) - children_before,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
