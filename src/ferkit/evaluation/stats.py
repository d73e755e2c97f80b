"""Confidence intervals and the paired test behind every accuracy ferkit reports.

An accuracy on a few hundred images moves by several points from one sample to another; two
runs 1 point apart on the same split are often not different at all. So:

- accuracy: the **Wilson score interval** (95%), exact enough at any n and never outside [0, 1]
  (the normal "p +- 1.96 sd" interval is not, and is too narrow near 0% and 100%);
- macro-F1: a **bootstrap percentile interval** (95%, :data:`RESAMPLES` resamples of the scored
  items with replacement, seed :data:`BOOTSTRAP_SEED`, so a report is reproducible): macro-F1 has
  no closed-form interval;
- two runs on the same items: **McNemar's test** on the items exactly one of them gets right
  (exact two-sided binomial when there are fewer than :data:`EXACT_BELOW` of them, else
  chi-square with continuity correction). "A beats B" is only said when p < :data:`ALPHA`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

LEVEL = 0.95
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
RESAMPLES = 1000
BOOTSTRAP_SEED = 0
EXACT_BELOW = 25  # discordant pairs: under this, McNemar's exact binomial form
ALPHA = 0.05
METHODS = {
    "level": LEVEL,
    "accuracy": "Wilson score interval",
    "macro_f1": f"bootstrap percentile interval ({RESAMPLES} resamples, seed {BOOTSTRAP_SEED})",
}


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct`` successes in ``n`` trials (95% by default)."""
    if n <= 0:
        raise ValueError("an interval needs at least one item")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _macro_f1_batch(t: np.ndarray, p: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 over ``labels`` of each row of (resamples, n) label arrays, as scikit-learn's
    ``f1_score(average="macro", labels=labels, zero_division=0)`` computes it."""
    r = t.shape[0]
    flat = (np.arange(r)[:, None] * k + t) * k + p
    cm = np.bincount(flat.ravel(), minlength=r * k * k).reshape(r, k, k)
    tp = cm[:, labels, labels].astype(np.float64)
    pred = cm.sum(axis=1)[:, labels]
    true = cm.sum(axis=2)[:, labels]
    denom = pred + true
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=1)


def bootstrap_macro_f1(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """The bootstrap percentile interval of macro-F1 over the classes present in ``y_true``
    (the classes the point estimate averages over, fixed across resamples)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.size == 0:
        raise ValueError("an interval needs at least one item")
    k = int(max(t.max(), p.max())) + 1
    labels = np.unique(t)
    rng = np.random.default_rng(seed)
    scores = []
    chunk = max(1, 2_000_000 // t.size)  # bounded memory on a 30k-image split
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, t.size, size=(min(chunk, resamples - start), t.size))
        scores.append(_macro_f1_batch(t[idx], p[idx], labels, k))
    values = np.concatenate(scores)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def intervals(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """``accuracy_ci`` and ``macro_f1_ci`` ([low, high], 95%) and how they were computed."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    acc = wilson_interval(int((t == p).sum()), int(t.size))
    f1 = bootstrap_macro_f1(t, p)
    return {
        "accuracy_ci": [round(acc[0], 4), round(acc[1], 4)],
        "macro_f1_ci": [round(f1[0], 4), round(f1[1], 4)],
        "intervals": dict(METHODS),
    }


def items_digest(refs: Sequence[str], y_true: Sequence[int] | np.ndarray) -> str:
    """A fingerprint of the scored items (their references, in order, and true labels): two
    evaluations can be paired only when theirs agree."""
    h = hashlib.sha256()
    for ref, label in zip(refs, np.asarray(y_true).tolist(), strict=True):
        h.update(f"{ref}\t{label}\n".encode())
    return h.hexdigest()[:16]


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test of two classifiers on the same items (booleans: item scored right).

    ``a_only``/``b_only``: items only A / only B gets right. Exact two-sided binomial test
    when ``a_only + b_only`` < :data:`EXACT_BELOW`, else chi-square (1 dof) with continuity
    correction. ``p_value`` 1.0 when the runs never disagree.
    """
    from scipy import stats  # scipy: a scikit-learn dependency

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("McNemar's test needs the same items for both runs")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "method": "none (no disagreement)", "p_value": 1.0}
    if n < EXACT_BELOW:
        p = stats.binomtest(min(a_only, b_only), n, 0.5).pvalue
        return {"a_only": a_only, "b_only": b_only, "method": "exact binomial",
                "p_value": float(min(1.0, p))}  # fmt: skip
    statistic = (abs(a_only - b_only) - 1) ** 2 / n
    p = float(stats.chi2.sf(statistic, 1))
    return {"a_only": a_only, "b_only": b_only, "method": "chi-square, continuity corrected",
            "statistic": round(statistic, 4), "p_value": p}  # fmt: skip


def verdict(name_a: str, name_b: str, test: dict[str, Any]) -> str:
    """ "A beats B" only when McNemar's p < :data:`ALPHA`; else no significant difference."""
    p = test["p_value"]
    if p < ALPHA:
        better, worse = (name_a, name_b) if test["a_only"] > test["b_only"] else (name_b, name_a)
        return f"{better} beats {worse} (McNemar p = {p:.3g})"
    return f"{name_a} vs {name_b}: no significant difference (McNemar p = {p:.3g})"
