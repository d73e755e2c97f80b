"""The network rows of docs/BENCHMARKS.md: the seed's CNNs, ferkit's fernet and happy-vs-sad.

    .venv/bin/python benchmarks/deep_study.py --out runs/deep-study [--rows aff-fernet ...] \\
        [--epochs N] [--data ../shared/data]

Each row is an ordinary ``train_network`` run in ``OUT/<row>/`` (so ``ferkit evaluate`` works
on it) and is resumed when the folder already holds a checkpoint: kill the script at any time
and start it again. ``--epochs`` caps every row's epoch budget (the CPU budget of a session);
a row's result records how many epochs it actually ran. ``OUT/results.md`` collects the rows:
best validation accuracy (val/valid split, never test), epochs, training seconds, img/s.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

from ferkit import io
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network
from ferkit.training.recipes import FERKIT_RECIPE

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# ferkit's recipe (ferkit.training.recipes, also `ferkit study --recipe ferkit`): no
# undersampling (accuracy on the natural validation split), strong augmentation, label
# smoothing, AdamW with cosine decay over a fixed budget. Flip averaging is set per row.
OWN = {k: v for k, v in FERKIT_RECIPE.items() if k != "tta"}
# The notebook's recipe for its CNNs: undersampled train, its augmentation, Adam 1e-3,
# ReduceLROnPlateau(0.1, 3), early stopping patience 3 (as in the notebook), batch 32.
NOTEBOOK = dict(
    balance="undersample",
    augment="notebook",
    optimizer="adam",
    lr=1e-3,
    schedule="plateau",
    batch_size=32,
    patience=3,
)

ROWS: dict[str, tuple[str, dict]] = {
    "fer-fernet": ("fer2013", dict(model="fernet", epochs=40, **OWN)),
    # fer-fernet with flip test-time augmentation (validation included)
    "fer-fernet-flip": ("fer2013", dict(model="fernet", epochs=40, tta="flip", **OWN)),
    "aff-fernet": ("affectnet_yolo", dict(model="fernet", epochs=40, **OWN)),
    # the same recipe, half as many epochs again and flip test-time augmentation (validation
    # included, so the best epoch is picked on what the model will score)
    "aff-fernet-60": ("affectnet_yolo", dict(model="fernet", epochs=60, tta="flip", **OWN)),
    "aff-happy-sad": (
        "affectnet_yolo",
        dict(
            model="fernet",
            epochs=10,
            classes=["happiness", "sadness"],
            init="{out}/aff-fernet",
            **{**OWN, "lr": 1e-3},
        ),
    ),
    "aff-convnet": ("affectnet_yolo", dict(model="convnet", epochs=50, **NOTEBOOK)),
    "aff-cnn10": ("affectnet_yolo", dict(model="cnn10", epochs=50, **NOTEBOOK)),
    "aff-resnet50": ("affectnet_yolo", dict(model="resnet50", epochs=50, **NOTEBOOK)),
}


def run_row(
    name: str, data: Path, out: Path, max_epochs: int | None, seed: int, threads: int | None
) -> dict:
    dataset, options = ROWS[name]
    options = dict(options)
    if isinstance(options.get("init"), str):
        options["init"] = options["init"].format(out=out)
    cfg = TrainConfig(seed=seed, threads=threads, **options)
    if max_epochs is not None:
        cfg = replace(cfg, epochs=min(cfg.epochs, max_epochs))
    run_dir = out / name
    resume = (run_dir / "checkpoint.pt").is_file()
    summary = train_network(data / dataset, run_dir, cfg, resume=resume, progress=True)
    history = json.loads((run_dir / "history.json").read_text())
    return {
        "row": name,
        "dataset": dataset,
        "model": cfg.model,
        "classes": summary["classes"],
        "val_split": summary["val_split"],
        "val_accuracy": round(summary["val_accuracy"], 4),
        "best_epoch": summary["best_epoch"],
        "epochs_run": summary["epochs_run"],
        "epoch_budget": cfg.epochs,
        "stopped_early": summary["stopped_early"],
        "train_seconds": summary["train_seconds_total"],
        "images_per_second": round(sum(h["images_per_second"] for h in history) / len(history), 1),
        "parameters": summary["parameters"],
        "config": summary["config"],
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| row | model | data (split) | classes | val accuracy | best epoch / run / budget | "
        "train s | img/s | params |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['model']} | {r['dataset']} ({r['val_split']}) | "
            f"{len(r['classes'])} | {r['val_accuracy']:.1%} | "
            f"{r['best_epoch']} / {r['epochs_run']} / {r['epoch_budget']} | "
            f"{r['train_seconds']} | {r['images_per_second']} | {r['parameters']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/deep-study"))
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--epochs", type=int, default=None, help="cap on every row's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    args = parser.parse_args()
    for name in args.rows:
        row = run_row(name, args.data, args.out, args.epochs, args.seed, args.threads)
        io.write_json(args.out / name / "row.json", row)
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
    rows = [json.loads(p.read_text()) for p in sorted(args.out.glob("*/row.json"))]
    io.write_text(args.out / "results.md", table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
