"""Faces classified per second by a shipped network, per backend, batch size and thread count.

    PYTHONPATH=src .venv/bin/python benchmarks/classify_throughput.py [--model fer2013] \\
        [--data ../shared/data/fer2013] [--batches 1 32 256] [--threads 2 1] [--rounds 4] \\
        [--faces 1024] [--calibration 500] [--accuracy] [--json runs/throughput.json]

Backends (``--backends``, default all):

* ``ort-fp32``: the shipped ``model.onnx`` in onnxruntime (what ``ferkit predict`` runs);
* ``ort-int8-shipped``: the shipped ``model.int8.onnx`` (the card's ``onnx_int8``: what
  ``ferkit predict`` runs where one is shipped);
* ``ort-int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic`` of it (int8 weights,
  activations quantised per batch at run time);
* ``ort-int8-qdq`` / ``ort-int8-qop``: ``quantize_static``, calibrated (MinMax) on
  ``--calibration`` random train images (and their mirror images, for a graph with the flip
  outside, as ``ship_onnx.py`` calibrates), in the QDQ and the QOperator format;
* ``torch-fp32``: the torch module on NCHW float tensors (``load_run(backend="torch")``);
* ``torch-bf16``: the same under ``torch.autocast("cpu", torch.bfloat16)``, channels_last.

Each name with ``-noflip`` appended (``ort-int8-qdq-noflip``) is the same backend scoring each
face once, without its mirror image (``Predictor(flip=False)``, ``--no-flip``); without it a
flip-averaged network scores both views, as ``ferkit predict`` does by default (the shipped
graphs average them outside the graph, in ``OnnxClassifier``: issue 19).

The crops are real faces of the val split (so the int8 graphs see the activations they were
calibrated for). For every (threads, batch) the backends are timed in rounds of alternating
order (A B C .. then .. C B A), each round classifying ``--faces`` crops in batches; the best
and the median round are reported, with the 1-minute load average around the measurement (the
machine is shared). ``--accuracy`` also scores every backend on the whole val split (the
int8 adoption rule: a drop of at most 0.3 points).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from _bench_env import machine_note, report

from ferkit.data import load_dataset
from ferkit.models import load_run
from ferkit.models.flip import has_flip_tta
from ferkit.models.onnx_quantize import quantize_graph
from ferkit.models.onnx_run import (
    FLIP_OUTSIDE,
    OnnxClassifier,
    graph_flip,
    make_session,
    mirrored,
)
from ferkit.models.store import Run
from ferkit.weights import DEFAULT_MODEL

BASE_BACKENDS = (
    "ort-fp32",
    "ort-int8-shipped",
    "ort-int8-dynamic",
    "ort-int8-qdq",
    "ort-int8-qop",
    "torch-fp32",
    "torch-bf16",
)
NO_FLIP = "-noflip"
BACKENDS = BASE_BACKENDS + tuple(name + NO_FLIP for name in BASE_BACKENDS)
Predict = Callable[[np.ndarray], np.ndarray]


def quantise(source: Path, kind: str, calibration: np.ndarray, work: Path) -> Path:
    """An int8 copy of ``source`` (``kind``: dynamic, qdq or qop) written under ``work``."""
    return quantize_graph(source, kind, calibration, work / f"model.int8-{kind}.onnx")


def torch_predictor(run: Run, bf16: bool, flip: bool = True) -> Predict:
    """``predict_proba`` of the torch module, optionally bf16 autocast on channels_last;
    ``flip=False``: a flip-averaged network's single view."""
    import torch

    estimator = run.estimator
    model = estimator.model
    if bf16:
        model = model.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def predict(images: np.ndarray) -> np.ndarray:
        x = estimator.to_tensor(images)
        if not bf16:
            return torch.softmax(model(x, flip=flip), 1).numpy()
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x, flip=flip)
        return torch.softmax(logits.float(), 1).numpy()

    return predict


def build(
    run_name: str, backends: list[str], calibration: np.ndarray, work: Path
) -> tuple[dict[str, tuple[Run, Callable[[int], Predict]]], dict[str, Path]]:
    """Per backend: a Run to score with and a factory of predictors for a thread count; and
    the graph file of each onnxruntime backend."""
    onnx_run = load_run(run_name, backend="onnx-fp32")
    torch_run = load_run(run_name, backend="torch")
    source = onnx_run.path / onnx_run.card["onnx"]["file"]
    place = graph_flip(onnx_run.card["onnx"], str(onnx_run.path / "model.json"))
    built: dict[str, tuple[Run, Callable[[int], Predict]]] = {}
    graphs: dict[str, Path] = {}
    quantised: dict[str, Path] = {}  # one graph for a backend and its -noflip twin
    if place == FLIP_OUTSIDE:  # calibrated as benchmarks/ship_onnx.py does: crops and mirrors
        calibration = np.concatenate([calibration, mirrored(calibration)])
    for name in backends:
        flip = not name.endswith(NO_FLIP)
        base = name.removesuffix(NO_FLIP)
        if base.startswith("ort-"):
            if not flip and place != FLIP_OUTSIDE and has_flip_tta(onnx_run.card):
                raise SystemExit(f"{name}: the graph averages the mirror inside; re-export it")
            kind = base.rsplit("-", 1)[1]
            if base not in ("ort-fp32", "ort-int8-shipped") and kind not in quantised:
                quantised[kind] = quantise(source, kind, calibration, work)
            path = source if base == "ort-fp32" else quantised.get(kind, source)
            if base == "ort-int8-shipped":
                path = onnx_run.path / onnx_run.card["onnx_int8"]["file"]

            def factory(threads: int, path: Path = path, flip: bool = flip) -> Predict:
                session = make_session(path, threads)
                classifier = OnnxClassifier(session, batch_size=4096, graph_flip=place, flip=flip)
                return classifier.predict_proba

            built[name], graphs[name] = (onnx_run, factory), path
        else:
            bf16 = base == "torch-bf16"

            def tfactory(threads: int, bf16: bool = bf16, flip: bool = flip) -> Predict:
                import torch

                torch.set_num_threads(threads)
                return torch_predictor(torch_run, bf16, flip)

            built[name] = (torch_run, tfactory)
    return built, graphs


class _Scored:
    """A Run's estimator stand-in whose predict is a given predictor (for evaluate_run)."""

    backend = "bench"

    def __init__(self, predict: Predict) -> None:
        self.predict_proba = predict

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)


def one_round(predict: Predict, faces: np.ndarray, batch: int) -> tuple[float, float]:
    """Faces per second classifying ``faces`` in batches of ``batch``: per wall second, and
    per CPU second of this process (all its threads together)."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(faces), batch):
        predict(faces[i : i + batch])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(faces) / wall, len(faces) / max(cpu, 1e-9)


def measure(
    predictors: dict[str, Predict], faces: np.ndarray, batch: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) rates per backend over ``rounds`` rounds of alternating order (ABBA...)."""
    names = list(predictors)
    for name in names:  # warm-up: kernels picked and caches filled before any timing
        one_round(predictors[name], faces[: max(batch, 32)], batch)
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            rates[name].append(one_round(predictors[name], faces, batch))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--data", type=Path, default=None, help="default: ../shared/data/...")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--faces", type=int, default=1024, help="crops per round")
    parser.add_argument("--calibration", type=int, default=500, help="train images")
    parser.add_argument("--accuracy", action="store_true", help="score each on the val split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_interop_threads(1)
    probe = load_run(args.model, backend="onnx-fp32")
    data = args.data or Path("../shared/data") / (
        "fer2013" if probe.image_size == 48 else "affectnet_yolo"
    )
    rng = np.random.default_rng(args.seed)

    def split(name: str) -> Any:
        ds = load_dataset(
            data, image_size=probe.image_size, color=probe.color, splits=[name], progress=False
        )
        return ds, ds.usable_split(name)

    _, train = split(args.train_split)
    calibration = train.images[rng.choice(len(train.images), args.calibration, replace=False)]
    _, val = split(args.val_split)
    faces = val.images[
        rng.choice(len(val.images), args.faces, replace=len(val.images) < args.faces)
    ]
    before = machine_note()
    with tempfile.TemporaryDirectory() as tmp:
        built, graphs = build(args.model, args.backends, calibration, Path(tmp))
        sizes = {n: os.path.getsize(p) for n, p in graphs.items()}
        accuracy: dict[str, float] = {}
        if args.accuracy:
            from ferkit.evaluation import evaluate_run

            for name, (run, factory) in built.items():
                scored = dataclasses.replace(run, estimator=_Scored(factory(max(args.threads))))
                result = evaluate_run(scored, data, args.val_split, progress=False)
                accuracy[name] = result["accuracy"]
                print(
                    f"{name}: val accuracy {result['accuracy']:.4f} (n={result['n']})", flush=True
                )
        rows = []
        for threads in args.threads:
            predictors = {name: factory(threads) for name, (_, factory) in built.items()}
            for batch in args.batches:
                load0 = os.getloadavg()[0]
                rates = measure(predictors, faces, batch, args.rounds)
                load1 = os.getloadavg()[0]
                for name, pairs in rates.items():
                    values = [wall for wall, _ in pairs]
                    row = {
                        "model": args.model,
                        "backend": name,
                        "threads": threads,
                        "batch": batch,
                        "best_faces_s": round(max(values), 1),
                        "median_faces_s": round(statistics.median(values), 1),
                        # faces per CPU second x threads: the rate with the cores to itself
                        "cpu_faces_s": round(threads * max(c for _, c in pairs), 1),
                        "load_1min": [round(load0, 2), round(load1, 2)],
                    }
                    if name in accuracy:
                        row["val_accuracy"] = round(accuracy[name], 4)
                    rows.append(row)
                    print(row, flush=True)
    result = {
        "model": args.model,
        "data": str(data),
        "val_split": args.val_split,
        "faces_per_round": args.faces,
        "rounds": args.rounds,
        "calibration_images": args.calibration,
        "graph_bytes": sizes,
        "accuracy": accuracy,
        "machine_before": before,
        "machine_after": machine_note(),
        "date": date.today().isoformat(),
        "torch": torch.__version__,
        "rows": rows,
    }
    report(result, table(rows, accuracy), args.json)
    return 0


def table(rows: list[dict[str, Any]], accuracy: dict[str, float]) -> str:
    """Markdown: one line per (threads, batch), one column per backend: best wall faces/s
    (median), and faces per CPU second x threads."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    head = "| threads | batch | " + " | ".join(backends) + " | load (1 min) |"
    lines = [head, "|" + "---|" * (len(backends) + 3)]
    keys = list(dict.fromkeys((r["threads"], r["batch"]) for r in rows))
    for threads, batch in keys:
        cells = {r["backend"]: r for r in rows if (r["threads"], r["batch"]) == (threads, batch)}
        load = next(iter(cells.values()))["load_1min"]
        values = " | ".join(
            f"{cells[b]['best_faces_s']:,.0f} (med {cells[b]['median_faces_s']:,.0f}; "
            f"cpu {cells[b]['cpu_faces_s']:,.0f})"
            for b in backends
        )
        lines.append(f"| {threads} | {batch} | {values} | {load[0]}-{load[1]} |")
    if accuracy:
        lines.append(
            "| val accuracy | | "
            + " | ".join(f"{accuracy[b]:.4f}" if b in accuracy else "" for b in backends)
            + " | |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
