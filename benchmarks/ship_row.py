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
from datetime import date
from pathlib import Path

from ferkit.evaluation import evaluate_run
from ferkit.models.shipping import ship_run


def train_command(cfg: dict, data: str, name: str) -> str:
    """The ``ferkit train`` command line of a ``TrainConfig`` as saved in ``train.json``."""
    flags = [
        f"--model {cfg['model']}",
        f"--balance {cfg['balance']}",
        f"--augment {cfg['augment']}",
        f"--label-smoothing {cfg['label_smoothing']}",
        f"--optimizer {cfg['optimizer']}",
        f"--lr {cfg['lr']}",
        f"--weight-decay {cfg['weight_decay']}",
        f"--schedule {cfg['schedule']}",
        f"--batch-size {cfg['batch_size']}",
        f"--patience {cfg['patience']}",
        f"--epochs {cfg['epochs']}",
        f"--seed {cfg['seed']}",
        "--threads 1",
    ]
    if cfg.get("classes"):
        flags.append("--classes " + ",".join(cfg["classes"]))
    if cfg.get("tta", "none") != "none":
        flags.append(f"--tta {cfg['tta']}")
    if cfg.get("match_sharpness", "auto") != "auto":
        flags.append(f"--match-sharpness {cfg['match_sharpness']}")
    return f"ferkit train {data} " + " ".join(flags) + f" --out runs/{name}"


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
