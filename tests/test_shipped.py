"""The models shipped inside the package load by name, stay small, and reproduce their card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ferkit.models import load_run
from ferkit.weights import MAX_SHIPPED_BYTES, WEIGHTS_DIR, shipped_cards, shipped_models


def test_every_shipped_model_loads_and_says_how_it_was_made() -> None:
    assert "affectnet-hog-svm" in shipped_models()
    for card in shipped_cards():
        run = load_run(card["name"])  # by name, not by path
        assert run.path == WEIGHTS_DIR / card["name"]
        assert card["command"].startswith("ferkit ") and "accuracy" in card["validation"]
        weights = run.path / card["weights"]
        assert weights.stat().st_size <= MAX_SHIPPED_BYTES


def test_affectnet_hog_svm_predicts_eight_classes() -> None:
    from skimage.data import astronaut
    from skimage.transform import resize

    run = load_run("affectnet-hog-svm")
    assert run.kind == "sklearn" and (run.image_size, run.color) == (96, "rgb")
    assert run.canonical == [
        "angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"
    ]  # fmt: skip
    face = resize(astronaut()[30:230, 150:330], (96, 96), preserve_range=True).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    pred = run.predict(np.concatenate([face[None], noise]))
    assert pred.shape == (4,) and ((pred >= 0) & (pred < 8)).all()


@pytest.mark.realdata
def test_affectnet_hog_svm_reproduces_its_validation_figure(
    shared_data: Callable[[str], Path],
) -> None:
    """The card's accuracy is what `ferkit evaluate affectnet-hog-svm DATA --split val` gives."""
    from ferkit.evaluation import evaluate_run

    run = load_run("affectnet-hog-svm")
    report = evaluate_run(run, shared_data("affectnet_yolo"), "val")
    assert report["n"] == run.card["validation"]["n"] == 5406
    assert round(report["accuracy"], 4) == run.card["validation"]["accuracy"]
