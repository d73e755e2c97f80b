"""What flip test-time augmentation buys: a network's accuracy on a split with and without
averaging each image with its mirror image, from the same weights, and what it costs.

    .venv/bin/python benchmarks/flip_tta.py --data ../shared/data/affectnet_yolo \\
        --model affectnet [--model RUN ...] [--split val] [--threads 1] [--json OUT]

Each ``--model`` (run folder or shipped name) is loaded once and scored twice: single view
(``flip_average`` off) and flip-averaged (on), whichever way it was saved. Images whose class
the model does not know are left out and counted. Seconds are the wall time of scoring the
whole split on ``--threads`` torch threads (the flip-averaged pass runs the network twice).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from _bench_env import machine_note, report, torch_threads

from ferkit.data import load_dataset
from ferkit.evaluation.metrics import classification_report_dict
from ferkit.models import load_run


def _labels_for(run_canonical: list[str], split) -> tuple[np.ndarray, np.ndarray]:
    """(kept image indices, labels in the model's class order) by canonical class name."""
    index = {name: i for i, name in enumerate(run_canonical)}
    mapped = np.array([index.get(split.canonical[label], -1) for label in split.labels])
    keep = np.flatnonzero(mapped >= 0)
    return keep, mapped[keep]


def timed_score(estimator: Any, images: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1 and the wall seconds of ``estimator.predict`` over ``images``."""
    start = time.perf_counter()
    pred = estimator.predict(images)
    seconds = time.perf_counter() - start
    metrics = classification_report_dict(y, pred, classes)
    return {
        "accuracy": round(float(metrics["accuracy"]), 4),
        "macro_f1": round(float(metrics["macro_f1"]), 4),
        "seconds": round(seconds, 1),
    }


def labelled_split(
    model: str, data: Path, split_name: str
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """(torch run, split, kept images, their labels in the run's class order) for ``model``."""
    run = load_run(model, backend="torch")
    ds = load_dataset(data, image_size=run.image_size, color=run.color, splits=[split_name])
    split = ds.usable_split(split_name)
    keep, y = _labels_for(run.canonical, split)
    return run, split, split.images[keep], y


def split_record(model: str, data: Path, split: Any, images: np.ndarray, rows: dict) -> dict:
    """The JSON fields every row of these benchmarks shares."""
    return {
        "model": model,
        "data": str(data),
        "split": split.name,
        "images": len(images),
        "left_out": len(split) - len(images),
        "result": rows,
    }


def measure(model: str, data: Path, split_name: str) -> dict:
    run, split, images, y = labelled_split(model, data, split_name)
    net = run.estimator.model
    saved = net.flip_average
    rows = {}
    for name, flip in (("single", False), ("flip", True)):
        net.average_flips(flip)
        rows[name] = timed_score(run.estimator, images, y, run.canonical)
    return {**split_record(model, data, split, images, rows), "saved_with_flip": saved}


def table(results: list[dict]) -> str:
    lines = [
        "| model | images | single view | flip-averaged | macro-F1 single / flip "
        "| s single / flip |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        s, f = r["result"]["single"], r["result"]["flip"]
        lines.append(
            f"| {r['model']} | {r['images']:,} | {s['accuracy']:.1%} | {f['accuracy']:.1%} | "
            f"{s['macro_f1']:.3f} / {f['macro_f1']:.3f} | {s['seconds']} / {f['seconds']} |"
        )
    return "\n".join(lines)


def models_parser(description: str) -> argparse.ArgumentParser:
    """The options these benchmarks share: ``--model`` (repeatable), ``--data``, ``--split``,
    ``--threads`` and ``--json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", action="append", required=True, help="run folder or name")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    return parser


def run_models(
    args: argparse.Namespace, measure_one: Callable[[str], dict], table_of: Callable
) -> int:
    """Measure each ``--model`` on ``--threads`` torch threads and report the rows as a table
    and a JSON record, with the machine's load before and after (other work on the machine
    slows the seconds)."""
    torch_threads(args.threads)
    before = machine_note()
    results = [measure_one(model) for model in args.model]
    record = {
        "date": date.today().isoformat(),
        "threads": args.threads,
        "machine_before": before,
        "machine_after": machine_note(),
        "models": results,
    }
    report(record, table_of(results), args.json)
    return 0


def main() -> int:
    args = models_parser(__doc__.splitlines()[0]).parse_args()
    return run_models(args, lambda model: measure(model, args.data, args.split), table)


if __name__ == "__main__":
    raise SystemExit(main())
