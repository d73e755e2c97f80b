"""Exact SVC vs the fast paths on the seed's HOG features, fitted one after another in one run.

    .venv/bin/python benchmarks/svm_fast_vs_exact.py --out runs/svm-fast-vs-exact \\
        [--data ../shared/data/affectnet_yolo] [--methods exact pca:128 pca:192 fast] [--C 10]

Same features (HOG at 96x96, cached), same train split (undersampled by 750, seed 0), same
hyper-parameters (the grid search's best for exact HOG: rbf, C=10, gamma=scale), evaluated on the
validation split. Every method's fit and predict time is measured in this one process, so the
ratio compares like with like. A row is written to ``OUT/<method>.json`` as soon as it finishes
and skipped when present (resumable); ``OUT/results.md`` has the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

import numpy as np

from ferkit import io
from ferkit.data import load_dataset
from ferkit.data.balance import NOTEBOOK_MARGIN
from ferkit.features import create_extractor
from ferkit.models.svm import SVMClassifier

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def parse_method(text: str) -> tuple[str, dict]:
    """``pca:128`` -> ("pca", {"pca_components": 128}); ``exact`` / ``fast`` as they are."""
    name, _, dims = text.partition(":")
    return name, ({"pca_components": int(dims)} if dims else {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/svm-fast-vs-exact"))
    parser.add_argument("--data", type=Path, default=SHARED / "affectnet_yolo")
    parser.add_argument("--methods", nargs="+", default=["exact", "pca:128", "pca:192", "fast"])
    parser.add_argument("--C", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ds = load_dataset(args.data, progress=False)
    train = ds.split("train").balanced(NOTEBOOK_MARGIN, args.seed)
    val = ds.split("val")
    hog = create_extractor("hog", size=ds.image_size, progress=False)
    x_train, x_val = hog.fit_transform(train.images), hog.transform(val.images)
    rows = []
    for text in args.methods:
        path = args.out / f"{text.replace(':', '-')}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
            continue
        method, extra = parse_method(text)
        clf = SVMClassifier(method=method, kernel="rbf", C=args.C, gamma="scale", **extra)
        start = time.perf_counter()
        clf.fit(x_train, train.labels)
        fit = time.perf_counter() - start
        start = time.perf_counter()
        pred = clf.predict(x_val)
        predict = time.perf_counter() - start
        row = {
            "method": text,
            "accuracy": round(float(np.mean(pred == val.labels)), 4),
            "fit_seconds": round(fit, 1),
            "predict_seconds": round(predict, 1),
            "train_samples": len(train),
            "val_samples": len(val),
            "features": int(x_train.shape[1]),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "date": date.today().isoformat(),
        }
        io.write_json(path, row)
        print(json.dumps(row), flush=True)
        rows.append(row)
    exact = next((r for r in rows if r["method"] == "exact"), None)
    lines = [
        "| method | valid accuracy | fit (s) | fit vs exact | predict (s) | load avg |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{exact['fit_seconds'] / r['fit_seconds']:.1f}x less" if exact else "-"
        lines.append(
            f"| {r['method']} | {r['accuracy']:.1%} | {r['fit_seconds']} | {ratio} | "
            f"{r['predict_seconds']} | {r['load_average_1min']} |"
        )
    io.write_text(args.out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
