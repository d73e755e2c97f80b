"""Cold start of the CLI: ``--help``, ``models`` and a one-photo ``predict``, fresh processes.

    .venv/bin/python benchmarks/cold_start.py [--repeats 5] [--src DIR] [--onnx] [--json OUT]

Every run is a new interpreter (``python -c "from ferkit.cli import app; app()" ARGS``, what
the ``ferkit`` script does), so each pays every import again. The photo is skimage's astronaut
saved as PNG (512x512, one face); ``predict --out`` writes into a fresh folder each run.
Reported per command: the best and the median wall time, and the CPU time (user + sys of the
child) of the best run; on a shared machine the CPU time is the steadier figure, the wall time
also counts waiting for a core. ``--src`` imports ferkit from another source tree (an older
checkout, for before/after); ``--onnx`` adds ``predict`` with a copy of the default model
exported to ONNX in a temporary folder (needs torch and onnx for the export, onnxruntime to run).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_env import ROOT, machine_note, report

LAUNCH = "from ferkit.cli import app; app()"


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh ``ferkit ARGS`` process; a failure exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"ferkit {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(name: str, args: list[str], env: dict[str, str], repeats: int, tmp: Path) -> dict:
    """Best and median of ``repeats`` runs; ``{out}`` in ARGS becomes a fresh folder each run."""
    runs = []
    for i in range(repeats):
        concrete = [a.replace("{out}", str(tmp / f"out-{name}-{i}")) for a in args]
        runs.append(run_once(concrete, env))
    best_wall, best_cpu = min(runs)
    return {
        "command": name,
        "args": args,
        "best_wall_s": round(best_wall, 3),
        "median_wall_s": round(statistics.median(w for w, _ in runs), 3),
        "cpu_s_of_best": round(best_cpu, 3),
        "min_cpu_s": round(min(c for _, c in runs), 3),
    }


def onnx_copy(tmp: Path, env: dict[str, str]) -> Path:
    """The default shipped model copied to ``tmp`` and exported there (never into the package)."""
    code = "from ferkit.inference import default_model_path; print(default_model_path())"
    shipped = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    run = tmp / "default-onnx"
    shutil.copytree(shipped, run)
    run_once(["export", str(run), "--onnx"], env)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="ferkit source tree")
    parser.add_argument("--onnx", action="store_true", help="also predict with an ONNX export")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    env.pop("FERKIT_BACKEND", None)  # the default backend, as a user gets it
    from PIL import Image
    from skimage import data

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        photo = tmp / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        cases: list[tuple[str, list[str]]] = [
            ("--help", ["--help"]),
            ("models", ["models"]),
            ("predict", ["predict", str(photo)]),
            ("predict --out", ["predict", str(photo), "--out", "{out}"]),
        ]
        if args.onnx:
            model = onnx_copy(tmp, env)
            cases.append(("predict (onnx)", ["predict", str(photo), "--model", str(model)]))
        before = machine_note()
        rows = [measure(name, argv, env, args.repeats, tmp) for name, argv in cases]
        after = machine_note()
    result: dict[str, Any] = {
        "src": str(args.src),
        "repeats": args.repeats,
        "machine_before": before,
        "machine_after": after,
        "rows": rows,
    }
    table = "\n".join(
        [
            "| command | best wall (s) | median wall (s) | CPU of best (s) | min CPU (s) |",
            "|---|---|---|---|---|",
            *(
                f"| `ferkit {r['command']}` | {r['best_wall_s']:.2f} | {r['median_wall_s']:.2f} "
                f"| {r['cpu_s_of_best']:.2f} | {r['min_cpu_s']:.2f} |"
                for r in rows
            ),
        ]
    )
    report(result, table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
