"""SVM hyper-parameter search over the seed's grid (kernel, C, gamma), for either solver.

The seed searched with 5-fold CV on a stratified ~2000-image subset of the validation split;
the caller picks the samples, this module only searches and ranks.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from ferkit.models.svm import SEED_GRID, SVMClassifier


def search_svm(
    features: np.ndarray,
    labels: np.ndarray,
    method: str = "exact",
    grid: list[dict[str, list[Any]]] | None = None,
    cv: int = 5,
    seed: int = 0,
    n_jobs: int = -1,
) -> dict[str, Any]:
    """GridSearchCV over the seed's grid; returns best params, score and the ranked table."""
    counts = np.bincount(labels)
    folds = min(cv, int(counts[counts > 0].min()))
    if folds < 2:
        raise ValueError("grid search needs at least 2 samples of every class")
    search = GridSearchCV(
        SVMClassifier(method=method, random_state=seed),
        grid or SEED_GRID,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        n_jobs=n_jobs,
    )
    start = time.perf_counter()
    search.fit(features, labels)
    res = search.cv_results_
    table = sorted(
        (
            {
                "params": {k: _plain(v) for k, v in p.items()},
                "mean_accuracy": float(m),
                "std": float(s),
            }
            for p, m, s in zip(
                res["params"], res["mean_test_score"], res["std_test_score"], strict=True
            )
        ),
        key=lambda r: -r["mean_accuracy"],
    )
    return {
        "best_params": table[0]["params"],
        "best_cv_accuracy": float(search.best_score_),
        "folds": folds,
        "samples": len(labels),
        "seconds": round(time.perf_counter() - start, 2),
        "table": table,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
