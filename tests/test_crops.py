"""Multi-crop test-time augmentation (issue 18): ``multi_crop``, ``Predictor(crops=5)`` and
``--crops`` on evaluate, compare and predict.

The crops are checked against a plain numpy bilinear resize, the averaging with a fake
estimator whose probabilities are read off pixels the crops move (wrong corners give other
numbers), the plumbing on a tiny fernet built, not trained (as in tests/test_noflip.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import tiny_card, trained_like_bn
from ferkit import cli
from ferkit.cli import app
from ferkit.errors import FerkitError, OptionError
from ferkit.inference import Predictor
from ferkit.models import Run, load_run
from ferkit.models import crops as crops_module
from ferkit.models.crops import (
    DEFAULT_CROP_FRACTION,
    crop_boxes,
    crop_views,
    crops_of,
    multi_crop,
)
from ferkit.models.flip import single_view
from ferkit.models.nets import create_model
from ferkit.models.torch_run import save_torch_run

runner = CliRunner()
CLASSES = ["angry", "happy", "sad"]
SIZE = 32


def bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Plain numpy bilinear resize with pixel centres aligned (OpenCV's INTER_LINEAR
    convention: source = (target + 0.5) * scale - 0.5, clamped to the edge)."""
    h, w = image.shape[:2]
    out = np.zeros((height, width, image.shape[2]))
    for y in range(height):
        sy = min(max((y + 0.5) * h / height - 0.5, 0.0), h - 1)
        y0, fy = int(np.floor(sy)), sy - np.floor(sy)
        y1 = min(y0 + 1, h - 1)
        for x in range(width):
            sx = min(max((x + 0.5) * w / width - 0.5, 0.0), w - 1)
            x0, fx = int(np.floor(sx)), sx - np.floor(sx)
            x1 = min(x0 + 1, w - 1)
            top = (1 - fx) * image[y0, x0] + fx * image[y0, x1]
            bottom = (1 - fx) * image[y1, x0] + fx * image[y1, x1]
            out[y, x] = (1 - fy) * top + fy * bottom
    return out


def reference_views(images: np.ndarray, side: int) -> np.ndarray:
    """(5, N, H, W, C) float: corners then centre, each resized back with :func:`bilinear`."""
    _, h, w, _ = images.shape
    corners = [(0, 0), (0, w - side), (h - side, 0), (h - side, w - side)]
    corners.append(((h - side) // 2, (w - side) // 2))
    return np.stack(
        [
            np.stack(
                [
                    bilinear(im[t : t + side, left : left + side].astype(float), h, w)
                    for im in images
                ]
            )
            for t, left in corners
        ]
    )


def pixels(n: int, size: int = 12, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_crop_views_match_a_numpy_bilinear_reference(channels: int) -> None:
    assert crop_boxes(48, 48, DEFAULT_CROP_FRACTION) == [
        (0, 0, 44), (0, 4, 44), (4, 0, 44), (4, 4, 44), (2, 2, 44)
    ]  # fmt: skip
    images = pixels(3, channels=channels)
    views = crop_views(images, 9 / 12)
    assert views.shape == (5, 3, 12, 12, channels) and views.dtype == np.uint8
    expected = reference_views(images, 9)
    # OpenCV's uint8 path uses fixed-point weights: at most one level off the exact value
    assert np.abs(views.astype(float) - expected).max() <= 1.0
    # and the views are not all the same crop
    assert np.abs(views[0].astype(float) - views[3]).max() > 50


class PixelReader:
    """A fake estimator: each image's 'probabilities' are three of its pixels (normalised),
    read where a shifted crop puts other pixels. Records each batch size it is called with."""

    backend = "fake"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        x = images.astype(float)[..., 0]
        raw = np.stack([x[:, 0, 0], x[:, -1, -1], x[:, 5, 2]], axis=1) + 1.0
        return raw / raw.sum(axis=1, keepdims=True)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)

    def embed(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1)[:, :4].astype(float)


def fake_run(estimator: Any, size: int = 12) -> Run:
    return Run(Path("/nowhere/fake"), "sklearn", CLASSES, CLASSES, size, "rgb", estimator)


def test_multi_crop_averages_the_five_crops_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = PixelReader()
    run = fake_run(reader)
    images = pixels(10, seed=1)
    expected = np.mean(
        [reader.predict_proba(np.rint(v).astype(np.uint8)) for v in reference_views(images, 9)],
        axis=0,
    )
    monkeypatch.setattr(crops_module, "CROP_CHUNK", 4)  # views built 4 faces at a time
    cropped = multi_crop(run, 5, 9 / 12)
    reader.calls.clear()
    got = cropped.estimator.predict_proba(images)
    assert reader.calls == [20, 20, 10]  # 5 views of 4, 4 and 2 faces: never the whole split
    assert np.abs(got - expected).max() < 0.02  # the reference rounds differently by <= 1
    assert np.abs(got - reader.predict_proba(images)).max() > 0.05  # not the full view
    assert np.array_equal(cropped.predict(images), got.argmax(axis=1))
    assert cropped.estimator.predict_proba(images[:0]).shape[0] == 0
    # embed and other attributes are the estimator's own, on the full view
    assert np.array_equal(cropped.estimator.embed(images), reader.embed(images))
    assert cropped.backend == "fake" and crops_of(cropped) == 5 and crops_of(run) == 1


def test_multi_crop_leaves_the_run_alone_and_one_crop_is_the_run() -> None:
    reader = PixelReader()
    run = fake_run(reader)
    images = pixels(4, seed=2)
    before = run.estimator.predict_proba(images)
    cropped = multi_crop(run)
    assert cropped is not run and run.estimator is reader
    assert np.array_equal(run.estimator.predict_proba(images), before)
    assert multi_crop(run, crops=1) is run
    with pytest.raises(OptionError, match="already averages 5 crops"):
        multi_crop(cropped)


@pytest.mark.parametrize(
    ("crops", "fraction", "message"),
    [
        (3, DEFAULT_CROP_FRACTION, "crops must be one of 1, 5, got 3"),
        (0, DEFAULT_CROP_FRACTION, "crops must be one of"),
        (True, DEFAULT_CROP_FRACTION, "crops must be one of"),
        (5, 0.5, r"crop fraction must be in \(0.5, 1\)"),
        (5, 1.0, r"crop fraction must be in \(0.5, 1\)"),
        (5, 1.2, r"crop fraction must be in"),
        (5, "0.9", "crop fraction must be a number"),
    ],
)
def test_bad_crop_options_are_refused(crops: Any, fraction: Any, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        multi_crop(fake_run(PixelReader()), crops, fraction)


def test_an_estimator_without_probabilities_is_refused_by_name() -> None:
    class LabelsOnly:
        def predict(self, images: np.ndarray) -> np.ndarray:
            return np.zeros(len(images), int)

    with pytest.raises(FerkitError, match=r"model fake \(/nowhere/fake\) gives no class prob"):
        multi_crop(fake_run(LabelsOnly()))
    with pytest.raises(FerkitError, match="gives no class probabilities"):
        Predictor(fake_run(LabelsOnly()), detect=False, crops=5)


def test_cli_default_fraction_is_the_library_one() -> None:
    assert cli.DEFAULT_CROP_FRACTION == DEFAULT_CROP_FRACTION


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fernet averaging each view with its mirror, with random BatchNorm statistics."""
    torch.manual_seed(0)
    model = create_model("fernet", 3, 3, SIZE, width=0.25, flip_average=True)
    trained_like_bn(model, running_stats=True)
    model.head.weight.data.mul_(0.05)
    return save_torch_run(
        tmp_path_factory.mktemp("crops") / "run", model.eval(), tiny_card(CLASSES)
    )


def test_torch_run_crops_average_its_own_flip_averaged_views(tiny_run: Path) -> None:
    run = load_run(tiny_run, backend="torch")
    images = pixels(6, size=SIZE, seed=3)
    views = crop_views(images, DEFAULT_CROP_FRACTION).reshape(30, SIZE, SIZE, 3)
    single = single_view(run)  # without the mirror first, then crops: five single views
    for base in (run, single):
        expected = base.estimator.predict_proba(views).reshape(5, 6, -1).mean(axis=0)
        got = multi_crop(base).estimator.predict_proba(images)
        assert np.abs(got - expected).max() < 1e-5
    assert not multi_crop(single).estimator.flip and multi_crop(run).estimator.flip
    with pytest.raises(OptionError, match="drop the mirror before adding crops"):
        single_view(multi_crop(run))


def test_predictor_crops_leave_a_shared_run_alone(tiny_run: Path) -> None:
    shared = load_run(tiny_run)
    cropped = Predictor(shared, detect=False, crops=5)
    plain = Predictor(shared, detect=False)
    assert cropped.run is not shared and plain.run is shared
    assert cropped.options()["crops"] == 5 and plain.options()["crops"] == 1
    assert cropped.options()["crop_fraction"] == pytest.approx(44 / 48)
    crop = pixels(1, size=SIZE, seed=9)[0]
    expected = multi_crop(shared).estimator.predict_proba(crop[None])[0]
    got = cropped.predict_image(crop).faces[0].probabilities
    assert np.abs(np.array(list(got.values())) - expected).max() < 1e-4
    assert got != plain.predict_image(crop).faces[0].probabilities


def class_folders(root: Path) -> Path:
    for i, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(2):
            image = pixels(1, size=SIZE, seed=10 * i + j)[0]
            Image.fromarray(image).save(root / name / f"{j}.png")
    return root


def test_cli_crops_reach_evaluate_compare_and_predict(tiny_run: Path, tmp_path: Path) -> None:
    data = class_folders(tmp_path / "data")
    out = tmp_path / "eval.json"
    args = ["evaluate", str(tiny_run), str(data), "--json", str(out)]
    result = runner.invoke(app, [*args, "--crops", "5", "--no-flip"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["crops"] == 5 and report["crop_fraction"] == pytest.approx(44 / 48)
    assert report["flip_averaged"] is False
    assert "averaged over 5 crops" in result.stdout
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["crops"] == 1

    compared = tmp_path / "compare.json"
    result = runner.invoke(
        app,
        ["compare", str(tiny_run), "--data", str(data), "--json", str(compared),
         "--crops", "5", "--crop-fraction", "0.75"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(compared.read_text())["rows"][0]["crops"] == 5
    assert "| crops |" in result.stdout

    image = next((data / "happy").iterdir())
    result = runner.invoke(
        app, ["predict", str(image), "--no-detect", "--model", str(tiny_run), "--json",
              "--crops", "5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["options"]["crops"] == 5 and document["model"]["crops"] == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--crops", "2"], "crops must be one of 1, 5"), (["--crop-fraction", "1.5"], "(0.5, 1)")],
)
def test_cli_bad_crop_options_are_one_line_errors(
    tiny_run: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    data = class_folders(tmp_path / "data")
    for command in (
        ["evaluate", str(tiny_run), str(data)],
        ["compare", str(tiny_run), "--data", str(data)],
    ):
        result = runner.invoke(app, [*command, "--crops", "5", *extra])
        assert result.exit_code != 0
        assert message in result.output and "Traceback" not in result.output
