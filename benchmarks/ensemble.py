"""What several networks score together: each ``--model`` alone and the average of their
probabilities, on one split (the teachers of ``ferkit train --teacher`` against their student).

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/ensemble.py \\
        --data ../shared/data/fer2013 --model fer2013 --model runs/fer-e150 [--model RUN ...] \\
        [--split val] [--resample-via 224] [--threads 2] [--json OUT]

Why: distillation moves an ensemble's knowledge into one network, so the ensemble's accuracy is
the ceiling a student is measured against. Each model is loaded as its torch network, as saved
(its flip averaging included); ``--resample-via N`` gives the step to each network that lacks it
(``with_resampling``; a network saved with a step keeps its own). Every model must know the
first model's classes (matched by canonical name); extra classes are dropped and the rest
renormalised, as ``ferkit train --teacher`` does (each row then counts on those classes).
Seconds: scoring the split on ``--threads``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from _bench_env import machine_note, report, torch_threads
from flip_tta import labelled_split, models_parser, split_record

from ferkit.errors import FerkitError
from ferkit.evaluation.metrics import classification_report_dict
from ferkit.models.resampling import resample_via_of, with_resampling
from ferkit.training.distill import class_columns, on_classes


def _score(y: np.ndarray, probs: np.ndarray, classes: list[str], seconds: float) -> dict:
    metrics = classification_report_dict(y, probs.argmax(axis=1), classes)
    return {
        "accuracy": round(float(metrics["accuracy"]), 4),
        "macro_f1": round(float(metrics["macro_f1"]), 4),
        "seconds": round(seconds, 1),
    }


def _columns(model: str, run: Any, first_run: Any, y: np.ndarray, first_y: np.ndarray) -> list[int]:
    """Each of the first model's classes' column in ``run``'s output (:func:`class_columns`,
    as ``ferkit train --teacher`` lines up a teacher): a model with extra classes
    (``general``'s contempt on FER2013) is scored on the first model's classes, renormalised;
    one lacking a class, or keeping other images of the split, is refused."""
    try:
        columns = class_columns(run, first_run.canonical)
    except FerkitError as exc:
        raise SystemExit(f"{model}: {exc}") from exc
    if not np.array_equal(np.asarray(run.canonical)[y], np.asarray(first_run.canonical)[first_y]):
        raise SystemExit(f"{model}: keeps other images of the split than {first_run.name}")
    return columns


def measure(models: list[str], data: Path, split_name: str, via: int | None) -> dict[str, Any]:
    """Each model's row and the ensemble's, on the same images in the first model's class
    order (a model lacking one of them is refused)."""
    rows: dict[str, Any] = {}
    total: np.ndarray | None = None
    first: tuple[Any, Any, np.ndarray, np.ndarray] | None = None
    for model in models:
        run, split, images, y = labelled_split(model, data, split_name)
        if first is None:
            first = (run, split, images, y)
        columns = _columns(model, run, first[0], y, first[3])
        if via is not None and resample_via_of(run) is None:
            run = with_resampling(run, via)
        start = time.perf_counter()
        probs = on_classes(run.estimator.predict_proba(images), columns)
        rows[model] = _score(first[3], probs, first[0].canonical, time.perf_counter() - start)
        rows[model]["resample_via"] = resample_via_of(run)
        total = probs if total is None else total + probs
    assert first is not None and total is not None
    seconds = sum(r["seconds"] for r in rows.values())
    rows["ensemble"] = _score(first[3], total / len(models), first[0].canonical, seconds)
    return split_record("+".join(models), data, first[1], first[2], rows)


def table(record: dict[str, Any]) -> str:
    lines = ["| model | accuracy | macro-F1 | resampled via | s |", "|---|---|---|---|---|"]
    for name, row in record["result"].items():
        via = (row.get("resample_via") or "-") if name != "ensemble" else ""
        label = f"**average of the {len(record['result']) - 1}**" if name == "ensemble" else name
        scores = f"{row['accuracy']:.2%} | {row['macro_f1']:.3f}"
        lines.append(f"| {label} | {scores} | {via} | {row['seconds']} |")
    return "\n".join(lines)


def main() -> int:
    parser = models_parser(__doc__.splitlines()[0])
    parser.add_argument("--resample-via", type=int, default=None)
    args = parser.parse_args()
    torch_threads(args.threads)
    before = machine_note()
    result = measure(args.model, args.data, args.split, args.resample_via)
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "machine_before": before,
        "machine_after": machine_note(),
        **result,
    }
    report(record, table(result), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
