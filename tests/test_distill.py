"""Knowledge distillation (``ferkit train --teacher``): the loss, the teachers' soft targets
(classes by canonical name, another input format, the resampling step left out, the saved
targets reused and refreshed) and the command end to end, resume included."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import make_folders, trained_like_bn
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models import load_run
from ferkit.models.nets import create_model
from ferkit.models.torch_run import save_torch_run
from ferkit.training import distill
from ferkit.training.config import PreparedData, TrainConfig
from ferkit.training.loop import Loop, distillation_loss

CANONICAL = ["angry", "happy", "sad"]


def _teacher(path: Path, canonical: list[str], size: int = 24, color: str = "gray",
             seed: int = 0, **kwargs: object) -> Path:  # fmt: skip
    """A hand-built network saved as a run (random but input-dependent outputs)."""
    torch.manual_seed(seed)
    channels = 1 if color == "gray" else 3
    net = create_model("fernet", len(canonical), channels, size, width=0.25, **kwargs)
    trained_like_bn(net, seed)
    card = {"classes": list(canonical), "canonical": list(canonical), "image_size": size,
            "color": color, "mean": [0.5] * channels, "std": [0.25] * channels}  # fmt: skip
    save_torch_run(path, net, card)
    return path


def _prepared(canonical: list[str], n: int = 40, size: int = 24, seed: int = 0) -> PreparedData:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    labels = rng.integers(0, len(canonical), n)
    return PreparedData(
        torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(images[:4]),
        torch.from_numpy(labels[:4]), list(canonical), list(canonical), size, "gray",
        [0.5], [0.25], None, {},
    )  # fmt: skip


def test_the_distillation_loss_is_zero_only_where_the_student_agrees() -> None:
    soft = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    for temperature in (1.0, 2.0, 4.0):
        agrees = distillation_loss(torch.log(soft) + 3.0, soft, temperature)  # any offset
        assert abs(float(agrees)) < 1e-5
        other = distillation_loss(torch.log(soft.flip(1)), soft, temperature)
        assert float(other) > 0.05
    # T = 1 is the KL divergence of the teachers' probabilities from the student's
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]])
    expected = (soft * (soft.log() - F.log_softmax(logits, 1))).sum(1).mean()
    assert torch.allclose(distillation_loss(logits, soft, 1.0), expected, atol=1e-6)


def test_the_weight_moves_the_loss_between_labels_and_teachers() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    soft = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    y, y_other = torch.tensor([0, 1]), torch.tensor([2, 0])

    def loss(alpha: float, labels: torch.Tensor, targets: torch.Tensor | None) -> float:
        cfg = TrainConfig(distill=alpha, distill_temperature=2.0, label_smoothing=0.1)
        loop = SimpleNamespace(cfg=cfg, loss_weight=None)
        return float(Loop._loss(loop, logits, labels, targets))  # type: ignore[arg-type]

    plain = float(F.cross_entropy(logits, y, label_smoothing=0.1))
    assert loss(0.5, y, None) == pytest.approx(plain)  # no teacher: the labels alone
    assert loss(0.0, y, soft) == pytest.approx(plain)
    assert loss(1.0, y, soft) == pytest.approx(loss(1.0, y_other, soft))  # labels ignored
    assert loss(1.0, y, soft) != pytest.approx(loss(1.0, y, soft.flip(1)))
    mixed = 0.3 * plain + 0.7 * float(distillation_loss(logits, soft, 2.0))
    assert loss(0.7, y, soft) == pytest.approx(mixed)


def test_targets_follow_the_student_classes_by_canonical_name(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path / "t", ["angry", "fear", "happy", "sad"])
    prepared = _prepared(["sad", "happy"])
    targets, _ = distill.teacher_targets([str(teacher)], prepared, tmp_path / "out", progress=False)
    probs = load_run(teacher).estimator.predict_proba(prepared.x_train.numpy())[:, [3, 2]]
    assert torch.allclose(targets, torch.from_numpy(probs / probs.sum(1, keepdims=True)).float(),
                          atol=1e-5)  # fmt: skip
    assert torch.allclose(targets.sum(1), torch.ones(len(targets)), atol=1e-5)
    # a student class the teacher never learnt is refused, naming both
    with pytest.raises(FerkitError, match=r"teacher .* has no class 'surprise'"):
        distill.teacher_targets([str(teacher)], _prepared(["happy", "surprise"]),
                                tmp_path / "out2", progress=False)  # fmt: skip
    with pytest.raises(FerkitError, match=r"teacher .*nowhere"):
        distill.teacher_targets([str(tmp_path / "nowhere")], prepared, tmp_path / "out3",
                                progress=False)  # fmt: skip


def test_several_teachers_are_averaged_in_their_own_input_format(tmp_path: Path) -> None:
    from ferkit.faces.images import whole_image_crop

    gray = _teacher(tmp_path / "gray", CANONICAL, seed=1)
    rgb = _teacher(tmp_path / "rgb", CANONICAL, size=32, color="rgb", seed=2)
    prepared = _prepared(CANONICAL, n=12)
    images = prepared.x_train.numpy()
    # the conversion is the one a face crop gets in inference (Pillow convert + bilinear)
    converted = distill._in_format(images, 32, "rgb")
    assert np.array_equal(converted, np.stack([whole_image_crop(i, 32, "rgb") for i in images]))
    expected = (load_run(gray).estimator.predict_proba(images)
                + load_run(rgb).estimator.predict_proba(converted)) / 2  # fmt: skip
    targets, _ = distill.teacher_targets([str(gray), str(rgb)], prepared, tmp_path / "o",
                                      progress=False)  # fmt: skip
    assert np.allclose(targets.numpy(), expected, atol=1e-5)


def test_a_teachers_resampling_step_is_left_out(tmp_path: Path) -> None:
    plain = _teacher(tmp_path / "plain", CANONICAL, size=32, seed=3)
    stepped = _teacher(tmp_path / "stepped", CANONICAL, size=32, seed=3, resample_via=96)
    prepared = _prepared(CANONICAL, n=16, size=32)
    images = prepared.x_train.numpy()
    with_step = load_run(stepped, backend="torch").estimator.predict_proba(images)
    without = load_run(plain, backend="torch").estimator.predict_proba(images)
    assert np.abs(with_step - without).max() > 1e-3  # the step changes what the teacher says
    targets, _ = distill.teacher_targets([str(stepped)], prepared, tmp_path / "o", progress=False)
    assert np.allclose(targets.numpy(), without, atol=1e-5)
    # the saved run keeps its step
    assert load_run(stepped).card["architecture"]["kwargs"]["resample_via"] == 96


def test_saved_targets_are_reused_and_refreshed_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher = str(_teacher(tmp_path / "t", CANONICAL))
    prepared, out = _prepared(CANONICAL), tmp_path / "run"
    first, who = distill.teacher_targets([teacher], prepared, out, progress=False)
    assert (out / distill.TARGETS).is_file()
    calls: list[str] = []
    real = distill._probabilities

    def counted(run, data, progress):  # type: ignore[no-untyped-def]
        calls.append(run.name)
        return real(run, data, progress)

    monkeypatch.setattr(distill, "_probabilities", counted)
    assert who == [{"name": teacher, "path": str(Path(teacher).resolve()),
                    "weights_sha256": load_run(teacher).card["weights_sha256"]}]  # fmt: skip
    again, _ = distill.teacher_targets([teacher], prepared, out, progress=False)
    assert torch.equal(again, first)
    assert calls == []  # read back, not computed
    relabelled = _prepared(CANONICAL)
    relabelled.y_train = (relabelled.y_train + 1) % 3  # other data: computed again
    distill.teacher_targets([teacher], relabelled, out, progress=False)
    assert len(calls) == 1
    (out / distill.TARGETS).write_bytes(b"not safetensors")  # damaged: computed again
    again, _ = distill.teacher_targets([teacher], prepared, out, progress=False)
    assert len(calls) == 2 and torch.allclose(again, first)


def _train(data: Path, out: Path, *extra: str) -> object:
    return CliRunner().invoke(
        app,
        ["train", str(data), "--model", "fernet", "--arg", "width=0.25", "--batch-size", "8",
         "--augment", "none", "--threads", "1", "--balance", "none", "--out", str(out), *extra],
    )  # fmt: skip


def test_train_with_teachers_end_to_end_and_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_folders(tmp_path / "data", per_class=6, size=24)
    t1 = _teacher(tmp_path / "t1", CANONICAL, seed=4)
    t2 = _teacher(tmp_path / "t2", [*CANONICAL, "surprise"], size=32, color="rgb", seed=5)
    teachers = f"{t1},{t2}"
    out = tmp_path / "run"
    result = _train(data, out, "--epochs", "1", "--teacher", teachers, "--distill", "0.7",
                    "--distill-temperature", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train.json").read_text())
    taught = summary["distillation"]["teachers"]
    assert [t["name"] for t in taught] == [str(t1), str(t2)]
    for t, folder in zip(taught, (t1, t2), strict=True):  # who taught, even if a name moves on
        card_sha = json.loads((folder / "model.json").read_text())["weights_sha256"]
        assert t["path"] == str(folder.resolve()) and t["weights_sha256"] == card_sha
    assert 0.0 <= summary["distillation"]["teacher_train_accuracy"] <= 1.0
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["teacher"] == [str(t1), str(t2)]
    assert card["training"]["distill"] == 0.7 and card["training"]["distill_temperature"] == 3.0
    assert card["teachers"] == taught  # the card says who taught, by weights
    assert (out / distill.TARGETS).is_file()
    # shipped, the card keeps the teachers as the caller names them for good
    from ferkit.models.shipping import ship_run

    lasting = [{**t, "run": f"runs/{Path(t['path']).name}"} for t in taught]
    shipped = ship_run(out, "student", "ferkit train ...", dest=tmp_path / "w", teachers=lasting)
    assert json.loads((shipped / "model.json").read_text())["teachers"] == lasting

    # resumed: the saved targets are read back, not computed again
    def refuse(*_: object) -> None:
        raise AssertionError("the teachers were asked again")

    monkeypatch.setattr(distill, "_probabilities", refuse)
    resumed = _train(data, out, "--epochs", "2", "--resume", "--teacher", teachers,
                     "--distill", "0.7", "--distill-temperature", "3")  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert len(json.loads((out / "history.json").read_text())) == 2
    # a teacher retrained in place since the run started: refused, not silently swapped
    monkeypatch.undo()
    _teacher(t1, CANONICAL, seed=9)
    moved = _train(data, out, "--epochs", "3", "--resume", "--teacher", teachers,
                   "--distill", "0.7", "--distill-temperature", "3")  # fmt: skip
    assert moved.exit_code != 0 and "now holds other weights" in moved.output
    assert len(json.loads((out / "history.json").read_text())) == 2
    # another teacher is another run
    other = _train(data, out, "--epochs", "3", "--resume", "--teacher", str(t1),
                   "--distill", "0.7", "--distill-temperature", "3")  # fmt: skip
    assert other.exit_code != 0 and "other settings" in other.output and "teacher" in other.output


def test_bad_distillation_settings_are_refused(tmp_path: Path) -> None:
    data = make_folders(tmp_path / "data", per_class=6, size=24)
    missing = _train(data, tmp_path / "a", "--epochs", "1", "--teacher", str(tmp_path / "none"))
    assert missing.exit_code != 0 and "teacher" in missing.output
    assert not (tmp_path / "a" / "model.json").exists()
    for flag, value in (("--distill", "1.5"), ("--distill-temperature", "0.5")):
        bad = _train(data, tmp_path / "b", "--epochs", "1", "--teacher", "x", flag, value)
        assert bad.exit_code != 0
    with pytest.raises(FerkitError, match="distill must be in"):
        TrainConfig(teacher=["x"], distill=-0.1).check()
    with pytest.raises(FerkitError, match="needs --teacher"):
        TrainConfig(distill_views="augmented").check()
    with pytest.raises(FerkitError, match="one process"):  # not under DDP (yet)
        TrainConfig(teacher=["x"], nproc=2, batch_size=8).check()


def test_online_teachers_score_each_view_in_their_own_statistics(tmp_path: Path) -> None:
    """``--distill-views augmented``: the module gives, for a batch normalised as the
    student's input, the teachers' mean single-view probabilities over the student's
    classes, each teacher fed the same pixels in its own normalisation."""
    t1 = _teacher(tmp_path / "t1", ["angry", "fear", "happy", "sad"], seed=1)
    t2 = _teacher(tmp_path / "t2", ["sad", "happy", "angry"], seed=2)
    card = json.loads((t2 / "model.json").read_text())
    card.update(mean=[0.4], std=[0.2])  # other statistics than the student's
    (t2 / "model.json").write_text(json.dumps(card))
    prepared = _prepared(CANONICAL, n=10)
    prepared.mean, prepared.std = [0.55], [0.3]
    module, who = distill.online_teachers([str(t1), str(t2)], prepared, tmp_path / "run")
    assert [w["name"] for w in who] == [str(t1), str(t2)]
    assert json.loads((tmp_path / "run" / distill.TEACHERS).read_text())["teachers"] == who
    images = prepared.x_train.numpy()
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.55) / 0.3
    module.train()  # a loop's train() must not put the teachers in training mode
    assert not any(m.training for m in module.modules())
    got = module(x)
    expected = np.zeros((10, 3))
    for teacher, columns in ((t1, [0, 2, 3]), (t2, [2, 1, 0])):
        run = load_run(teacher, backend="torch")
        run.estimator.flip = False  # the view itself, not its mirror too
        probs = run.estimator.predict_proba(images)[:, columns]
        expected += probs / probs.sum(1, keepdims=True) / 2
    assert np.allclose(got.numpy(), expected, atol=1e-5)


def test_online_teachers_must_take_the_students_input(tmp_path: Path) -> None:
    rgb = _teacher(tmp_path / "rgb", CANONICAL, size=24, color="rgb")
    big = _teacher(tmp_path / "big", CANONICAL, size=32)
    for teacher in (rgb, big):
        with pytest.raises(FerkitError, match=rf"teacher {teacher} .*--distill-views clean"):
            distill.online_teachers([str(teacher)], _prepared(CANONICAL), tmp_path / "o")
    with pytest.raises(FerkitError, match="has no class 'surprise'"):
        distill.online_teachers([str(big)], _prepared(["happy", "surprise"], size=32),
                                tmp_path / "o")  # fmt: skip


def test_online_teachers_see_the_mixed_view_the_student_sees(tmp_path: Path) -> None:
    """A loop step with teachers that score the views: the distillation target is the
    teachers' answer on the exact (augmented, mixed) input the student gets."""
    from ferkit.models.card import ModelCard

    teacher = _teacher(tmp_path / "t", CANONICAL, seed=3)
    prepared = _prepared(CANONICAL, n=16)
    prepared.teachers, _ = distill.online_teachers([str(teacher)], prepared, tmp_path / "o")
    cfg = TrainConfig(mixup=0.4, distill=1.0, teacher=[str(teacher)], batch_size=8,
                      distill_views="augmented", bf16=False)  # fmt: skip
    net = create_model("fernet", 3, 1, 24, width=0.25)
    card = ModelCard(classes=CANONICAL, canonical=CANONICAL, image_size=24, color="gray")
    loop = Loop(0, 1, cfg, prepared, card, tmp_path, net, torch.device("cpu"), False)
    seen: list[torch.Tensor] = []
    real = loop._loss

    def record(logits, y, soft=None):  # type: ignore[no-untyped-def]
        seen.append(soft)
        return real(logits, y, soft)

    inputs: list[torch.Tensor] = []
    forward = net.forward

    def remember(x, *a, **k):  # type: ignore[no-untyped-def]
        inputs.append(x.detach().clone())
        return forward(x, *a, **k)

    net.forward = remember  # type: ignore[method-assign]
    loop._loss = record  # type: ignore[method-assign]
    x = torch.randn(8, 1, 24, 24)
    loop._step(x, torch.arange(8) % 3)
    mixed = inputs[0]
    assert not torch.allclose(mixed, x)  # mixup did mix
    expected = prepared.teachers(mixed)
    assert len(seen) == 2  # the label and partner-label halves of mixup
    for soft in seen:
        assert torch.allclose(soft, expected, atol=1e-6)  # the mixed view's target, unmixed
    assert 0 <= loop.teacher_correct <= 8


def test_train_with_teachers_on_augmented_views_end_to_end(tmp_path: Path) -> None:
    data = make_folders(tmp_path / "data", per_class=6, size=24)
    teacher = _teacher(tmp_path / "t", CANONICAL, seed=4)
    out = tmp_path / "run"
    online = ("--teacher", str(teacher), "--distill-views", "augmented", "--augment", "strong")
    result = _train(data, out, "--epochs", "1", *online)
    assert result.exit_code == 0, result.output
    assert "teachers" in result.output  # the epoch line says how they do on the views
    summary = json.loads((out / "train.json").read_text())
    assert summary["distillation"]["views"] == "augmented"
    assert [t["name"] for t in summary["distillation"]["teachers"]] == [str(teacher)]
    assert not (out / distill.TARGETS).exists()  # nothing precomputed
    history = json.loads((out / "history.json").read_text())
    assert 0.0 <= history[0]["teacher_accuracy"] <= 1.0
    resumed = _train(data, out, "--epochs", "2", "--resume", *online)
    assert resumed.exit_code == 0, resumed.output
    _teacher(teacher, CANONICAL, seed=9)  # retrained in place: refused on resume
    moved = _train(data, out, "--epochs", "3", "--resume", *online)
    assert moved.exit_code != 0 and "now holds other weights" in moved.output
    clean = _train(data, out, "--epochs", "3", "--resume", "--teacher", str(teacher),
                   "--augment", "strong")  # fmt: skip
    assert clean.exit_code != 0 and "distill_views" in clean.output
    bad = _train(data, tmp_path / "b", "--epochs", "1", "--teacher", str(teacher),
                 "--distill-views", "sometimes")  # fmt: skip
    assert bad.exit_code != 0
