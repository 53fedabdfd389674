"""palhm's own peak RSS (ru_maxrss of the palhm process, stages excluded) for a small
and a large object: the data path must be bounded, the same whatever the size.

Goal: <= 64 MiB and the same for both sizes. Measured with the checksum on (palhm
relays every byte) and off (the last stage writes into the file).

    .venv/bin/python bench/bench_rss.py [--small MIB] [--large GIB] [--dir DIR]
"""

from __future__ import annotations

import argparse

from _common import clear, fresh_dir, run_palhm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=64, help="MiB (default 64)")
    parser.add_argument("--large", type=float, default=4.0, help="GiB (default 4)")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    work = fresh_dir(args.dir, "rss")
    sizes = {
        f"{args.small} MiB": args.small << 20,
        f"{args.large:g} GiB": int(args.large * (1 << 30)),
    }
    try:
        for checksum in ("blake3", "none"):
            peaks = {}
            for label, size in sizes.items():
                spec = {
                    "root": str(work / "root"),
                    "checksum": checksum,
                    "objects": [
                        {"path": "o", "stages": [["head", "-c", str(size), "/dev/zero"], ["cat"]]}
                    ],
                }
                peaks[label] = run_palhm(spec).maxrss_kib / 1024
                clear(work / "root")
            text = ", ".join(f"{label}: {peak:.1f} MiB" for label, peak in peaks.items())
            small, large = peaks.values()
            print(
                f"checksum {checksum:6} peak RSS of palhm {text} (large/small x{large / small:.3f})"
            )
    finally:
        clear(work)


if __name__ == "__main__":
    main()
