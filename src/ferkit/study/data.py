"""The study's working copy of the data: a subsample (``--quick``) and/or a held-out validation.

Every later stage calls a public ferkit API that takes a dataset *path* (``train_svm``,
``train_network``, ``evaluate_run``...). Writing the sample once as a class-folder dataset
(lossless PNG, pixel-identical) lets each stage use those APIs unchanged, makes each stage's
``ferkit ...`` command reproduce it exactly, and guarantees the SVMs and the networks see the
same images. When no sampling or hold-out is needed, the original dataset is used directly.

Consistency with ``ferkit train``: a dataset without a validation split gets the same 10%
hold-out of train (``ferkit.data.groups.hold_out``: by subject when ``group_by`` or the file
names name one, else stratified at random) that ``ferkit.training.deep`` would make.
``--quick`` then applies the notebook's undersampling (largest class - 750) before drawing a
stratified subset, as ``TrainConfig.max_train`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ferkit.data.balance import NOTEBOOK_MARGIN, stratified_subset
from ferkit.data.dataset import Dataset, Split, load_dataset, peek_format
from ferkit.data.groups import describe, hold_out, subjects
from ferkit.errors import SplitNotFoundError
from ferkit.study.config import MAX_AUTO_SIZE

DATASET_DIR = "dataset"
SUBJECT_IN_NAMES = r"[/\\]s(\d{5})__\d{6}\.png$"  # the subject in a working copy's train names


def study_size(data: Path, requested: int | None) -> tuple[int, int]:
    """(the data's own image size, the size the study works at): ``requested``, else the
    data's size capped at :data:`MAX_AUTO_SIZE`."""
    native, _ = peek_format(data)
    return native, requested or min(native, MAX_AUTO_SIZE)


def load_source(data: Path, image_size: int | None = None) -> Dataset:
    """The original dataset (at ``image_size`` when given); the study never reads its test split."""
    return load_dataset(data, image_size=image_size, progress=False)


def _val_or_hold_out(
    ds: Dataset, seed: int, group_by: str | None = None
) -> tuple[Split, Split, str, dict[str, Any] | None]:
    """(train, val, where val came from, how it was held out: None for the data's own)."""
    train = ds.usable_split("train")
    try:
        val = ds.usable_split("val")
        return train, val, val.name, None
    except SplitNotFoundError:
        kept, held, grouping = hold_out(train, seed, group_by)
        return kept, held, describe(grouping, train.name), grouping


def needs_copy(
    ds: Dataset, max_train: int | None, max_val: int | None, resized: bool = False
) -> bool:
    """True when the stages cannot use the original dataset as it is."""
    if resized:  # every stage and command must see the same, resized, pixels
        return True
    try:
        val = ds.usable_split("val")
    except SplitNotFoundError:
        return True
    train = ds.usable_split("train")
    return (max_train is not None and max_train < len(train)) or (
        max_val is not None and max_val < len(val)
    )


def _write_split(split: Split, folder: Path, groups: np.ndarray | None = None) -> None:
    """One PNG per sample in ``folder/<class>/``; class folders named as the dataset names them.

    With ``groups`` (a subject per sample) each name starts with its subject's number
    (``s00012__000345.png``), so the SVM search on the copy keeps each subject in one CV fold
    (``--group-by`` :data:`SUBJECT_IN_NAMES`)."""
    for cls in split.classes:
        (folder / cls).mkdir(parents=True, exist_ok=True)
    codes = np.unique(groups, return_inverse=True)[1] if groups is not None else None
    for i, (image, label) in enumerate(zip(split.images, split.labels, strict=True)):
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        name = f"{i:06d}.png" if codes is None else f"s{int(codes[i]):05d}__{i:06d}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(
            folder / split.classes[int(label)] / name, compress_level=1
        )


def train_duplicates(ds: Dataset, seed: int, group_by: str | None = None) -> dict[str, Any]:
    """How many of the study's train images (after any hold-out) duplicate, exactly or nearly,
    a validation or test image: the record ``--dedupe`` acts on
    (:func:`ferkit.data.duplicates.dedupe_train`), computed whether or not it is asked for."""
    from ferkit.data.duplicates import dedupe_train

    train, val, _, _ = _val_or_hold_out(ds, seed, group_by)
    return dedupe_train(ds, train, val)[1]


def write_working_copy(
    ds: Dataset,
    out: Path,
    max_train: int | None,
    max_val: int | None,
    seed: int,
    dedupe: bool = False,
    group_by: str | None = None,
) -> dict[str, Any]:
    """Write train/val as a class-folder dataset under ``out/dataset``; returns what was drawn
    (``grouping``: how a validation split was held out, None when the data has its own).
    ``dedupe`` first drops the train images that duplicate a validation or test image."""
    train, val, val_source, grouping = _val_or_hold_out(ds, seed, group_by)
    if dedupe:
        from ferkit.data.duplicates import dedupe_train

        train = dedupe_train(ds, train, val)[0]
    if max_train is not None and max_train < len(train):
        train = train.balanced(NOTEBOOK_MARGIN, seed)
        train = train.subset(stratified_subset(train.labels, max_train, seed=seed))
    if max_val is not None and max_val < len(val):
        val = val.subset(stratified_subset(val.labels, max_val, seed=seed))
    root = out / DATASET_DIR
    groups, _ = subjects(train.refs, group_by)
    _write_split(train, root / "train", groups)
    _write_split(val, root / "val")
    return {
        "svm_group_by": SUBJECT_IN_NAMES if groups is not None else None,
        "dataset": str(root),
        "copied": True,
        "val_source": val_source,
        "grouping": grouping,
        "train_counts": train.counts(),
        "val_counts": val.counts(),
    }
