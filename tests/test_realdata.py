"""Smoke tests on the real datasets in ../shared/data; each skips when the data is absent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferkit.cli import app

pytestmark = pytest.mark.realdata
# counted independently: for f in train/labels/*.txt; do head -c 2 $f; echo; done | sort | uniq -c
AFFECTNET_TRAIN = {
    "Anger": 2339,
    "Contempt": 1996,
    "Disgust": 2242,
    "Fear": 2021,
    "Happy": 2154,
    "Neutral": 1616,
    "Sad": 1914,
    "Surprise": 2819,
}
FER_TRAIN = {
    # the sharp copy rebuilt on 2026-12-02 (../shared/data/README.md): 27,635 of the 28,709
    "angry": 3844,
    "disgust": 389,
    "fear": 3921,
    "happy": 7080,
    "neutral": 4816,
    "sad": 4740,
    "surprise": 2845,
}


def _inspect(path: Path) -> dict:
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_affectnet_yolo(shared_data: Callable[[str], Path]) -> None:
    summary = _inspect(shared_data("affectnet_yolo"))
    assert summary["layout"] == "yolo" and summary["num_classes"] == 8
    assert summary["image_size"] == 96 and summary["color"] == "rgb"
    assert {k: v["count"] for k, v in summary["splits"].items()} == {"train": 17101, "valid": 5406}
    assert summary["splits"]["train"]["per_class"] == AFFECTNET_TRAIN
    (missing,) = [w for w in summary["warnings"] if w["kind"] == "missing-split"]
    assert missing["split"] == "test"
    # duplicates measured on 2026-12-03 (docs/BENCHMARKS.md, "Duplicates"): pHash <= 10 bits and
    # thumbnail correlation >= 0.92; every pair is a warning of its own
    dup = summary["duplicates"]
    assert (dup["exact_within"], dup["near_within"]) == (187, 1625)
    assert (dup["exact_across"], dup["near_across"]) == (83, 941)
    assert summary["problem_counts"] == {
        "duplicate-within-split": 187 + 1625,
        "duplicate-across-splits": 83 + 941,
        "missing-split": 1,
    }
    assert summary["skipped"] == []


def test_fer2013(shared_data: Callable[[str], Path]) -> None:
    summary = _inspect(shared_data("fer2013"))
    assert summary["layout"] == "folders" and summary["num_classes"] == 7
    assert summary["image_size"] == 48 and summary["color"] == "gray"
    assert {k: v["count"] for k, v in summary["splits"].items()} == {"train": 27635, "val": 3589}
    assert summary["splits"]["train"]["per_class"] == FER_TRAIN
    # the train split is sharp again (the earlier copy was low-passed and warned sharpness-gap);
    # what is left are FER2013's own duplicates (no exact copy across splits: train was rebuilt)
    assert {w["kind"] for w in summary["warnings"]} == {
        "duplicate-within-split",
        "duplicate-across-splits",
    }
    dup = summary["duplicates"]
    assert (dup["exact_within"], dup["near_within"]) == (1409, 2265)
    assert (dup["exact_across"], dup["near_across"]) == (0, 603)
    assert summary["skipped"] == []
    sharp = {k: v["median_sharpness"] for k, v in summary["splits"].items()}
    assert sharp["train"] > 0.3 and sharp["val"] > 0.5


def test_fer2013_sharp_train_split_leaves_sharpness_matching_off(
    shared_data: Callable[[str], Path],
) -> None:
    """With the sharp split, ``--match-sharpness auto`` (train's and svm's default) stays off."""
    from ferkit.data import load_dataset
    from ferkit.data.sharpness import matching_target

    ds = load_dataset(shared_data("fer2013"))
    target, info = matching_target("auto", ds.split("train").images, ds.split("val").images)
    assert target is None and info["matched"] is False
    assert info["train_median"] > 0.5 * info["val_median"]
