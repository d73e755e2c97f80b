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
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "neutral": 4965,
    "sad": 4830,
    "surprise": 3171,
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
    (warning,) = summary["warnings"]
    assert warning["kind"] == "missing-split" and warning["split"] == "test"
    assert summary["skipped"] == []


def test_fer2013(shared_data: Callable[[str], Path]) -> None:
    summary = _inspect(shared_data("fer2013"))
    assert summary["layout"] == "folders" and summary["num_classes"] == 7
    assert summary["image_size"] == 48 and summary["color"] == "gray"
    assert {k: v["count"] for k, v in summary["splits"].items()} == {"train": 28709, "val": 3589}
    assert summary["splits"]["train"]["per_class"] == FER_TRAIN
    # every train image of this copy is low-passed (~3 px Gaussian), the val images are not
    assert summary["problem_counts"] == {"sharpness-gap": 1}
    (warning,) = summary["warnings"]
    assert warning["kind"] == "sharpness-gap" and warning["split"] == "train"
    sharp = {k: v["median_sharpness"] for k, v in summary["splits"].items()}
    assert sharp["train"] < 0.01 < 0.5 < sharp["val"]
