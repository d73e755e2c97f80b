"""``--ema``: a moving average of the weights, validated, saved and resumed in place of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_folders
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models.torch_run import build_network, load_weights
from ferkit.training.checkpoint import load_checkpoint
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network

TINY = {"width": 0.25}
BATCH = 12  # 3 classes x 4 train images: one optimiser step per epoch


def _cfg(**kw) -> TrainConfig:
    base = dict(model="fernet", model_kwargs=TINY, epochs=1, batch_size=BATCH, lr=3e-3,
                balance="none", threads=1, seed=0)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "data", per_class=4, size=24)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    card = json.loads((run / "model.json").read_text())
    return load_weights(run / "model.safetensors", card["weights_sha256"])


def _floats(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The averaged tensors (BatchNorm's integer step counter is not one that matters)."""
    return {k: v.float() for k, v in tensors.items() if v.is_floating_point()}


def _initial(run: Path) -> dict[str, torch.Tensor]:
    """The weights training started from: the worker seeds, then builds the network."""
    card = json.loads((run / "model.json").read_text())
    torch.manual_seed(0)
    return build_network(card["architecture"]).state_dict()


def test_saved_weights_are_the_average_of_the_trajectory(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """One step with decay 0.5: the saved model is half the initial weights and half the
    stepped ones (parameters and BatchNorm statistics); validation scores it, the network's
    own score is kept beside it, and the checkpoint keeps training the network itself."""
    raw, avg = tmp_path / "raw", tmp_path / "avg"
    train_network(data, raw, _cfg(), progress=False)
    capfd.readouterr()
    summary = train_network(data, avg, _cfg(ema=0.5), progress="epochs")
    w0, w1 = _floats(_initial(raw)), _floats(_weights(raw))
    got = _floats(_weights(avg))
    assert got.keys() == w1.keys() and any("running_mean" in k for k in got)
    assert sum(not torch.allclose(w0[k], w1[k]) for k in w1) > len(w1) // 2  # the step moved
    for key in w1:
        assert torch.allclose(got[key], 0.5 * w0[key] + 0.5 * w1[key], atol=1e-6), key
    saved = load_checkpoint(avg)
    for key, value in _floats(saved["model"]).items():  # the network goes on unaveraged
        assert torch.allclose(value, w1[key], atol=1e-6), key
    assert int(saved["ema"]["n_averaged"]) == 2  # the start and one step
    row = json.loads((avg / "history.json").read_text())[0]
    raw_row = json.loads((raw / "history.json").read_text())[0]
    assert row["val_accuracy_raw"] == raw_row["val_accuracy"]
    assert row["val_loss_raw"] == raw_row["val_loss"] and row["val_loss"] != raw_row["val_loss"]
    assert summary["val_accuracy"] == row["val_accuracy"]
    assert f"(ema; raw {row['val_accuracy_raw']:.3f})" in capfd.readouterr().err
    card = json.loads((avg / "model.json").read_text())
    assert card["training"]["ema"] == 0.5 and summary["config"]["ema"] == 0.5


def _final(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    saved = load_checkpoint(run)
    return saved["model"], saved.get("ema", {})


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    data: Path, tmp_path: Path, ema: float
) -> None:
    """Stopped after epoch 1 and resumed, a run ends where it would have ended: network and
    average (0.0: a checkpoint without an average, as runs started before --ema wrote)."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_network(data, whole, _cfg(epochs=3, ema=ema), progress=False)
    train_network(data, parts, _cfg(epochs=1, ema=ema), progress=False)
    assert ("ema" in load_checkpoint(parts)) == (ema > 0)
    train_network(data, parts, _cfg(epochs=3, ema=ema), resume=True, progress=False)
    (net_a, ema_a), (net_b, ema_b) = _final(whole), _final(parts)
    _same(net_a, net_b)
    _same(ema_a, ema_b)
    _same(_weights(whole), _weights(parts))
    history = json.loads((parts / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert ("val_accuracy_raw" in history[-1]) == (ema > 0)


def test_ema_switched_on_at_resume_starts_then_and_cannot_be_dropped(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint without an average resumed with --ema: the average starts from its
    weights, with a warning; from then on the run has one, and resuming it without --ema
    (or with another decay) is refused like any other changed setting."""
    out = tmp_path / "run"
    train_network(data, out, _cfg(epochs=1), progress=False)
    before = load_checkpoint(out)["model"]
    capfd.readouterr()
    train_network(data, out, _cfg(epochs=2, ema=0.0), resume=True, progress=False)
    assert "warning" not in capfd.readouterr().err
    train_network(data, out, _cfg(epochs=3, ema=0.5), resume=True, progress=False)
    err = capfd.readouterr().err
    assert "written without --ema" in err and "starts now, from epoch 2" in err
    saved = load_checkpoint(out)
    assert saved["epoch"] == 3 and int(saved["ema"]["n_averaged"]) == 2
    assert not all(torch.equal(before[k], saved["model"][k]) for k in before)
    for ema in (0.0, 0.9):
        with pytest.raises(FerkitError, match=r"other settings \(ema\)"):
            train_network(data, out, _cfg(epochs=4, ema=ema), resume=True, progress=False)


def test_decay_of_one_or_more_or_negative_is_refused(data: Path, tmp_path: Path) -> None:
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(FerkitError, match="ema must be in"):
            train_network(data, tmp_path / "x", _cfg(ema=bad), progress=False)
        result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "y"),
                                          "--ema", str(bad)])  # fmt: skip
        assert result.exit_code == 2 and "--ema" in result.output, result.output
    config = tmp_path / "c.yaml"
    config.write_text("ema: 1.0\n")
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "z"),
                                      "--config", str(config)])  # fmt: skip
    assert result.exit_code != 0 and "ema must be at most" in result.output, result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()
    assert TrainConfig(ema=0.999).to_argv() == ["--ema", "0.999"]
