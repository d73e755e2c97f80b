"""Ship a finished ``deep_study.py`` row, or any run, as a model under ``src/ferkit/weights/``.

    .venv/bin/python benchmarks/ship_row.py ROW NAME DATA [DATA ...] [--out runs/deep-study]

``--out runs`` ships ``runs/ROW``, a run of ``ferkit train`` rather than of the study. A run
trained on several datasets gets several DATA, in its training order: it is evaluated on each
dataset's validation split, and its card's ``validation`` holds the figure over all of them
together (accuracy and macro-F1 of the pooled predictions) and each dataset's own
(``by_dataset``).

The card gets the ``ferkit train`` command that reproduces the row (rebuilt from the row's
own ``train.json``, so it cannot drift from what ran) and the ``ferkit evaluate`` figure of the
run on DATA's validation split, measured here rather than copied from the training loop
(the loop validates under bf16 autocast; evaluation runs fp32, as users will).

``--resample-via N`` ships the network with the weightless test-time resize round trip of
:mod:`ferkit.models.nets.resample` added (``ship_run(..., resample_via=N)``); the figure is
measured with it, and the card says the step was added after training.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

from ferkit.evaluation import classification_report_dict, evaluate_run
from ferkit.models import load_run
from ferkit.models.resampling import with_resampling
from ferkit.models.shipping import ship_run
from ferkit.training.config import TrainConfig

# shown at their default too: the recipe a reader of a card compares first
SHOWN = ("model", "balance", "augment", "label_smoothing", "optimizer", "lr", "weight_decay",
         "schedule", "batch_size", "patience", "epochs", "seed", "threads")  # fmt: skip


def train_command(cfg: dict, data: str | list[str], name: str, threads: int | None = 1) -> str:
    """The ``ferkit train`` command line of a ``TrainConfig`` as saved in ``train.json``
    (``TrainConfig.to_argv``: every setting off its default, network arguments included), on
    one thread as the study's timings were measured (``threads=None``: the run's own)."""
    known = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in cfg.items() if k in known}
    if threads is not None:
        settings["threads"] = threads
    config = TrainConfig(**settings)
    datas = [data] if isinstance(data, str) else list(data)
    argv = ["ferkit", "train", *datas, *config.to_argv(always=SHOWN), "--out", f"runs/{name}"]
    return shlex.join(argv)


def figures(report: Any, name: str, data: str) -> dict[str, Any]:
    """One evaluation's card record."""
    return {
        "dataset": Path(data).name,
        "split": report["split"],
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n": report["n"],
        "measured_by": f"ferkit evaluate {name} {data} --split val",
    }


def pooled(reports: list[Any], classes: list[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 of several evaluations' predictions taken together."""
    y_true = [y for r in reports for y in r["predictions"]["y_true"]]
    y_pred = [y for r in reports for y in r["predictions"]["y_pred"]]
    report = classification_report_dict(y_true, y_pred, classes)
    return {"accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4),
            "n": len(y_true)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row")
    parser.add_argument("name")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("runs/deep-study"))
    parser.add_argument("--resample-via", type=int, default=None)
    args = parser.parse_args()
    run_dir = args.out / args.row
    cfg = json.loads((run_dir / "train.json").read_text())["config"]
    study = args.out.name == "deep-study"
    command = train_command(cfg, args.data, args.name, threads=1 if study else None)
    run = load_run(run_dir, backend="torch")  # fp32, as users run it
    run = with_resampling(run, args.resample_via)  # None: the run as it is
    reports = [evaluate_run(run, data, "val", progress=False) for data in args.data]
    if len(args.data) == 1:
        metrics = figures(reports[0], args.name, args.data[0])
        del metrics["dataset"]
    else:
        each = [figures(r, args.name, d) for r, d in zip(reports, args.data, strict=True)]
        metrics = {
            "dataset": " + ".join(e["dataset"] for e in each),
            "split": " + ".join(e["split"] for e in each),
            **pooled(reports, list(run.canonical)),
            "by_dataset": each,
        }
    metrics["date"] = date.today().isoformat()
    if study:
        metrics["benchmark"] = (
            f".venv/bin/python benchmarks/deep_study.py --out {args.out} "
            f"--rows {args.row} --threads 1"
        )
    print(command)
    print(json.dumps(metrics, indent=2))
    print(ship_run(run_dir, args.name, command, metrics, resample_via=args.resample_via))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
