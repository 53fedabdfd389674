"""Run `python -m palhm ARGS` (whichever palhm this interpreter has: this one or the
original) and write the palhm process's own CPU time (user + sys, its stages
excluded) and peak RSS to the file named by $PALHM_BENCH_SELF, as JSON.

    python bench/_self_cpu.py -q -f CFG run b
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import sys


def main() -> None:
    sys.argv = ["palhm", *sys.argv[1:]]
    status: object = 0
    try:
        runpy.run_module("palhm", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        status = exit_.code
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["PALHM_BENCH_SELF"], "w") as report:
        json.dump(
            {
                "cpu": usage.ru_utime + usage.ru_stime,
                "maxrss_kib": usage.ru_maxrss,
                "wakeups": usage.ru_nvcsw,
            },
            report,
        )
    sys.exit(status)


if __name__ == "__main__":
    main()
