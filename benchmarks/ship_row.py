"""Ship a finished ``deep_study.py`` row as a named model under ``src/ferkit/weights/``.

    .venv/bin/python benchmarks/ship_row.py ROW NAME DATA [--out runs/deep-study]

The card gets the ``ferkit train`` command that reproduces the row (rebuilt from the row's
own ``train.json``, so it cannot drift from what ran) and the ``ferkit evaluate`` figure of the
run on DATA's validation split, measured here rather than copied from the training loop
(the loop validates under bf16 autocast; evaluation runs fp32, as users will).
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import fields
from datetime import date
from pathlib import Path

from ferkit.evaluation import evaluate_run
from ferkit.models.shipping import ship_run
from ferkit.training.config import TrainConfig

# shown at their default too: the recipe a reader of a card compares first
SHOWN = ("model", "balance", "augment", "label_smoothing", "optimizer", "lr", "weight_decay",
         "schedule", "batch_size", "patience", "epochs", "seed", "threads")  # fmt: skip


def train_command(cfg: dict, data: str, name: str) -> str:
    """The ``ferkit train`` command line of a ``TrainConfig`` as saved in ``train.json``
    (``TrainConfig.to_argv``: every setting off its default, network arguments included), on
    one thread as the shipped timings were measured."""
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{**{k: v for k, v in cfg.items() if k in known}, "threads": 1})
    argv = ["ferkit", "train", data, *config.to_argv(always=SHOWN), "--out", f"runs/{name}"]
    return shlex.join(argv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row")
    parser.add_argument("name")
    parser.add_argument("data")
    parser.add_argument("--out", type=Path, default=Path("runs/deep-study"))
    args = parser.parse_args()
    run_dir = args.out / args.row
    cfg = json.loads((run_dir / "train.json").read_text())["config"]
    command = train_command(cfg, args.data, args.name)
    report = evaluate_run(run_dir, args.data, "val", progress=False)
    metrics = {
        "split": report["split"],
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n": report["n"],
        "date": date.today().isoformat(),
        "measured_by": f"ferkit evaluate {args.name} {args.data} --split val",
        "benchmark": f".venv/bin/python benchmarks/deep_study.py --out {args.out} "
        f"--rows {args.row} --threads 1",
    }
    print(command)
    print(json.dumps(metrics, indent=2))
    print(ship_run(run_dir, args.name, command, metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
