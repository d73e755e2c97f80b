"""The models shipped inside the package load by name, stay small, and reproduce their card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ferkit.models import load_run
from ferkit.weights import MAX_SHIPPED_BYTES, WEIGHTS_DIR, shipped_cards, shipped_models


def test_every_shipped_model_loads_and_says_how_it_was_made() -> None:
    assert set(NETWORKS) | {"affectnet-hog-svm"} <= set(shipped_models())
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


# name -> (input side, colour, canonical classes, the dataset it was trained on)
NETWORKS = {
    "fer2013": (48, "gray", ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]),
    "affectnet": (
        96,
        "rgb",
        ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
    ),
    # fine-tuned from `affectnet` on its happy and sad faces
    "affectnet-happy-sad": (96, "rgb", ["happy", "sad"]),
    # fine-tuned from `affectnet` on affectnet_yolo and fer2013 together
    "general": (
        96,
        "rgb",
        ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_shipped_network_is_safetensors_and_calls_the_astronaut_happy(
    name: str, astronaut: np.ndarray
) -> None:
    """The shipped networks are safetensors runs of the documented input, and on a real
    smiling face (a square around the astronaut's face, cut by hand rather than by the face
    pipeline) they answer happy with most of the probability."""
    from ferkit.inference.predictor import whole_image_crop

    run = load_run(name, backend="torch")
    size, color, canonical = NETWORKS[name]
    assert run.kind == "torch" and run.card["weights"] == "model.safetensors"
    assert (run.image_size, run.color, run.canonical) == (size, color, canonical)
    assert run.card["command"].startswith("ferkit train ")
    crop = whole_image_crop(astronaut[40:200, 155:315], size, color)
    probabilities = run.estimator.predict_proba(crop[None])
    assert probabilities.shape == (1, len(canonical))
    assert np.isclose(probabilities.sum(), 1.0, atol=1e-4)
    assert canonical[int(probabilities.argmax())] == "happy"
    assert probabilities[0, canonical.index("happy")] > 0.5


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "dataset"),
    [
        ("fer2013", "fer2013"),
        ("affectnet", "affectnet_yolo"),
        ("affectnet-happy-sad", "affectnet_yolo"),
    ],
)
def test_shipped_network_reproduces_its_validation_figure(
    name: str, dataset: str, shared_data: Callable[[str], Path]
) -> None:
    """The card's accuracy is what `ferkit evaluate NAME DATA --split val` gives (torch backend)."""
    from ferkit.evaluation import evaluate_run

    run = load_run(name, backend="torch")
    report = evaluate_run(run, shared_data(dataset), "val")
    assert report["n"] == run.card["validation"]["n"]
    assert round(report["accuracy"], 4) == run.card["validation"]["accuracy"]


@pytest.mark.realdata
def test_the_general_model_reproduces_each_datasets_figure(
    shared_data: Callable[[str], Path],
) -> None:
    """`general` was validated on both datasets: each `ferkit evaluate general DATA --split
    val` gives its card's figure, and their predictions pooled give the headline figure."""
    from ferkit.evaluation import classification_report_dict, evaluate_run

    run = load_run("general", backend="torch")
    record = run.card["validation"]
    reports = []
    for entry in record["by_dataset"]:
        report = evaluate_run(run, shared_data(entry["dataset"]), "val", progress=False)
        assert (report["split"], report["n"]) == (entry["split"], entry["n"])
        assert round(report["accuracy"], 4) == entry["accuracy"]
        reports.append(report)
    y_true = [y for r in reports for y in r["predictions"]["y_true"]]
    y_pred = [y for r in reports for y in r["predictions"]["y_pred"]]
    pooled = classification_report_dict(y_true, y_pred, list(run.canonical))
    assert round(pooled["accuracy"], 4) == record["accuracy"] and len(y_true) == record["n"]


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


def test_evaluate_cli_scores_photos_by_their_faces(tmp_path: Path) -> None:
    """A dataset of photos (not face crops): `--faces detect` scores the astronaut's face,
    which the shipped FER2013 network calls happy, and names the photo that has no face."""
    import json

    from PIL import Image
    from skimage.data import astronaut
    from typer.testing import CliRunner

    from ferkit.cli import app

    (tmp_path / "photos" / "happy").mkdir(parents=True)
    (tmp_path / "photos" / "sad").mkdir(parents=True)
    Image.fromarray(astronaut()).save(tmp_path / "photos" / "happy" / "astronaut.png")
    noise = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "photos" / "sad" / "wall.png")
    metrics = tmp_path / "m.json"
    args = ["evaluate", "fer2013", str(tmp_path / "photos"), "--faces", "detect"]
    result = CliRunner().invoke(app, [*args, "--json", str(metrics)])
    assert result.exit_code == 0, result.output
    report = json.loads(metrics.read_text())
    assert report["split"] == "all" and report["n"] == 1 and report["accuracy"] == 1.0
    assert "1 image(s) not scored (no face to cut):" in result.stderr
    assert "wall.png: no face found" in result.stderr
    table = CliRunner().invoke(
        app, ["compare", "fer2013", "affectnet", "--data", str(tmp_path / "photos"),
              "--faces", "detect", "--out", str(tmp_path / "cmp")],
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    # fer2013 resamples its inputs as its train images were: the column shows it
    assert table.stdout.splitlines()[0].endswith("| no_face | resample_via |")
    import csv

    with (tmp_path / "cmp" / "comparison.csv").open() as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert [row["no_face"] for row in rows.values()] == ["1", "1"]
    assert (rows["fer2013"]["resample_via"], rows["affectnet"]["resample_via"]) == ("224", "")
