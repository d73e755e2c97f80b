"""Test-time sharpness matching: the blur is a true Gaussian, inputs come out as blurry as the
training data and no blurrier, the filter travels with the run (card, safetensors, ONNX), and
training turns it on by itself only when the training images are much blurrier than val."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from conftest import assert_onnx_matches, tiny_card, trained_like_bn
from ferkit.data import load_dataset
from ferkit.data.sharpness import matching_target, median_sharpness
from ferkit.data.sharpness import sharpness as numpy_sharpness
from ferkit.errors import FerkitError
from ferkit.models import load_run
from ferkit.models.nets import create_model
from ferkit.models.nets.sharpness import SIGMAS, SharpnessMatch, blur_matrices, sharpness
from ferkit.models.torch_run import save_torch_run
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network

CLASSES = ("angry", "happy", "sad")


def _pattern(label: int, seed: int, size: int) -> np.ndarray:
    """Stripes whose orientation is the class, plus pixel noise: learnable and sharp."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    angle = label * np.pi / 3 + rng.normal(0, 0.1)
    wave = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 1.2 + rng.uniform(0, 6))
    return np.clip(128 + 70 * wave + rng.normal(0, 25, (size, size)), 0, 255)


def _dataset(root: Path, train_sigma: float, per_class: int = 24, size: int = 32) -> Path:
    """Class folders whose train images are blurred by ``train_sigma`` and val images not."""
    seed = 0
    for split, sigma in (("train", train_sigma), ("val", 0.0)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = _pattern(label, seed, size)
                if sigma:
                    img = gaussian_filter(img, sigma, mode="nearest")
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(
                    folder / f"{i}.png"
                )
                seed += 1
    return root


def _cfg(**kw) -> TrainConfig:
    base = dict(
        model="fernet",
        model_kwargs={"width": 0.25},
        epochs=1,
        batch_size=16,
        balance="none",
        augment="none",
        threads=1,
    )
    return TrainConfig(**{**base, **kw})


def test_blur_matrices_are_gaussian_filters_with_replicated_edges() -> None:
    img = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    mats = blur_matrices(20)
    assert len(mats) == len(SIGMAS) + 1 and torch.equal(mats[0], torch.eye(20))
    for k, sigma in enumerate(SIGMAS, start=1):
        ours = (mats[k] @ torch.from_numpy(img) @ mats[k].T).numpy()
        ref = gaussian_filter(img, sigma, mode="nearest", truncate=3.0)
        assert np.abs(ours - ref).max() < 1e-5, sigma


def test_torch_and_numpy_sharpness_agree() -> None:
    images = np.random.default_rng(2).integers(0, 256, (4, 24, 24, 3), np.uint8)
    images[1] = gaussian_filter(images[1], (2, 2, 0))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    assert np.allclose(sharpness(x).numpy(), numpy_sharpness(images), rtol=1e-9)
    assert numpy_sharpness(images)[1] < 0.1 * numpy_sharpness(images)[0]


def test_sharp_inputs_come_out_at_the_target_and_blurry_ones_unchanged() -> None:
    rng = np.random.default_rng(1)
    sharp = torch.from_numpy(rng.random((6, 1, 32, 32), dtype=np.float32))
    target = float(sharpness(torch.from_numpy(gaussian_filter(sharp.numpy(), (0, 0, 2, 2)))).max())
    match = SharpnessMatch(target, 32).eval()
    out = match(sharp)
    after = sharpness(out)
    assert (sharpness(sharp) > 10 * target).all()  # the inputs were far too sharp...
    assert (after <= target).all() and (after > target / 3).all()  # ...and are now just enough
    blurry = torch.from_numpy(gaussian_filter(sharp.numpy(), (0, 0, 3, 3)))
    assert torch.equal(match(blurry), blurry)  # already blurrier than the target: untouched
    # the choice does not depend on brightness or contrast (nor on the run's normalisation)
    assert torch.allclose(match(sharp * 3 - 1), out * 3 - 1, atol=1e-4)
    assert torch.equal(match.train()(sharp), sharp)  # training images are left as they are


def test_bad_target_and_wrong_input_size() -> None:
    with pytest.raises(FerkitError, match="sharpness target"):
        create_model("fernet", 3, 1, 32, sharpness_target=0)
    with pytest.raises(ValueError, match="32px"):
        SharpnessMatch(0.01, 32).eval()(torch.zeros(1, 1, 48, 48))


def test_the_filter_travels_with_the_run_and_into_onnx(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = create_model("fernet", 3, 3, 32, width=0.25)
    matched = create_model("fernet", 3, 3, 32, width=0.25, sharpness_target=0.01)
    assert matched.state_dict().keys() == plain.state_dict().keys()  # no weights of its own
    trained_like_bn(plain)
    matched.load_state_dict(plain.state_dict())
    save_torch_run(tmp_path / "run", matched, tiny_card(list(CLASSES)))
    saved = json.loads((tmp_path / "run" / "model.json").read_text())
    assert saved["architecture"]["kwargs"]["sharpness_target"] == 0.01
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), np.uint8)
    run = load_run(tmp_path / "run", backend="torch")
    assert isinstance(run.estimator.model.prefilter, SharpnessMatch)
    probs = run.estimator.predict_proba(images)
    x = run.estimator.to_tensor(images)
    with torch.no_grad():
        expected = torch.softmax(plain.eval()(matched.eval().prefilter(x)), 1).numpy()
        assert not np.allclose(expected, torch.softmax(plain(x), 1).numpy(), atol=1e-4)
    assert np.allclose(probs, expected, atol=1e-5)
    assert_onnx_matches(tmp_path / "run", images, probs)


def test_training_matches_sharpness_only_when_train_is_much_blurrier(tmp_path: Path) -> None:
    blurred = _dataset(tmp_path / "blurred", train_sigma=2.0)
    with pytest.warns(UserWarning, match="much blurrier"):
        summary = train_network(blurred, tmp_path / "auto", _cfg(), progress=False)
    info = summary["sharpness"]
    assert info["matched"] and info["train_median"] < 0.1 * info["val_median"]
    card = json.loads((tmp_path / "auto" / "model.json").read_text())
    target = card["architecture"]["kwargs"]["sharpness_target"]
    assert target == pytest.approx(info["train_median"], rel=1e-3)
    train_images = load_dataset(blurred).split("train").images
    assert target == pytest.approx(median_sharpness(train_images), rel=1e-3)

    off = train_network(blurred, tmp_path / "off", _cfg(match_sharpness="off"), progress=False)
    assert off["sharpness"] == {"mode": "off"}
    card = json.loads((tmp_path / "off" / "model.json").read_text())
    assert "sharpness_target" not in card["architecture"]["kwargs"]

    same = _dataset(tmp_path / "same", train_sigma=0.0)
    summary = train_network(same, tmp_path / "same-run", _cfg(), progress=False)
    assert summary["sharpness"]["matched"] is False
    card = json.loads((tmp_path / "same-run" / "model.json").read_text())
    assert "sharpness_target" not in card["architecture"]["kwargs"]


def test_several_datasets_are_each_compared_with_their_own_val_split(tmp_path: Path) -> None:
    """A sharp dataset and a blurry-looking one (upscaled, like FER2013 beside AffectNet),
    mixed in other proportions in train than in val, is no gap: only a dataset whose own train
    split is much blurrier than its val split turns matching on."""
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (40, 24, 24, 1), dtype=np.uint8)
    soft = np.stack([gaussian_filter(im.astype(float), (1.5, 1.5, 0)) for im in sharp])
    soft = soft.astype(np.uint8)
    train = np.concatenate([sharp[:5], soft[:35]])  # mostly the soft dataset
    val = np.concatenate([sharp[5:35], soft[35:]])  # mostly the sharp one
    with pytest.warns(UserWarning, match="much blurrier"):
        merged, info = matching_target("auto", train, val)
    assert merged is not None and info["matched"]  # the merge alone looks like a gap
    parts = {"sharp": (sharp[:5], sharp[5:35]), "soft": (soft[:35], soft[35:])}
    target, info = matching_target("auto", train, val, parts=parts)
    assert target is None and not info["matched"]
    assert set(info["datasets"]) == {"sharp", "soft"}
    blurred = {**parts, "sharp": (soft[:5], sharp[5:35])}  # the sharp dataset's train blurred
    with pytest.warns(UserWarning, match="sharp: median sharpness"):
        target, info = matching_target("auto", train, val, parts=blurred)
    assert info["matched"] and target == pytest.approx(info["train_median"], rel=1e-4)


def test_inspect_reports_each_splits_sharpness_and_warns_about_a_gap(tmp_path: Path) -> None:
    from ferkit.data.summary import summarize

    summary = summarize(load_dataset(_dataset(tmp_path / "blurred", train_sigma=2.0)))
    sharp = {k: v["median_sharpness"] for k, v in summary["splits"].items()}
    assert sharp["train"] < 0.1 * sharp["val"]
    (warning,) = summary["warnings"]
    assert (warning["kind"], warning["split"], warning["severity"]) == (
        "sharpness-gap",
        "train",
        "warning",
    )
    assert "much blurrier than val" in warning["reason"]
    assert summary["problem_counts"] == {"sharpness-gap": 1}
    same = summarize(load_dataset(_dataset(tmp_path / "same", train_sigma=0.0)))
    assert same["warnings"] == [] and same["problem_counts"] == {}


def test_svm_runs_match_sharpness_and_keep_it_in_the_saved_pipeline(tmp_path: Path) -> None:
    """On a split blurred like fer2013's train, the SVM pipeline gains the matcher (saved with
    skops and reloaded without pickle), and val images reach the features as blurry as train."""
    from ferkit.evaluation import evaluate_run
    from ferkit.features.sharpness import MatchSharpness
    from ferkit.training.svm import train_svm

    data = _dataset(tmp_path / "blurred", train_sigma=2.0)
    opts = dict(features="raw", method="exact", search=False, params={"kernel": "linear"})
    with pytest.warns(UserWarning, match="much blurrier"):
        summary = train_svm(data, tmp_path / "auto", progress=False, **opts)
    assert summary["sharpness"]["matched"]
    run = load_run(tmp_path / "auto")
    names = [name for name, _ in run.estimator.steps]
    assert names == ["match", "features", "svm"] and run.card["sharpness_target"] > 0
    val = load_dataset(data).split("val").images
    matched = run.estimator.steps[0][1].transform(val)
    assert matched.dtype == np.uint8 and matched.shape == val.shape
    assert median_sharpness(matched) <= run.card["sharpness_target"] * 1.05
    assert evaluate_run(tmp_path / "auto", data, "val")["n"] == len(val)

    off = train_svm(data, tmp_path / "off", progress=False, match_sharpness="off", **opts)
    assert off["sharpness"] == {"mode": "off"}
    assert [name for name, _ in load_run(tmp_path / "off").estimator.steps] == ["features", "svm"]
    with pytest.raises(ValueError, match="square"):
        MatchSharpness(0.01).transform(np.zeros((1, 8, 6, 1), np.uint8))


def test_cli_takes_auto_on_off_and_refuses_others(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferkit.cli import app

    data = _dataset(tmp_path / "blurred", train_sigma=2.0, per_class=8)
    runner = CliRunner()
    bad = runner.invoke(
        app, ["svm", str(data), "--out", str(tmp_path / "x"), "--match-sharpness", "maybe"]
    )
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
    args = ["svm", str(data), "--features", "raw", "--kernel", "linear", "--json"]
    off = runner.invoke(app, [*args, "--out", str(tmp_path / "off"), "--match-sharpness", "off"])
    assert off.exit_code == 0, off.output
    assert json.loads(off.stdout)["sharpness"] == {"mode": "off"}
