"""Ship an ONNX export beside a shipped network's safetensors, so ``load_run(NAME)`` runs it
with onnxruntime and ``ferkit predict`` never imports torch (issue 23's cold start); with
``--int8``, also its int8 graph, where it keeps val accuracy (issue 19).

    .venv/bin/python benchmarks/ship_onnx.py NAME [NAME ...]
    .venv/bin/python benchmarks/ship_onnx.py NAME --int8 --data ../shared/data/fer2013 \\
        [--val-split val] [--train-split train] [--calibration 500] [--seed 0]

A maintainer's step, run after ``ship_row.py`` (or ``ship_run``) and committed with the weights:
the export is made by ``export_onnx`` into a temporary copy of the run (``ferkit export`` never
writes into the package), checked there against torch on a random batch, and its file and the
card's ``onnx`` entry (sha256 of the graph and of the weights it came from) are then copied in.
A flip-averaged network is exported with its mirror view averaged outside the graph
(``"flip": "outside"``, issue 19): ferkit's classifier adds the mirror, and ``--no-flip`` can
skip it for half the network time.
A stale or altered graph is refused at load time and the torch weights are used instead.

``--int8`` quantises the shipped ``model.onnx`` statically (QDQ, per-channel int8 weights,
uint8 activations, MinMax calibration on ``--calibration`` random train crops, and their
mirror images when the graph's flip is outside: it sees both views at run time), scores the
float and the int8 graph on the whole val split, and ships ``model.int8.onnx`` with a card
entry ``onnx_int8`` (its sha256, the weights it came from, both accuracies) only when the
int8 graph loses at most 0.3 points; otherwise it prints the drop and ships nothing (an
earlier int8 graph of that model is removed from the card).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from ferkit import io
from ferkit.models.onnx_export import export_onnx
from ferkit.models.onnx_run import FLIP_INSIDE, FLIP_KEY, FLIP_OUTSIDE
from ferkit.weights import WEIGHTS_DIR, shipped_path


def ship_onnx(name: str, dest: Path = WEIGHTS_DIR) -> dict:
    """Export shipped network ``name`` and record the graph in its card; returns the entry."""
    run_dir = shipped_path(name)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        export = export_onnx(name, copy, flip=FLIP_OUTSIDE)
        entry = json.loads((copy / "model.json").read_text())["onnx"]
        io.write_bytes(dest / name / entry["file"], export.path.read_bytes())
    card = json.loads((run_dir / "model.json").read_text())
    card["onnx"] = entry
    io.write_json(dest / name / "model.json", card)
    return entry


def _int8_scores(run: Any, int8: Any, data: Path, val_split: str) -> dict[str, Any]:
    """The float and the int8 graph's val accuracy on one dataset."""
    from ferkit.evaluation import evaluate_run

    fp32 = evaluate_run(run, data, val_split, progress=False)
    low = evaluate_run(int8, data, val_split, progress=False)
    return {"dataset": data.name, "split": low["split"], "n": low["n"],
            "accuracy_fp32": round(fp32["accuracy"], 4),
            "accuracy_int8": round(low["accuracy"], 4),
            "drop": fp32["accuracy"] - low["accuracy"]}  # fmt: skip


def _validation_record(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """The card's record of the scores: one dataset's figures, or each dataset's."""
    records = [{k: v for k, v in s.items() if k != "drop"} for s in scores]
    for record, score in zip(records, scores, strict=True):
        record["drop_points"] = round(100 * score["drop"], 3)
    if len(records) == 1:
        return {k: v for k, v in records[0].items() if k not in ("dataset", "drop_points")}
    return {"split": " + ".join(r["split"] for r in records), "by_dataset": records}


def ship_int8(
    name: str,
    data: Path | list[Path],
    *,
    val_split: str = "val",
    train_split: str = "train",
    calibration: int = 500,
    seed: int = 0,
    dest: Path = WEIGHTS_DIR,
) -> dict[str, Any]:
    """Quantise ``name``'s shipped graph, score it, and ship it if the rule allows.

    Several datasets (a model trained on them together): the ``calibration`` crops are drawn
    evenly from their train splits, and the graph is scored on each one's val split; it ships
    only if it keeps the rule on every one of them (``drop_points``: the largest drop).
    Returns what was measured, with ``adopted`` saying whether it was shipped."""
    import onnxruntime

    from ferkit.data import load_dataset
    from ferkit.models import load_run
    from ferkit.models.onnx_quantize import MAX_ACCURACY_DROP, quantize_graph
    from ferkit.models.onnx_run import (
        INT8_FILE,
        INT8_KEY,
        OnnxClassifier,
        make_session,
        mirrored,
    )

    run = load_run(name, backend="onnx-fp32")
    source = run.path / run.card["onnx"]["file"]
    datas = [data] if isinstance(data, Path) else list(data)
    rng = np.random.default_rng(seed)
    parts = []
    for i, one in enumerate(datas):
        train = load_dataset(
            one, image_size=run.image_size, color=run.color, splits=[train_split], progress=False
        ).usable_split(train_split)
        count = calibration // len(datas) + (i < calibration % len(datas))
        parts.append(train.images[rng.choice(len(train.images), count, replace=False)])
    images = np.concatenate(parts)
    place = run.card["onnx"].get(FLIP_KEY, FLIP_INSIDE)  # quantised from it: the same form
    if place == FLIP_OUTSIDE:
        # the graph sees every crop and its mirror image at run time, as a graph with the flip
        # inside did in two branches, each calibrated on its own view: calibrate on both
        images = np.concatenate([images, mirrored(images)])
    with tempfile.TemporaryDirectory() as tmp:
        graph = quantize_graph(source, "qdq", images, Path(tmp) / INT8_FILE).read_bytes()
    int8_estimator = OnnxClassifier(make_session(graph), precision="int8", graph_flip=place)
    int8 = dataclasses.replace(run, estimator=int8_estimator)
    scores = [_int8_scores(run, int8, one, val_split) for one in datas]
    drop = max(s["drop"] for s in scores)
    entry = {
        "file": INT8_FILE,
        "sha256": hashlib.sha256(graph).hexdigest(),
        "weights_sha256": run.card["weights_sha256"],
        "onnx_sha256": run.card["onnx"]["sha256"],
        "format": "QDQ",
        **({FLIP_KEY: place} if place != FLIP_INSIDE else {}),
        "quantization": (
            f"onnxruntime {onnxruntime.__version__} quantize_static: per-channel int8 weights, "
            f"uint8 activations, MinMax calibration on {calibration} random {train_split} "
            f"crops (seed {seed})"
            + (f", drawn evenly from {len(datas)} datasets" if len(datas) > 1 else "")
            + (" and their mirror images" if place == FLIP_OUTSIDE else "")
        ),
        "validation": {
            **_validation_record(scores),
            "drop_points": round(100 * drop, 3),
            "rule": f"shipped only if the drop is at most {100 * MAX_ACCURACY_DROP:g} points"
            + (" on every dataset" if len(datas) > 1 else ""),
            "date": date.today().isoformat(),
        },
    }
    adopted = drop <= MAX_ACCURACY_DROP + 1e-12
    card = json.loads((run.path / "model.json").read_text())
    card.pop(INT8_KEY, None)
    if adopted:
        io.write_bytes(dest / name / INT8_FILE, graph)
        card[INT8_KEY] = entry
    elif (dest / name / INT8_FILE).exists():
        (dest / name / INT8_FILE).unlink()
    io.write_json(dest / name / "model.json", card)
    return {**entry, "adopted": adopted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--int8", action="store_true", help="quantise the shipped graph")
    parser.add_argument(
        "--data", type=Path, nargs="+", help="the dataset(s) it was trained on (with --int8)"
    )
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--calibration", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.int8 and args.data is None:
        parser.error("--int8 needs --data")
    for name in args.names:
        if args.int8:
            result = ship_int8(
                name,
                args.data,
                val_split=args.val_split,
                train_split=args.train_split,
                calibration=args.calibration,
                seed=args.seed,
            )
            v = result["validation"]
            verdict = "shipped" if result["adopted"] else "NOT shipped"
            for one in v.get("by_dataset", [v]):
                print(
                    f"{name}: int8 {one['accuracy_int8']:.4f} vs fp32 {one['accuracy_fp32']:.4f} "
                    f"on {one.get('dataset', '')} {one['split']} (n={one['n']})"
                )
            print(f"{name}: largest drop {v['drop_points']} points: {verdict}")
            continue
        entry = ship_onnx(name)
        print(
            f"{name}: {entry['file']} sha256 {entry['sha256'][:12]}..., "
            f"max |onnx - torch| {entry['max_abs_diff']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
