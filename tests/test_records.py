"""Typed records: the model card (versioned, old cards still load) and the results the
commands return, whose ``to_dict()`` is exactly what their JSON files and ``--json`` hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import make_folders, tiny_card
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models import Run, load_run
from ferkit.models.card import CARD_VERSION, ModelCard, load_card, shipped_cards
from ferkit.models.nets import create_model
from ferkit.models.torch_run import save_torch_run
from ferkit.records import (
    ClassScore,
    EvalReport,
    ExplainResult,
    StudyRecord,
    SVMSummary,
    TrainSummary,
    TuneResult,
)
from ferkit.weights import WEIGHTS_DIR, shipped_models

runner = CliRunner()
CLASSES = ["angry", "happy", "sad"]


@pytest.fixture
def net_run(tmp_path: Path) -> Path:
    """A tiny network run as training writes it."""
    net = create_model("fernet", 3, 3, 16, width=0.25)
    return save_torch_run(tmp_path / "net", net, {**tiny_card(CLASSES, 16), "name": "net"})


def _card(run: Path) -> dict[str, Any]:
    return json.loads((run / "model.json").read_text())


# -- the model card --------------------------------------------------------------------------
def test_new_cards_record_their_version_and_round_trip(net_run: Path) -> None:
    raw = _card(net_run)
    assert raw["card_version"] == CARD_VERSION and list(raw)[:2] == ["format", "card_version"]
    card = ModelCard.from_dict(raw, net_run / "model.json")
    assert card.to_dict() == raw and list(card.to_dict()) == list(raw)  # same keys, same order
    assert card.kind == "torch" and card.classes == CLASSES and card.image_size == 16
    assert card.architecture is not None and card.architecture["name"] == "fernet"
    assert card["color"] == "rgb" and "onnx" not in card and card.get("onnx") is None


def test_unknown_keys_are_kept_and_written_back(net_run: Path) -> None:
    raw = {**_card(net_run), "notes": {"by": "a later tool"}}
    card = ModelCard.from_dict(raw)
    assert card.extra == {"notes": {"by": "a later tool"}} and card.to_dict() == raw


def test_a_card_without_a_version_loads_as_version_1(net_run: Path) -> None:
    raw = _card(net_run)
    del raw["card_version"]
    (net_run / "model.json").write_text(json.dumps(raw))
    run = load_run(net_run, backend="torch")
    assert isinstance(run.card, ModelCard) and run.card.card_version is None
    assert run.card.version == 1 and run.card.to_dict() == raw  # rewritten as it was


@pytest.mark.parametrize("name", shipped_models())
def test_every_shipped_card_loads_and_writes_back_what_it_holds(name: str) -> None:
    raw = json.loads((WEIGHTS_DIR / name / "model.json").read_text())
    card = load_card(WEIGHTS_DIR / name)
    assert card.to_dict() == raw and card.version == 1
    assert card.name == name and card.kind in ("torch", "sklearn")
    assert {c.name for c in shipped_cards()} == set(shipped_models())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("card_version", 99, "card_version 99 is not one this ferkit reads.*newer ferkit"),
        ("card_version", "1", "card_version must be an integer"),
        ("image_size", True, "image_size must be an integer"),
        ("trained_on", 3, "trained_on must be a string or a list of strings"),
        ("training", [1], "training must be an object or null"),
        ("val_accuracy", "0.9", "val_accuracy must be a number or null"),
    ],
)
def test_a_bad_or_future_card_names_the_file_and_the_field(
    net_run: Path, key: str, value: Any, message: str
) -> None:
    (net_run / "model.json").write_text(json.dumps({**_card(net_run), key: value}))
    with pytest.raises(FerkitError, match=rf"{net_run}/model\.json: {message}"):
        load_run(net_run, backend="torch")
    result = runner.invoke(app, ["trust", str(net_run)])
    assert result.exit_code != 0 and "model.json" in result.output


def test_a_run_built_with_a_plain_dict_gets_a_complete_card(tmp_path: Path) -> None:
    run = Run(tmp_path, "sklearn", CLASSES, CLASSES, 24, "gray", object(), {"name": "r"})
    assert isinstance(run.card, ModelCard) and run.card.image_size == 24 and run.name == "r"


# -- results ---------------------------------------------------------------------------------
@pytest.fixture
def svm_run(tmp_path: Path) -> tuple[Path, Path, SVMSummary]:
    from ferkit.training.svm import train_svm

    data = make_folders(tmp_path / "d", per_class=6, size=24)
    out = tmp_path / "svm"
    summary = train_svm(
        data, out, features="raw", method="fast", image_size=24, color="gray", progress=False,
        search=False, params={"kernel": "linear"},
    )  # fmt: skip
    return data, out, summary


def test_svm_summary_and_eval_report_are_their_files(
    svm_run: tuple[Path, Path, SVMSummary], tmp_path: Path
) -> None:
    from ferkit.evaluation.evaluate import evaluate_run

    data, out, summary = svm_run
    assert isinstance(summary, SVMSummary)
    assert summary.to_dict() == json.loads((out / "train.json").read_text())
    assert summary.method == "fast" and summary.train_samples == summary["train_samples"]
    assert summary.validation is not None and summary.validation.n == summary["validation"]["n"]
    assert _card(out)["card_version"] == CARD_VERSION
    report = evaluate_run(out, data, "val", tmp_path / "eval", progress=False)
    assert isinstance(report, EvalReport) and report.same_classes is True
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report.to_dict() == written and "same_classes" not in written
    assert report.n == written["n"] and report.accuracy == report["accuracy"]
    first = next(iter(report.per_class))
    assert report.per_class[first].support == written["per_class"][first]["support"]
    json_out = tmp_path / "m.json"
    result = runner.invoke(
        app, ["evaluate", str(out), str(data), "--split", "val", "--json", str(json_out)]
    )
    assert result.exit_code == 0, result.output
    assert "class mapping" not in result.output  # same classes: no mapping printed
    cli = json.loads(json_out.read_text())
    assert cli.keys() == written.keys() - {"figures"}  # no --out: no figures
    assert cli["accuracy"] == written["accuracy"]


def test_a_results_file_with_a_wrong_type_names_it(tmp_path: Path) -> None:
    with pytest.raises(FerkitError, match=r"explain\.json: class must be a string"):
        ClassScore.from_dict({"index": 0, "class": 3}, tmp_path / "explain.json")
    with pytest.raises(FerkitError, match=r"metrics\.json: accuracy must be a number"):
        EvalReport.from_dict({"n": 1, "accuracy": "high", "macro_f1": 1.0, "per_class": {}},
                             tmp_path / "metrics.json")  # fmt: skip
    with pytest.raises(FerkitError, match=r"study\.json: the study record lacks"):
        StudyRecord.from_dict({"dataset": "d"}, tmp_path / "study.json")


def test_train_summary_is_train_json(tmp_path: Path) -> None:
    from ferkit.training.config import TrainConfig
    from ferkit.training.deep import train_network

    data = make_folders(tmp_path / "data", per_class=8, size=16)
    cfg = TrainConfig(model="fernet", model_kwargs={"width": 0.25}, epochs=1, batch_size=8,
                      augment="notebook", balance="none", threads=1)  # fmt: skip
    summary = train_network(data, tmp_path / "run", cfg, progress=False)
    assert isinstance(summary, TrainSummary)
    assert summary.to_dict() == json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary.epochs_run == 1 and summary.best_epoch == 1
    card = load_card(tmp_path / "run")
    assert card.card_version == CARD_VERSION and card.epoch == 1 and card.datasets
    again = train_network(data, tmp_path / "run", cfg, resume=True, progress=False)
    assert isinstance(again, TrainSummary) and again.to_dict() == summary.to_dict()


def test_explain_result_is_explain_json_and_the_cli_prints_it(
    net_run: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from ferkit.evaluation.explain import explain_image

    image = tmp_path / "face.png"
    Image.new("RGB", (16, 16), (120, 90, 60)).save(image)
    result = explain_image(net_run, image, tmp_path / "x", crop="whole")
    assert isinstance(result, ExplainResult)
    written = json.loads((tmp_path / "x" / "explain.json").read_text())
    assert result.to_dict() == written and result.layer == written["layer"]
    assert result.top(1)[0][1] == max(written["probabilities"].values())
    assert result.predicted.label == written["predicted"]["class"] and result.face is None
    assert result.gradcam_class.index == written["gradcam_class"]["index"]
    cli = runner.invoke(app, ["explain", str(net_run), str(image), "--crop", "whole",
                              "--out", str(tmp_path / "y"), "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output).keys() == written.keys()


def test_tune_and_study_records_round_trip() -> None:
    best = {"model": "fernet", "metric": "val_accuracy", "value": 0.5, "trial": 0,
            "params": {"lr": 0.01}, "trials": {"complete": 1},
            "table": [{"number": 0}]}  # fmt: skip
    tuned = TuneResult.from_dict(best)
    assert tuned.to_dict() == best and tuned.value == 0.5 and tuned["table"] == [{"number": 0}]
    study = {"config": {}, "dataset": "d", "runs": ["svm-hog"], "in_progress": False,
             "stages": {"data": {"status": "done"}, "svm-hog": {"status": "failed"}},
             "invocations": [], "warnings": []}  # fmt: skip
    record = StudyRecord.from_dict(study)
    assert record.to_dict() == study and record.failed_stages() == ["svm-hog"]
