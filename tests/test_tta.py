"""Flip test-time augmentation: an eval-mode network with ``flip_average`` scores the mean of an
image's and its mirror image's logits, trains single-view, travels with the run (card, ONNX),
and its explanations show the image as given, not the mirror."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_onnx_matches, tiny_card, trained_like_bn
from ferkit.errors import FerkitError
from ferkit.evaluation.explain import feature_maps, grad_cam
from ferkit.models import load_run
from ferkit.models.nets import create_model
from ferkit.models.torch_run import save_torch_run
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network

CLASSES = ["angry", "happy", "sad"]


def _pair(name: str = "fernet", **kw) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights without and with flip averaging; BN set as if trained, so that the
    output depends on the input's left-right layout."""
    torch.manual_seed(0)
    plain = create_model(name, 3, 3, 32, **kw)
    trained_like_bn(plain)
    flipped = create_model(name, 3, 3, 32, flip_average=True, **kw)
    flipped.load_state_dict(plain.state_dict())
    return plain.eval(), flipped.eval()


@pytest.mark.parametrize(("name", "kw"), [("fernet", {"width": 0.25}), ("seedcnn", {})])
def test_eval_scores_the_mean_of_both_views_and_training_one(name: str, kw: dict) -> None:
    plain, flipped = _pair(name, **kw)
    assert flipped.config["kwargs"]["flip_average"] is True
    assert flipped.state_dict().keys() == plain.state_dict().keys()  # no weights of its own
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        one, mirror, both = plain(x), plain(x.flip(-1)), flipped(x)
    assert not torch.allclose(one, mirror, atol=1e-3)  # the mirror view does differ
    assert torch.allclose(both, (one + mirror) / 2, atol=1e-5)
    assert torch.allclose(flipped(x.flip(-1)), both, atol=1e-5)  # mirror-invariant
    plain.train()
    flipped.train()
    torch.manual_seed(2)
    a = plain(x)
    torch.manual_seed(2)
    assert torch.allclose(flipped(x), a, atol=1e-5)  # training mode: one view


def test_only_a_boolean_is_accepted_and_it_can_be_switched_off() -> None:
    with pytest.raises(FerkitError, match="flip_average must be true or false"):
        create_model("fernet", 3, 3, 32, width=0.25, flip_average="yes")
    _, flipped = _pair(width=0.25)
    flipped.average_flips(False)
    assert "flip_average" not in flipped.config["kwargs"]


def test_it_travels_with_the_run_and_into_onnx(tmp_path: Path) -> None:
    plain, flipped = _pair(width=0.25)
    save_torch_run(tmp_path / "run", flipped, tiny_card(CLASSES))
    saved = json.loads((tmp_path / "run" / "model.json").read_text())
    assert saved["architecture"]["kwargs"]["flip_average"] is True
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), np.uint8)
    run = load_run(tmp_path / "run", backend="torch")
    probs = run.estimator.predict_proba(images)
    mirrored = run.estimator.predict_proba(images[:, :, ::-1].copy())
    assert np.allclose(probs, mirrored, atol=1e-5)
    x = run.estimator.to_tensor(images)
    with torch.no_grad():
        expected = torch.softmax((plain(x) + plain(x.flip(-1))) / 2, 1).numpy()
    assert np.allclose(probs, expected, atol=1e-5)
    assert_onnx_matches(tmp_path / "run", images, probs)


def test_explanations_show_the_image_as_given_not_its_mirror() -> None:
    plain, flipped = _pair(width=0.25)
    x = torch.randn(3, 32, 32)
    assert np.allclose(feature_maps(flipped, x), feature_maps(plain, x), atol=1e-5)
    cam_plain, _, _ = grad_cam(plain, x, target=1)
    cam_flip, target, _ = grad_cam(flipped, x, target=1)
    assert target == 1
    # the averaged logit's gradient reaches the given view scaled by 1/2; the map is normalised
    assert np.allclose(cam_flip, cam_plain, atol=1e-4)
    mirror_cam, _, _ = grad_cam(plain, x.flip(-1), target=1)
    assert not np.allclose(cam_flip, mirror_cam, atol=1e-2)


def test_training_with_tta_flip_saves_it_and_validates_with_it(
    folder_dataset: Path, tmp_path: Path
) -> None:
    cfg = TrainConfig(
        model="fernet",
        model_kwargs={"width": 0.25},
        epochs=1,
        batch_size=8,
        balance="none",
        augment="none",
        threads=1,
        tta="flip",
    )
    summary = train_network(folder_dataset, tmp_path / "run", cfg, progress=False)
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["architecture"]["kwargs"]["flip_average"] is True
    run = load_run(tmp_path / "run", backend="torch")
    assert run.estimator.model.flip_average
    from ferkit.evaluation.evaluate import evaluate_run

    report = evaluate_run(tmp_path / "run", folder_dataset, "val", tmp_path / "eval")
    assert report["accuracy"] == pytest.approx(summary["val_accuracy"], abs=1e-6)
    with pytest.raises(FerkitError, match="tta must be one of"):
        train_network(folder_dataset, tmp_path / "bad", TrainConfig(tta="mirror"))
    with pytest.raises(FerkitError, match=r"other settings.*tta"):
        train_network(
            folder_dataset,
            tmp_path / "run",
            TrainConfig(**{**cfg.__dict__, "tta": "none", "epochs": 2}),
            resume=True,
            progress=False,
        )


def test_cli_refuses_an_unknown_tta(folder_dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferkit.cli import app

    runner = CliRunner()
    out = tmp_path / "x"
    bad = runner.invoke(app, ["train", str(folder_dataset), "--out", str(out), "--tta", "mirror"])
    assert bad.exit_code == 2 and not out.exists()
