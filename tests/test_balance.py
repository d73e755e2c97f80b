from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_folders
from ferkit.data import (
    cap_per_class,
    class_weights,
    load_dataset,
    stratified_split,
    stratified_subset,
    undersample,
)

LABELS = np.repeat(np.arange(4), [1000, 400, 50, 900])


def test_undersample_is_the_seeds_soft_balance() -> None:
    idx = undersample(LABELS, margin=750, seed=3)
    counts = np.bincount(LABELS[idx])
    # cap = 1000 - 750 = 250: big classes cut to 250, the 50-sample class kept whole
    assert counts.tolist() == [250, 250, 50, 250]
    assert len(set(idx.tolist())) == len(idx)  # never oversampled


def test_undersample_is_seeded() -> None:
    a, b, c = (undersample(LABELS, 750, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_undersample_bad_margin() -> None:
    with pytest.raises(ValueError, match=r"margin must be in 0..999"):
        undersample(LABELS, margin=1000)
    with pytest.raises(ValueError, match="labels are empty"):
        undersample([], margin=1)


def test_cap_per_class_sorted() -> None:
    idx = cap_per_class(LABELS, 10, shuffle=False)
    assert np.all(np.diff(idx) > 0) and np.bincount(LABELS[idx]).tolist() == [10, 10, 10, 10]


def test_class_weights_match_balanced_formula() -> None:
    w = class_weights(LABELS, 5)
    n, k = len(LABELS), 4
    assert w[:4] == pytest.approx([n / (k * 1000), n / (k * 400), n / (k * 50), n / (k * 900)])
    assert w[4] == 0.0  # absent class
    with pytest.raises(ValueError, match=r"labels must be in 0..2"):
        class_weights(LABELS, 3)


def test_stratified_split_keeps_proportions() -> None:
    a, b = stratified_split(LABELS, test_size=0.2, seed=0)
    assert len(set(a) & set(b)) == 0 and len(a) + len(b) == len(LABELS)
    assert np.bincount(LABELS[b]).tolist() == [200, 80, 10, 180]


def test_stratified_subset() -> None:
    idx = stratified_subset(LABELS, 235, seed=1)
    assert len(idx) == 235
    assert np.bincount(LABELS[idx]).tolist() == pytest.approx([100, 40, 5, 90], abs=1)
    assert len(stratified_subset(LABELS, 10_000)) == len(LABELS)


def test_stratify_single_sample_class_is_clear() -> None:
    with pytest.raises(ValueError, match=r"class id\(s\) \[2\] have a single sample"):
        stratified_split([0, 0, 1, 1, 2], test_size=2)


def test_select_classes_relabels_in_given_order(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "f", classes=("angry", "happy", "sad"), per_class=3)
    train = load_dataset(root).split("train")
    happy_sad = train.select_classes(["happiness", "sadness"])
    assert happy_sad.classes == ["happy", "sad"]
    assert happy_sad.canonical == ["happy", "sad"]
    assert sorted(happy_sad.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(
        "/happy/" in r for r, y in zip(happy_sad.refs, happy_sad.labels, strict=True) if y == 0
    )
    reversed_ = train.select_classes(["sad", "happy"])
    assert reversed_.classes == ["sad", "happy"]
    with pytest.raises(ValueError, match=r"'contempt' .* is not in this dataset"):
        train.select_classes(["contempt"])
    with pytest.raises(ValueError, match="unknown emotion name"):
        train.select_classes(["boredom"])
    with pytest.raises(ValueError, match="same class twice"):
        train.select_classes(["happy", "happiness"])


def test_split_subset_with_balance(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "f", per_class=5)
    train = load_dataset(root).split("train")
    sub = train.subset(undersample(train.labels, margin=2, seed=0))
    assert list(sub.counts().values()) == [3, 3, 3]
    assert sub.images.shape[0] == 9 and len(sub.refs) == 9
