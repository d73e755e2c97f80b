"""The training engine: artefacts, learning, resume after a kill, fine-tuning, DDP, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_folders
from ferkit.errors import FerkitError
from ferkit.evaluation import evaluate_run
from ferkit.models import load_run
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network

TINY = {"width": 0.25}


def _cfg(**kw) -> TrainConfig:
    base = dict(
        model="fernet",
        model_kwargs=TINY,
        epochs=2,
        batch_size=16,
        lr=3e-3,
        augment="notebook",
        balance="none",
        threads=1,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "data", per_class=40, size=32)


def test_two_epochs_beat_chance_and_write_every_artefact(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train_network(data, out, _cfg(epochs=3), progress=False)
    for name in (
        "model.safetensors",
        "model.json",
        "checkpoint.pt",
        "history.json",
        "curves.png",
        "train.json",
    ):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert summary["val_accuracy"] > 1 / 3 + 0.2  # three classes: chance is 33%
    card = json.loads((out / "model.json").read_text())
    assert card["kind"] == "torch" and card["architecture"]["name"] == "fernet"
    assert card["classes"] == ["angry", "happy", "sad"] and len(card["mean"]) == 1
    # the saved model is the best epoch's, and evaluate works on it unchanged
    report = evaluate_run(out, data, "val")
    assert report["accuracy"] == pytest.approx(summary["val_accuracy"], abs=1e-6)


def test_same_seed_same_history(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Same seed, same run; and what each progress setting prints (``"epochs"``: a plain
    line per epoch for the log of a background run, no bars; ``False``: nothing)."""
    a = train_network(data, tmp_path / "a", _cfg(epochs=1), progress=False)
    assert capfd.readouterr().err == ""
    b = train_network(data, tmp_path / "b", _cfg(epochs=1), progress="epochs")
    err = capfd.readouterr().err
    assert err.startswith("epoch 1: loss ") and err.count("\n") == 1 and "\r" not in err
    assert "| val loss " in err and f"acc {b['val_accuracy']:.3f}" in err
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert ha[0]["train_loss"] == pytest.approx(hb[0]["train_loss"], rel=1e-4)
    assert a["val_accuracy"] == b["val_accuracy"]


def test_early_stopping_keeps_the_best_weights(data: Path, tmp_path: Path) -> None:
    # lr 0 never improves after epoch 1: patience 2 stops at epoch 3 and keeps epoch 1
    out = tmp_path / "run"
    summary = train_network(data, out, _cfg(epochs=10, patience=2, lr=1e-12), progress=False)
    assert summary["stopped_early"] and summary["epochs_run"] == 3
    assert summary["best_epoch"] == 1
    assert json.loads((out / "model.json").read_text())["epoch"] == 1


def test_patience_running_out_on_the_last_epoch_is_not_an_early_stop(
    data: Path, tmp_path: Path
) -> None:
    # the same never-improving run with a budget of 3: patience ends with the budget
    summary = train_network(data, tmp_path / "run", _cfg(epochs=3, patience=2, lr=1e-12),
                            progress=False)  # fmt: skip
    assert not summary["stopped_early"] and summary["epochs_run"] == 3
    assert summary["best_epoch"] == 1 and isinstance(summary["best_epoch"], int)


def test_plateau_divides_the_learning_rate_by_ten(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_network(
        data, out, _cfg(epochs=4, patience=10, lr=1e-7, plateau_patience=1), progress=False
    )
    lrs = [h["lr"] for h in json.loads((out / "history.json").read_text())]
    # lr 1e-7 cannot move the loss by the scheduler's 1e-4 relative threshold: epochs 2 and 3
    # do not improve, so epoch 4 runs at a tenth
    assert lrs == pytest.approx([1e-7, 1e-7, 1e-7, 1e-8])


KILL_SCRIPT = """
import sys, time
from ferkit.training.config import TrainConfig
from ferkit.training.deep import train_network
cfg = TrainConfig(model="fernet", model_kwargs={{"width": 0.25}}, epochs=4, batch_size=16,
                  lr=3e-3, balance="none", threads=1, seed=0)
def slow(epoch, i):
    time.sleep(0.05)
train_network({data!r}, {out!r}, cfg, resume={resume}, progress=False, on_batch=slow)
"""


def _start(data: Path, out: Path, resume: bool) -> subprocess.Popen:
    code = textwrap.dedent(KILL_SCRIPT.format(data=str(data), out=str(out), resume=resume))
    return subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_loses_at_most_that_epoch(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(data, out, resume=False)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ckpt.exists(), "the first epoch never checkpointed"
    time.sleep(0.5)  # well inside epoch 2 (7 batches x 50 ms sleeps + compute)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(ckpt, weights_only=True)
    done_before = saved["epoch"]
    assert 1 <= done_before < 4
    before = json.loads(saved["history"])
    assert _start(data, out, resume=True).wait(timeout=300) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[:done_before] == before  # finished epochs are kept as they were
    # an uninterrupted run draws the same batches: the resumed epochs match it closely
    ref = tmp_path / "ref"
    train_network(data, ref, _cfg(epochs=4), progress=False)
    ref_history = json.loads((ref / "history.json").read_text())
    for got, want in zip(history, ref_history, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=0.05)


def test_resume_refuses_other_settings_and_fresh_run_refuses_existing(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train_network(data, out, _cfg(epochs=1), progress=False)
    with pytest.raises(FerkitError, match="already holds a run"):
        train_network(data, out, _cfg(epochs=1), progress=False)
    with pytest.raises(FerkitError, match=r"other settings.*lr"):
        train_network(data, out, _cfg(epochs=2, lr=0.5), resume=True, progress=False)
    # more epochs on a finished run continue it
    summary = train_network(data, out, _cfg(epochs=2), resume=True, progress=False)
    assert summary["epochs_run"] == 2


def test_run_started_when_notebook_was_called_seed_resumes(data: Path, tmp_path: Path) -> None:
    """A checkpoint from before the rename holds ``augment: "seed"``: resuming it with today's
    default (``notebook``, the same augmentation) continues the run, silently."""
    import warnings

    from ferkit.training.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    train_network(data, out, _cfg(epochs=1), progress=False)
    saved = load_checkpoint(out)
    config = json.loads(saved["config"])
    assert config["augment"] == "notebook"
    saved["config"] = json.dumps({**config, "augment": "seed"})  # as an old ferkit wrote it
    save_checkpoint(out, saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # nothing the user typed is deprecated
        summary = train_network(data, out, _cfg(epochs=2), resume=True, progress=False)
    assert summary["epochs_run"] == 2


def test_class_subset_and_wrong_class_list(data: Path, tmp_path: Path) -> None:
    summary = train_network(
        data, tmp_path / "hs", _cfg(epochs=1, classes=["happiness", "sadness"]), progress=False
    )
    assert summary["classes"] == ["happy", "sad"]
    assert load_run(tmp_path / "hs").canonical == ["happy", "sad"]
    with pytest.raises(ValueError, match=r"contempt.*not in this dataset"):
        train_network(data, tmp_path / "bad", _cfg(classes=["contempt"]), progress=False)
    with pytest.raises(ValueError, match=r"unknown emotion|not a known"):
        train_network(data, tmp_path / "bad2", _cfg(classes=["grumpy"]), progress=False)


def test_bad_settings_fail_before_loading(tmp_path: Path) -> None:
    for bad, match in [
        ({"model": "nope"}, "unknown model"),
        ({"augment": "wild"}, "augment"),
        ({"batch_size": 15, "nproc": 2}, "divisible"),
    ]:
        with pytest.raises(FerkitError, match=match):
            train_network(tmp_path / "missing", tmp_path / "x", _cfg(**bad), progress=False)


def test_tampered_or_truncated_weights_error_clearly(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_network(data, out, _cfg(epochs=1), progress=False)
    weights = out / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-5] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(FerkitError, match=r"model.safetensors.*checksum"):
        load_run(out)
    weights.write_bytes(bytes(blob[:100]))
    card = json.loads((out / "model.json").read_text())
    card["weights_sha256"] = hashlib.sha256(bytes(blob[:100])).hexdigest()
    (out / "model.json").write_text(json.dumps(card))
    with pytest.raises(FerkitError, match=r"model.safetensors.*not a readable safetensors"):
        load_run(out)


def test_init_from_gray_run_remaps_head_and_channels(data: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    train_network(data, src, _cfg(epochs=1), progress=False)
    rgb = make_folders(
        tmp_path / "rgb", classes=("happy", "sad"), per_class=20, size=32, mode="RGB"
    )
    out = tmp_path / "ft"
    summary = train_network(rgb, out, _cfg(epochs=1, init=str(src)), progress=False)
    assert summary["classes"] == ["happy", "sad"]
    run = load_run(out)
    assert run.color == "rgb" and run.estimator.model.head.out_features == 2
    with pytest.raises(FerkitError, match="is a 'fernet' network"):
        train_network(
            rgb,
            tmp_path / "x",
            _cfg(model="seedcnn", model_kwargs={}, init=str(src)),
            progress=False,
        )


@pytest.mark.slow
def test_ddp_two_gloo_processes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    summary = train_network(data, out, _cfg(epochs=2, nproc=2), progress=False)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert summary["val_accuracy"] > 1 / 3
    probs = load_run(out).estimator.predict_proba(np.zeros((2, 32, 32, 1), np.uint8))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_epoch_end_callbacks_run_in_order_and_on_rank_0_except_early_stopping(
    tmp_path: Path,
) -> None:
    """Early stopping decides on every rank (they must stop together); saving, history,
    curves, the log line and the caller's hooks run on rank 0 only, after it, in that order."""
    import torch

    from ferkit.models.torch_run import build_network
    from ferkit.training.callbacks import (
        BatchHook,
        Checkpoint,
        Curves,
        EarlyStopping,
        EpochHook,
        EpochLog,
        History,
        standard_callbacks,
    )
    from ferkit.training.config import PreparedData
    from ferkit.training.loop import Loop

    callbacks = standard_callbacks("epochs", on_batch=lambda e, b: None, on_epoch=lambda r: None)
    kinds = [EarlyStopping, Checkpoint, History, Curves, EpochLog, BatchHook, EpochHook]
    assert [type(c) for c in callbacks] == kinds
    assert [type(c) for c in standard_callbacks(False)] == kinds[:4]
    pixels, labels = torch.zeros(4, 8, 8, 1, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    data = PreparedData(pixels, labels, pixels, labels, ["a", "b"], ["angry", "happy"], 8,
                        "gray", [0.5], [0.25], None, {})  # fmt: skip
    arch = {"name": "fernet", "num_classes": 2, "in_channels": 1, "image_size": 8, "kwargs": {}}

    def loop(rank: int) -> Loop:
        net = build_network(arch)
        return Loop(rank, 1, _cfg(), data, {}, tmp_path, net, torch.device("cpu"), False, callbacks)

    assert loop(0).callbacks == callbacks
    assert [type(c) for c in loop(1).callbacks] == [EarlyStopping]
