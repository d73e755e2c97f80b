"""First (uncached) and cached load times of the real datasets' train splits.

    .venv/bin/python benchmarks/load_times.py [--data ../shared/data] [--repeats 3] [--json OUT]

Each dataset is loaded once into an empty temporary decode cache (the "first load": scan, decode
on all cores, write the cache), then ``--repeats`` more times from that cache; the median cached
time is reported. The OS page cache is not dropped (that needs privileges this machine lacks), so
"first" means first for ferkit, with the files possibly already in RAM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from ferkit.data import load_dataset

TARGETS = (("affectnet_yolo", "train"), ("fer2013", "train"))


def time_load(path: Path, split: str, cache_dir: str) -> tuple[float, int]:
    start = time.perf_counter()
    ds = load_dataset(path, splits=[split], cache_dir=cache_dir, progress=False)
    elapsed = time.perf_counter() - start
    return elapsed, len(ds.split(split))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for name, split in TARGETS:
        path = args.data / name
        if not path.is_dir():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as cache_dir:
            first, n = time_load(path, split, cache_dir)
            cached = [time_load(path, split, cache_dir)[0] for _ in range(args.repeats)]
        rows.append(
            {
                "dataset": name,
                "split": split,
                "images": n,
                "first_s": round(first, 2),
                "cached_s": round(statistics.median(cached), 2),
                "first_img_per_s": round(n / first),
            }
        )
    meta = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    print("| dataset | split | images | first load (s) | cached load (s) | first img/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['split']} | {r['images']:,} | {r['first_s']} | "
            f"{r['cached_s']} | {r['first_img_per_s']:,} |"
        )
    print(json.dumps(meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
