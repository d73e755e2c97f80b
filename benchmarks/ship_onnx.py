"""Ship an ONNX export beside a shipped network's safetensors, so ``load_run(NAME)`` runs it
with onnxruntime and ``ferkit predict`` never imports torch (issue 23's cold start).

    .venv/bin/python benchmarks/ship_onnx.py NAME [NAME ...]

A maintainer's step, run after ``ship_row.py`` (or ``ship_run``) and committed with the weights:
the export is made by ``export_onnx`` into a temporary copy of the run (``ferkit export`` never
writes into the package), checked there against torch on a random batch, and its file and the
card's ``onnx`` entry (sha256 of the graph and of the weights it came from) are then copied in.
A stale or altered graph is refused at load time and the torch weights are used instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ferkit import io
from ferkit.models.onnx_export import export_onnx
from ferkit.weights import WEIGHTS_DIR, shipped_path


def ship_onnx(name: str, dest: Path = WEIGHTS_DIR) -> dict:
    """Export shipped network ``name`` and record the graph in its card; returns the entry."""
    run_dir = shipped_path(name)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        export = export_onnx(name, copy)
        entry = json.loads((copy / "model.json").read_text())["onnx"]
        io.write_bytes(dest / name / entry["file"], export.path.read_bytes())
    card = json.loads((run_dir / "model.json").read_text())
    card["onnx"] = entry
    io.write_json(dest / name / "model.json", card)
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    for name in args.names:
        entry = ship_onnx(name)
        print(
            f"{name}: {entry['file']} sha256 {entry['sha256'][:12]}..., "
            f"max |onnx - torch| {entry['max_abs_diff']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
