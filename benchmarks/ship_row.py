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
(the loop validates under bf16 autocast; evaluation runs fp32, as users will). A distilled
run's teachers appear in that command as the run folders under ``--out`` that hold their
weights, where they were given by a shipped name (which may name other weights later), and
the card lists them under ``teachers`` (name as given, that folder, weights checksum).

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


def taught_by(run_dir: Path, cfg: dict) -> list[dict[str, Any]]:
    """A distilled run's teachers as it recorded them (name, folder, weights checksum):
    ``train.json``'s ``distillation.teachers``, or for a run written before those were
    recorded there, the key of its saved soft targets (``teacher_targets.safetensors``)."""
    from safetensors import safe_open

    from ferkit.training.distill import TARGETS

    recorded = json.loads((run_dir / "train.json").read_text()).get("distillation", {})
    teachers = recorded.get("teachers") or []
    if teachers and all(isinstance(t, dict) for t in teachers):
        return teachers
    with safe_open(str(run_dir / TARGETS), framework="pt") as saved:
        key = json.loads((saved.metadata() or {})["key"])
    return [{"name": n, **t} for n, t in zip(cfg["teacher"], key["teachers"], strict=True)]


def lasting_teachers(run_dir: Path, cfg: dict, runs: Path) -> list[dict[str, Any]]:
    """A distilled run's teachers (none: an empty list), each with ``run``: the folder under
    ``runs`` that holds its weights, for a teacher given by a shipped name (a name can move
    on: the student may ship under its teacher's name; a run folder stays), else the name."""
    if not cfg.get("teacher"):
        return []
    folders = {}
    for card_path in sorted(runs.glob("*/model.json")):
        sha = json.loads(card_path.read_text()).get("weights_sha256")
        folders.setdefault(sha, f"{runs}/{card_path.parent.name}")
    return [
        {
            "name": t["name"],
            "run": t["name"] if "/" in t["name"] else folders.get(t["weights_sha256"], t["name"]),
            "weights_sha256": t["weights_sha256"],
        }
        for t in taught_by(run_dir, cfg)
    ]


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
    teachers = lasting_teachers(run_dir, cfg, args.out)
    if teachers:  # the command names each teacher by its lasting folder
        cfg = {**cfg, "teacher": [t["run"] for t in teachers]}
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
    print(ship_run(run_dir, args.name, command, metrics, resample_via=args.resample_via,
                   teachers=teachers or None))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
