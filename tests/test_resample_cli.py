"""The test-time resampling override (``with_resampling``, ``Predictor(resample_via=N)``,
``--resample-via N`` on evaluate, compare and predict) on already-trained torch runs.

An overridden run must score exactly as the same weights saved with ``resample_via`` (what
``ferkit train --resample-via`` makes), without changing the run it was given. Runs are tiny
fernets built, not trained (random BatchNorm statistics, as in tests/test_crops.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from conftest import tiny_card, trained_like_bn
from ferkit import weights
from ferkit.cli import app
from ferkit.errors import FerkitError, OptionError
from ferkit.inference import Predictor
from ferkit.models import Run, load_run
from ferkit.models.crops import multi_crop
from ferkit.models.flip import single_view
from ferkit.models.nets import create_model
from ferkit.models.nets.resample import ResampleMatch
from ferkit.models.resampling import resample_via_of, with_resampling
from ferkit.models.torch_run import save_torch_run

runner = CliRunner()
CLASSES = ["angry", "happy", "sad"]
SIZE = 32
VIA = 96
TOL = 1e-5


def network(**kwargs: Any) -> nn.Module:
    """The same weights every call (flip-averaged, as the shipped networks are)."""
    torch.manual_seed(0)
    model = create_model("fernet", 3, 3, SIZE, width=0.25, flip_average=True, **kwargs)
    trained_like_bn(model, running_stats=True)
    model.head.weight.data.mul_(0.05)  # probabilities away from 0 and 1, so tolerances bite
    return model.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a run trained without the step, the same weights saved with ``resample_via=VIA``)."""
    root = tmp_path_factory.mktemp("resample")
    plain = save_torch_run(root / "plain", network(), tiny_card(CLASSES))
    stepped = save_torch_run(root / "stepped", network(resample_via=VIA), tiny_card(CLASSES))
    return plain, stepped


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), np.uint8)


def probs(run: Run, images: np.ndarray) -> np.ndarray:
    return np.asarray(run.estimator.predict_proba(images))


def test_the_override_scores_as_a_run_saved_with_the_step(runs: tuple[Path, Path]) -> None:
    plain, stepped = load_run(runs[0], backend="torch"), load_run(runs[1], backend="torch")
    images = pixels(6)
    resampled = with_resampling(plain, VIA)
    assert np.abs(probs(resampled, images) - probs(stepped, images)).max() < TOL
    assert np.abs(probs(resampled, images) - probs(plain, images)).max() > 1e-3
    assert isinstance(resampled.estimator.model.prefilter, ResampleMatch)
    assert resample_via_of(resampled) == VIA and resample_via_of(plain) is None
    assert weights.test_time_steps(resampled.card) == [f"resampled via {VIA} px", "flip-averaged"]
    assert resampled.backend == "torch" and resampled.name == plain.name
    assert with_resampling(plain, None) is plain


def test_the_given_run_is_not_changed(runs: tuple[Path, Path]) -> None:
    plain = load_run(runs[0], backend="torch")
    images = pixels(4, seed=1)
    before = probs(plain, images)
    resampled = with_resampling(plain, VIA)
    assert resampled is not plain and resampled.estimator is not plain.estimator
    assert resampled.estimator.model is not plain.estimator.model
    assert isinstance(plain.estimator.model.prefilter, nn.Identity)
    assert "resample_via" not in plain.card["architecture"]["kwargs"]
    assert "resample_via" not in plain.estimator.model.config["kwargs"]
    assert np.array_equal(probs(plain, images), before)


def test_a_run_with_the_step_gets_it_replaced(runs: tuple[Path, Path]) -> None:
    plain, stepped = load_run(runs[0], backend="torch"), load_run(runs[1], backend="torch")
    images = pixels(5, seed=2)
    replaced = with_resampling(stepped, 64)
    assert replaced.estimator.model.prefilter.via == 64 and resample_via_of(replaced) == 64
    assert np.abs(probs(replaced, images) - probs(with_resampling(plain, 64), images)).max() < TOL
    assert stepped.estimator.model.prefilter.via == VIA and resample_via_of(stepped) == VIA


def test_it_composes_with_no_flip_and_crops_in_that_order(runs: tuple[Path, Path]) -> None:
    plain, stepped = load_run(runs[0], backend="torch"), load_run(runs[1], backend="torch")
    images = pixels(4, seed=3)
    # the crops are cut first and each view resampled by the network; one view, no mirror
    got = multi_crop(with_resampling(single_view(plain), VIA))
    expected = multi_crop(single_view(stepped))
    assert not got.estimator.flip
    assert np.abs(probs(got, images) - probs(expected, images)).max() < TOL
    either = with_resampling(plain, VIA)  # the mirror dropped after the override: the same
    assert (
        np.abs(probs(single_view(either), images) - probs(single_view(stepped), images)).max() < TOL
    )
    with pytest.raises(OptionError, match="add the resampling before the crops"):
        with_resampling(multi_crop(plain), VIA)


class Scores:
    """A fake estimator with probabilities (an ONNX session or a scikit-learn pipeline)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), 3), 1 / 3)


@pytest.mark.parametrize(
    ("kind", "backend", "message"),
    [
        ("torch", "onnx", r"model m \(/nowhere/m\) runs an ONNX graph, which applies only"),
        ("sklearn", "sklearn", r"model m \(/nowhere/m\) is a sklearn model without a torch"),
    ],
)
def test_onnx_and_svm_runs_are_refused_by_name(kind: str, backend: str, message: str) -> None:
    run = Run(Path("/nowhere/m"), kind, CLASSES, CLASSES, SIZE, "rgb", Scores(backend))
    with pytest.raises(FerkitError, match=message):
        with_resampling(run, VIA)
    with pytest.raises(FerkitError, match=message):
        Predictor(run, detect=False, resample_via=VIA)


def test_an_exported_run_is_refused_as_onnx_and_overridden_as_torch(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from ferkit.models.onnx_export import export_onnx

    folder = save_torch_run(tmp_path / "exported", network(), tiny_card(CLASSES))
    export_onnx(folder)
    assert load_run(folder).backend == "onnx"  # what "auto" picks: the graph
    with pytest.raises(FerkitError, match="retrain with --resample-via and re-export"):
        with_resampling(load_run(folder), VIA)
    # asked by path, the override loads the torch network
    predictor = Predictor(str(folder), detect=False, resample_via=VIA)
    assert predictor.run.backend == "torch"
    face = pixels(1, seed=4)[0]
    got = predictor.predict_image(face).faces[0].probabilities
    expected = probs(load_run(runs[1], backend="torch"), face[None])[0]
    assert np.abs(np.array(list(got.values())) - expected).max() < 1e-4


@pytest.mark.parametrize(
    ("via", "message"),
    [
        (SIZE, r"larger than the input side \(32 px\)"),
        (16, "larger than the input side"),
        (10**6, "at most 4096"),
        (224.0, "whole number of pixels"),
        (True, "whole number of pixels"),
        ("224", "whole number of pixels"),
    ],
)
def test_bad_sides_are_refused_with_the_reason(
    runs: tuple[Path, Path], via: Any, message: str
) -> None:
    with pytest.raises(OptionError, match=message):
        with_resampling(load_run(runs[0], backend="torch"), via)


def test_predictor_records_the_override_and_leaves_a_shared_run_alone(
    runs: tuple[Path, Path],
) -> None:
    shared = load_run(runs[0], backend="torch")
    resampled = Predictor(shared, detect=False, resample_via=VIA, crops=5)
    plain = Predictor(shared, detect=False)
    own = Predictor(str(runs[1]), detect=False)
    assert plain.run is shared and isinstance(shared.estimator.model.prefilter, nn.Identity)
    assert resampled.options()["resample_via"] == VIA and plain.options()["resample_via"] is None
    assert resampled.describe()["resample_via"] == VIA and plain.describe()["resample_via"] is None
    assert own.options()["resample_via"] is None and own.describe()["resample_via"] == VIA
    face = pixels(1, seed=5)[0]
    expected = probs(multi_crop(load_run(runs[1], backend="torch")), face[None])[0]
    got = resampled.predict_image(face).faces[0].probabilities
    assert np.abs(np.array(list(got.values())) - expected).max() < 1e-4


def class_folders(root: Path) -> Path:
    for i, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(pixels(1, seed=10 * i + j)[0]).save(root / name / f"{j}.png")
    return root


def test_cli_records_resample_via_in_evaluate(runs: tuple[Path, Path], tmp_path: Path) -> None:
    plain, stepped = runs
    data = class_folders(tmp_path / "data")
    out = tmp_path / "eval.json"
    args = ["evaluate", str(plain), str(data), "--json", str(out)]
    result = runner.invoke(app, [*args, "--resample-via", str(VIA), "--crops", "5", "--no-flip"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["resample_via"] == VIA and report["crops"] == 5
    assert report["flip_averaged"] is False
    assert f"resampled via {VIA} px" in result.stdout
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["resample_via"] is None
    own = tmp_path / "own.json"
    result = runner.invoke(app, ["evaluate", str(stepped), str(data), "--json", str(own)])
    assert result.exit_code == 0, result.output
    assert json.loads(own.read_text())["resample_via"] == VIA  # the network's own step


def test_cli_records_resample_via_in_compare_and_predict(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    plain, stepped = runs
    data = class_folders(tmp_path / "data")
    compared = tmp_path / "compare.json"
    result = runner.invoke(
        app,
        ["compare", str(plain), str(stepped), "--data", str(data), "--json", str(compared),
         "--resample-via", "64"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(compared.read_text())["rows"]
    assert [row["resample_via"] for row in rows] == [64, 64]  # replaced in the stepped run too
    assert "| resample_via |" in result.stdout

    image = next((data / "happy").iterdir())
    result = runner.invoke(
        app, ["predict", str(image), "--no-detect", "--model", str(plain), "--json",
              "--resample-via", str(VIA)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["options"]["resample_via"] == VIA and document["model"]["resample_via"] == VIA


def test_cli_compare_shows_the_column_only_where_a_network_resamples(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    data = class_folders(tmp_path / "data")
    compared = tmp_path / "compare.json"
    result = runner.invoke(
        app, ["compare", str(runs[0]), "--data", str(data), "--json", str(compared)]
    )
    assert result.exit_code == 0, result.output
    assert "resample_via" not in json.loads(compared.read_text())["rows"][0]
    assert "resample_via" not in result.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [("16", "larger than the input side (32 px)"), ("1e9", "valid integer")],
)
def test_cli_bad_values_are_one_line_errors(
    runs: tuple[Path, Path], tmp_path: Path, value: str, message: str
) -> None:
    data = class_folders(tmp_path / "data")
    image = next((data / "sad").iterdir())
    for command in (
        ["evaluate", str(runs[0]), str(data)],
        ["compare", str(runs[0]), "--data", str(data)],
        ["predict", str(image), "--no-detect", "--model", str(runs[0])],
    ):
        result = runner.invoke(app, [*command, "--resample-via", value])
        assert result.exit_code != 0, command
        assert message in result.output and "Traceback" not in result.output, result.output
