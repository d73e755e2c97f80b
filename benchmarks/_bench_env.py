"""What the benchmarks share: the other framework's venv, a note on the machine, torch's thread
count, and how a result is reported (JSON, a markdown table, optionally a JSON file).

The competitors (Keras/TensorFlow, the ``fer`` package) live in ``.bench-venv`` only, never in
ferkit's own venv; each benchmark runs its worker there as a subprocess.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".bench-venv"


def bench_python(side: str, create: str) -> Path:
    """``.bench-venv``'s python, or exit 2 with the command that creates the venv."""
    python = BENCH_VENV / "bin" / "python"
    if not python.is_file():
        print(
            f"{python} not found: the {side} side needs its own venv.\n"
            f"Create it from {ROOT}:\n\n    {create}\n",
            file=sys.stderr,
        )
        sys.exit(2)
    return python


def machine_note() -> dict[str, Any]:
    """CPU model, core count and load average, recorded before and after a measurement."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()]}


def median_ms(call: Callable[[], Any], calls: int) -> float:
    """Median wall time of ``calls`` calls after one untimed warm-up call, in ms."""
    call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def torch_threads(threads: int) -> None:
    """Pin torch's intra- and inter-op pools to ``threads`` (call before any torch work: the
    inter-op pool can only be sized once per process)."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def report(result: Any, table: str, path: Path | None) -> None:
    """Print ``result`` as JSON, then its markdown ``table``; also write it to ``path``."""
    print(json.dumps(result, indent=2))
    print(table)
    if path is not None:
        from ferkit import io

        io.write_json(path, result)
