"""The seed's SVM rows (raw, HOG, landmarks, embedding) on the real datasets, exact vs fast.

    .venv/bin/python benchmarks/svm_study.py --out runs/svm-study \\
        [--datasets affectnet_yolo fer2013] [--features hog raw landmarks embedding cnn] \\
        [--methods exact pca fast] [--search-size 2000] [--seed 0] [--network RUN]

``cnn`` features are the penultimate layer of the network in ``--network`` (a run folder or a
shipped model name), ferkit's replacement for the seed's ImageNet ResNet18 img2vec features.

For every (dataset, features, method): grid search over the seed's grid (5-fold CV on a
stratified ``--search-size`` subset of *train*, so the validation split stays untouched),
fit on train undersampled by 750 (the seed's balancing), evaluate on val/valid. Each row is
written to ``OUT/<dataset>-<features>-<method>/row.json`` as soon as it finishes, and rows
already there are skipped, so a killed study resumes where it stopped. ``OUT/results.md``
collects every finished row. Feature extraction is cached, so the second method reuses it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

from ferkit import io
from ferkit.evaluation import evaluate_run
from ferkit.training.svm import train_svm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NOTEBOOK_FIGURES = {
    "raw": "36.4%",
    "embedding": "43.3% (ResNet18 img2vec)",
    "hog": "50.7%",
    "landmarks": "-",
    "cnn": "43.3% (ResNet18 img2vec)",
}


def run_row(
    data: Path,
    features: str,
    method: str,
    out: Path,
    search_size: int,
    seed: int,
    network: str | None = None,
) -> dict:
    start = time.perf_counter()
    summary = train_svm(
        data,
        out,
        features=features,
        method=method,
        search=True,
        search_on="train",
        search_size=search_size,
        seed=seed,
        progress=True,
        feature_params={"run": network} if features == "cnn" else None,
    )
    report = evaluate_run(out, data, "val", out / "eval", seed=seed)
    return {
        "dataset": data.name,
        "features": features,
        "method": method,
        "val_split": report["split"],
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n_val": report["n"],
        "best_params": summary["search"]["best_params"],
        "search_cv_accuracy": round(summary["search"]["best_cv_accuracy"], 4),
        "search_seconds": summary["search"]["seconds"],
        "feature_seconds": summary["feature_seconds"],
        "fit_seconds": summary["fit_seconds"],
        "predict_seconds": report["predict_seconds"],
        "train_samples": summary["train_samples"],
        "model_mb": round((out / "model.skops").stat().st_size / 2**20, 1),
        "feature_report": summary.get("feature_report"),
        "total_seconds": round(time.perf_counter() - start, 1),
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def table(rows: list[dict]) -> str:
    head = (
        "| dataset | features | method | val accuracy | macro-F1 | best params | "
        "fit (s) | predict (s) | features (s, ~0 = cached) | search (s) | seed (test split) |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        seed_fig = NOTEBOOK_FIGURES[r["features"]] if r["dataset"] == "affectnet_yolo" else "-"
        # cnn rows name the network the embedding came from
        features = f"{r['features']} ({r['network']})" if r.get("network") else r["features"]
        lines.append(
            f"| {r['dataset']} ({r['val_split']}) | {features} | {r['method']} | "
            f"{r['accuracy']:.1%} | {r['macro_f1']:.3f} | {r['best_params']} | "
            f"{r['fit_seconds']} | {r['predict_seconds']} | {r['feature_seconds']} | "
            f"{r['search_seconds']} | {seed_fig} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/svm-study"))
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--datasets", nargs="+", default=["affectnet_yolo", "fer2013"])
    parser.add_argument("--features", nargs="+", default=["hog", "raw", "landmarks", "embedding"])
    parser.add_argument("--methods", nargs="+", default=["fast", "exact"])
    parser.add_argument("--search-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--network", default=None, help="for --features cnn: the network run folder to embed with"
    )
    args = parser.parse_args()
    for dataset in args.datasets:
        for features in args.features:
            for method in args.methods:
                run_dir = args.out / f"{dataset}-{features}-{method}"
                if (run_dir / "row.json").is_file():
                    print(f"done already: {run_dir}")
                    continue
                row = run_row(
                    args.data / dataset,
                    features,
                    method,
                    run_dir,
                    args.search_size,
                    args.seed,
                    args.network,
                )
                if features == "cnn":
                    row["network"] = args.network
                io.write_json(run_dir / "row.json", row)
                print(json.dumps(row), flush=True)
    rows = [json.loads(p.read_text()) for p in sorted(args.out.glob("*/row.json"))]
    io.write_text(args.out / "results.md", table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
