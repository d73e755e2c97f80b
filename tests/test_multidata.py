"""Several datasets in one training run: canonical labels, per-dataset validation, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_folders, make_yolo
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models import load_run
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network
from ferkit.weights import model_entry

runner = CliRunner()

TINY = {"width": 0.25}


def _cfg(**kw) -> TrainConfig:
    base = dict(
        model="fernet",
        model_kwargs=TINY,
        epochs=1,
        batch_size=8,
        lr=3e-3,
        balance="none",
        threads=1,
        seed=0,
        match_sharpness="off",
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    """A gray class-folder dataset (FER2013-like names, 12 px) and an RGB YOLO one with
    contempt and AffectNet's capitalised names (16 px)."""
    folders = make_folders(tmp_path / "fer", ("angry", "happy", "sad"), per_class=4, size=12)
    yolo = make_yolo(tmp_path / "aff", ("Anger", "Contempt", "Happy"), per_class=3, size=16)
    return folders, yolo


def test_two_datasets_train_on_canonical_union(two: tuple[Path, Path], tmp_path: Path) -> None:
    folders, yolo = two
    out = tmp_path / "run"
    summary = train_network([folders, yolo], out, _cfg(), progress=False)
    canonical = ["angry", "contempt", "happy", "sad"]  # union, canonical order
    assert summary["classes"] == canonical
    assert summary["image_size"] == 16 and summary["color"] == "rgb"  # largest side, rgb
    # train = both train splits, each label mapped by name: Anger+angry, Happy+happy
    assert summary["train_counts"] == {"angry": 7, "contempt": 3, "happy": 7, "sad": 4}
    assert summary["val_counts"] == {"angry": 7, "contempt": 3, "happy": 7, "sad": 4}
    assert set(summary["val_accuracy_by_dataset"]) == {"fer", "aff"}
    history = json.loads((out / "history.json").read_text())
    assert {"val_accuracy/fer", "val_accuracy/aff"} <= set(history[0])
    # the overall accuracy is the sample-weighted mean of the two datasets'
    by = summary["val_accuracy_by_dataset"]
    assert summary["val_accuracy"] == pytest.approx((12 * by["fer"] + 9 * by["aff"]) / 21, 1e-4)
    sources = {d["name"]: d for d in summary["datasets"]}
    assert sources["aff"]["data"] == str(yolo.resolve())
    assert sources["aff"]["val_split"] == "valid" and sources["fer"]["val_split"] == "val"
    assert sources["aff"]["train_counts"] == {"angry": 3, "contempt": 3, "happy": 3, "sad": 0}
    assert sources["fer"]["val_samples"] == 12
    run = load_run(out)
    assert run.canonical == canonical and run.image_size == 16
    card = json.loads((out / "model.json").read_text())
    assert card["trained_on"] == [str(folders.resolve()), str(yolo.resolve())]
    assert [d["name"] for d in card["datasets"]] == ["fer", "aff"]
    assert card["datasets"][1]["train_counts"]["contempt"] == 3
    # the listing `ferkit models` makes of such a run names both datasets
    provenance = model_entry({**card, "name": "general"}, out)["provenance"]
    assert [d["data"] for d in provenance["datasets"]] == card["trained_on"]
    assert provenance["datasets"][0]["train_counts"] == {
        "angry": 4,
        "contempt": 0,
        "happy": 4,
        "sad": 4,
    }
    assert provenance["date"] == summary["date"]


def test_cli_explicit_format_class_subset_and_hold_out(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    folders, yolo = two
    unsplit = make_folders(tmp_path / "flat", ("happy", "sad"), per_class=10, splits=None, size=8)
    out = tmp_path / "run"
    args = ["train", str(unsplit), str(yolo), str(folders), "--out", str(out), "--epochs", "1"]
    args += [
        "--batch-size",
        "8",
        "--balance",
        "none",
        "--arg",
        "width=0.25",
        "--threads",
        "1",
        "--match-sharpness",
        "off",
        "--group-by",  # the subject of flat/<class>/img_<i>.jpg is <i>: one held out
        r"img_(\d+)\.",
    ]
    result = runner.invoke(app, [*args, "--size", "12", "--color", "gray",
                                 "--classes", "sadness,happiness"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "per dataset" in result.output and "flat" in result.output
    summary = json.loads((out / "train.json").read_text())
    assert summary["classes"] == ["sad", "happy"]  # --classes order wins
    assert summary["image_size"] == 12 and summary["color"] == "gray"
    sources = {d["name"]: d for d in summary["datasets"]}
    assert "10% of" in sources["flat"]["val_split"]  # no val split: held out of train
    assert sources["flat"]["val_samples"] == 2 and sources["flat"]["train_samples"] == 18
    card = json.loads((out / "model.json").read_text())  # the card records the grouping too
    grouping = {d["name"]: d for d in card["datasets"]}["flat"]["grouping"]
    assert grouping["method"] == "group" and grouping["val_subjects"] == 1
    assert "held out by subject" in sources["flat"]["val_split"]
    assert sources["aff"]["train_counts"] == {"sad": 0, "happy": 3}
    bad = runner.invoke(app, ["train", str(folders), str(yolo), "--out", str(tmp_path / "bad"),
                              "--classes", "fear"])  # fmt: skip
    assert bad.exit_code != 0 and "not in any of the datasets" in bad.output


def test_resume_checks_every_dataset(two: tuple[Path, Path], tmp_path: Path) -> None:
    folders, yolo = two
    out = tmp_path / "run"
    train_network([folders, yolo], out, _cfg(epochs=1), progress=False)
    with pytest.raises(FerkitError, match="other data"):
        train_network([folders], out, _cfg(epochs=2), resume=True, progress=False)
    with pytest.raises(FerkitError, match="other data"):
        train_network([yolo, folders], out, _cfg(epochs=2), resume=True, progress=False)
    summary = train_network([folders, yolo], out, _cfg(epochs=2), resume=True, progress=False)
    assert summary["epochs_run"] == 2
    history = json.loads((out / "history.json").read_text())
    assert all("val_accuracy/aff" in row for row in history)
