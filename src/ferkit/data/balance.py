"""Class balancing and subsets on label arrays: what training and grid search draw from.

All functions take labels and return indices (or weights), so they compose with any array
(pixels, features) and with :meth:`ferkit.data.Split.subset`. Every random choice takes a seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferkit.errors import FerkitError, OptionError
from ferkit.options import NOTEBOOK_MARGIN


def _as_labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.size == 0:
        raise FerkitError("labels are empty: nothing to balance or split")
    return y.astype(np.int64, copy=False)


def undersample(
    labels: Sequence[int] | np.ndarray,
    margin: int = NOTEBOOK_MARGIN,
    seed: int = 0,
    shuffle: bool = True,
) -> np.ndarray:
    """Indices that cap every class at (largest class - ``margin``), drawn without replacement.

    This is the notebook's soft balancing: majority classes are cut down, minority classes are kept
    whole and never oversampled (duplicates invite overfitting). Use :func:`cap_per_class` for
    an explicit cap.
    """
    y = _as_labels(labels)
    largest = int(np.bincount(y).max())
    if margin < 0 or margin >= largest:
        raise OptionError(f"margin must be in 0..{largest - 1} (largest class has {largest})")
    return cap_per_class(y, largest - margin, seed=seed, shuffle=shuffle)


def cap_per_class(
    labels: Sequence[int] | np.ndarray, cap: int, seed: int = 0, shuffle: bool = True
) -> np.ndarray:
    """Indices keeping at most ``cap`` samples of each class (random, seeded)."""
    y = _as_labels(labels)
    if cap < 1:
        raise OptionError(f"cap must be at least 1, got {cap}")
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        keep.append(rng.choice(idx, cap, replace=False) if len(idx) > cap else idx)
    out = np.concatenate(keep)
    return rng.permutation(out) if shuffle else np.sort(out)


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class loss weights n / (k * count_c) (scikit-learn's "balanced"); absent classes get 0.

    Giving an absent class weight 0 (instead of failing) lets a subset of a dataset train with
    the full head.
    """
    y = _as_labels(labels)
    if y.max() >= num_classes or y.min() < 0:
        raise ValueError(f"labels must be in 0..{num_classes - 1}")
    present = np.unique(y)
    weights = np.zeros(num_classes, dtype=np.float64)
    from sklearn.utils.class_weight import compute_class_weight  # sklearn: ~1 s to import

    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return weights


def _check_stratifiable(y: np.ndarray, held: int) -> None:
    counts = np.bincount(y)
    thin = [int(c) for c in np.flatnonzero((counts > 0) & (counts < 2))]
    if thin:
        raise FerkitError(f"cannot stratify: class id(s) {thin} have a single sample")
    k = int((counts > 0).sum())
    if held < k:
        raise FerkitError(f"cannot stratify {held} held-out samples over {k} classes")
    if len(y) - held < k:  # scikit-learn's own ValueError, said before it is raised
        raise FerkitError(
            f"cannot stratify: {held} of {len(y)} samples held out leaves {len(y) - held}, "
            f"fewer than the {k} classes"
        )


def stratified_split(
    labels: Sequence[int] | np.ndarray, test_size: float | int = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) with the class proportions of ``labels`` in both."""
    y = _as_labels(labels)
    held = round(test_size * len(y)) if isinstance(test_size, float) else int(test_size)
    _check_stratifiable(y, held)
    idx = np.arange(len(y))
    from sklearn.model_selection import train_test_split  # sklearn: ~1 s to import

    a, b = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    return np.asarray(a), np.asarray(b)


def stratified_subset(labels: Sequence[int] | np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices with the class proportions of ``labels`` (the notebook's ~2000-image
    grid-search subset of the validation split); all indices when ``n`` covers them."""
    y = _as_labels(labels)
    if n >= len(y):
        return np.arange(len(y))
    return stratified_split(y, test_size=n, seed=seed)[1]
