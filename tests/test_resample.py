"""Test-time resampling match (``resample_via``): the round-trip matrix against OpenCV, the
eval-only prefilter, its order beside sharpness matching, the saved run and ONNX, and
``ferkit train --resample-via``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from conftest import assert_onnx_matches, tiny_card, trained_like_bn
from ferkit import weights
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models import load_run
from ferkit.models.nets import create_model
from ferkit.models.nets.resample import ResampleMatch, roundtrip_matrix
from ferkit.models.nets.sharpness import SharpnessMatch
from ferkit.models.torch_run import check_architecture, save_torch_run

CLASSES = ("angry", "happy", "sad")


def _cv2_roundtrip(image: np.ndarray, via: int) -> np.ndarray:
    side = image.shape[0]
    up = cv2.resize(image, (via, via), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(up, (side, side), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize(("size", "via"), [(48, 224), (32, 96), (20, 33)])
def test_the_matrix_is_opencvs_round_trip(size: int, via: int) -> None:
    matrix = roundtrip_matrix(size, via).double().numpy()
    image = np.random.default_rng(size).random((size, size))
    assert np.allclose(matrix @ image @ matrix.T, _cv2_roundtrip(image, via), atol=1e-5)
    assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5)  # a flat image stays flat
    # a low-pass: fine detail loses energy, and it is not the identity
    assert np.abs(matrix - np.eye(size)).max() > 0.05


def test_eval_inputs_are_resampled_and_training_inputs_left_alone() -> None:
    step = ResampleMatch(224, 48)
    x = torch.from_numpy(np.random.default_rng(0).random((3, 2, 48, 48), dtype=np.float32))
    out = step.eval()(x)
    for n in range(3):
        for c in range(2):
            expected = _cv2_roundtrip(x[n, c].double().numpy(), 224)
            assert np.allclose(out[n, c].numpy(), expected, atol=1e-4)
    assert torch.equal(step.train()(x), x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # computed in float, returned as given
        assert step.eval()(x.bfloat16()).dtype == torch.bfloat16


def test_bad_sides_are_refused_with_the_reason() -> None:
    with pytest.raises(FerkitError, match="larger than the input side"):
        create_model("fernet", 3, 1, 48, resample_via=40)
    with pytest.raises(FerkitError, match="whole number"):
        create_model("fernet", 3, 1, 48, resample_via=224.0)
    with pytest.raises(FerkitError, match="resample_via"):
        check_architecture(
            {"name": "fernet", "num_classes": 3, "in_channels": 1, "image_size": 48,
             "kwargs": {"resample_via": 10**9}}
        )  # fmt: skip
    with pytest.raises(ValueError, match="48px"):
        ResampleMatch(224, 48).eval()(torch.zeros(1, 1, 32, 32))


def test_resampling_runs_before_sharpness_matching_whichever_is_set_first() -> None:
    both = create_model("fernet", 3, 1, 48, width=0.25, sharpness_target=0.3, resample_via=224)
    assert isinstance(both.prefilter, nn.Sequential)
    assert [type(s) for s in both.prefilter] == [ResampleMatch, SharpnessMatch]
    later = create_model("fernet", 3, 1, 48, width=0.25, sharpness_target=0.3)
    later.match_resampling(96)
    later.match_resampling(224)  # replaces, does not stack
    assert [type(s) for s in later.prefilter] == [ResampleMatch, SharpnessMatch]
    assert later.prefilter[0].via == 224 and later.config["kwargs"]["resample_via"] == 224
    # a step added to an eval-mode network (a loaded run) is in eval mode, so it acts at once
    loaded = create_model("fernet", 3, 1, 48, width=0.25).eval()
    loaded.match_resampling(224)
    assert not loaded.prefilter.training
    loaded.match_sharpness(0.3)
    assert not any(step.training for step in loaded.prefilter)


def test_the_step_travels_with_the_run_and_into_onnx(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = create_model("fernet", 3, 3, 32, width=0.25)
    resampled = create_model("fernet", 3, 3, 32, width=0.25, resample_via=150)
    assert resampled.state_dict().keys() == plain.state_dict().keys()  # no weights of its own
    trained_like_bn(plain)
    resampled.load_state_dict(plain.state_dict())
    save_torch_run(tmp_path / "run", resampled, tiny_card(list(CLASSES)))
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["architecture"]["kwargs"]["resample_via"] == 150
    assert weights.test_time_steps(card) == ["resampled via 150 px"]
    run = load_run(tmp_path / "run", backend="torch")
    assert isinstance(run.estimator.model.prefilter, ResampleMatch)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), np.uint8)
    probs = run.estimator.predict_proba(images)
    x = run.estimator.to_tensor(images)
    with torch.no_grad():
        expected = torch.softmax(plain.eval()(resampled.eval().prefilter(x)), 1).numpy()
        assert not np.allclose(expected, torch.softmax(plain(x), 1).numpy(), atol=1e-4)
    assert np.allclose(probs, expected, atol=1e-5)
    assert_onnx_matches(tmp_path / "run", images, probs)
    _int8_keeps_the_step_in_float(tmp_path / "run", images)


def _int8_keeps_the_step_in_float(run_dir: Path, images: np.ndarray) -> None:
    """Static int8 quantisation quantises the convolutions but leaves the resampling matrix and
    its input in float (quantised, they alone cost 0.3 points on FER2013 val)."""
    import onnx

    from ferkit.models.onnx_quantize import quantize_graph

    out = quantize_graph(run_dir / "model.onnx", "qdq", images, run_dir / "int8.onnx")
    nodes = onnx.load(str(out)).graph.node
    made_by = {o: n.op_type for n in nodes for o in n.output}
    matmuls = [n for n in nodes if n.op_type == "MatMul"]
    convs = [n for n in nodes if n.op_type == "Conv"]
    assert matmuls and convs
    assert all(made_by.get(i) != "DequantizeLinear" for n in matmuls for i in n.input)
    assert all(made_by.get(n.input[1]) == "DequantizeLinear" for n in convs)


def _folders(root: Path, size: int = 32, per_class: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = np.clip(40 + 80 * label + rng.normal(0, 20, (size, size)), 0, 255)
                Image.fromarray(img.astype(np.uint8), "L").save(folder / f"{i}.png")
    return root


def test_train_resample_via_saves_the_step(tmp_path: Path) -> None:
    data = _folders(tmp_path / "data")
    result = CliRunner().invoke(
        app,
        ["train", str(data), "--model", "fernet", "--arg", "width=0.25", "--epochs", "1",
         "--batch-size", "8", "--augment", "none", "--threads", "1",
         "--resample-via", "96", "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["architecture"]["kwargs"]["resample_via"] == 96
    assert card["training"]["resample_via"] == 96
    run = load_run(tmp_path / "run", backend="torch")
    assert isinstance(run.estimator.model.prefilter, ResampleMatch)

    bad = CliRunner().invoke(
        app,
        ["train", str(data), "--model", "fernet", "--arg", "width=0.25", "--epochs", "1",
         "--batch-size", "8", "--threads", "1", "--resample-via", "16",
         "--out", str(tmp_path / "bad")],
    )  # fmt: skip
    assert bad.exit_code != 0
    assert "larger than the input side" in bad.output


def test_a_run_ships_with_the_step_added_and_says_so(tmp_path: Path) -> None:
    from conftest import make_folders
    from ferkit.models.shipping import ship_run
    from ferkit.training.svm import train_svm

    torch.manual_seed(0)
    net = create_model("fernet", 3, 3, 32, width=0.25, flip_average=True)
    save_torch_run(tmp_path / "run", net, tiny_card(list(CLASSES)))
    command = "ferkit train d --out runs/tiny"
    shipped = ship_run(tmp_path / "run", "tiny", command, dest=tmp_path / "w", resample_via=96)
    card = json.loads((shipped / "model.json").read_text())
    assert card["architecture"]["kwargs"] == {**net.config["kwargs"], "resample_via": 96}
    assert card["added_after_training"]["resample_via"] == 96 and card["command"] == command
    run = load_run(shipped, backend="torch")
    assert isinstance(run.estimator.model.prefilter, ResampleMatch)
    assert weights.test_time_steps(card) == ["resampled via 96 px", "flip-averaged"]
    # the source run is left as it was
    assert "resample_via" not in json.loads((tmp_path / "run" / "model.json").read_text())[
        "architecture"]["kwargs"]  # fmt: skip
    with pytest.raises(FerkitError, match="larger than the input side"):
        ship_run(tmp_path / "run", "bad", command, dest=tmp_path / "w", resample_via=20)
    root = make_folders(tmp_path / "d", per_class=4, size=24)
    svm_params = {"kernel": "linear", "C": 1.0}
    train_svm(root, tmp_path / "svm", features="raw", search=False, params=svm_params,
              progress=False)  # fmt: skip
    with pytest.raises(FerkitError, match="only a network"):
        ship_run(tmp_path / "svm", "svm", command, dest=tmp_path / "w", resample_via=96)
    assert not (tmp_path / "w" / "bad").exists() and not (tmp_path / "w" / "svm").exists()
