"""Knowledge distillation (``ferkit train --teacher A,B``): trained runs teach a new network.

Why: an average of several networks classifies better than any of them (on FER2013 val the
four runs in docs/BENCHMARKS.md reach 70.1% together against 67.3-68.5% alone), but costs as many
networks at inference. Distillation (Hinton, Vinyals and Dean, 2015) moves that knowledge into
one network: beside its label, each training image gets a soft target, the teachers' averaged
probabilities, and the student learns both (``TrainConfig.distill`` weighs them; the
temperature softens teacher and student alike, so the teachers' second choices count).

The targets are computed once, before the first epoch, on the training images as they are
(each teacher as it predicts, flip averaging included), and the student sees them beside each
augmented view of the image. They are saved in the run folder (:data:`TARGETS`, safetensors:
loading runs no code) with a key of the teachers, their weights and the training data, so a
resumed run reuses them and a changed teacher or dataset recomputes them.

With ``--distill-views augmented`` (:class:`Teachers`) the teachers instead score every
augmented view the student trains on, at every step, so teacher and student always see the
same pixels: Beyer et al. (2022, "Knowledge distillation: a good teacher is patient and
consistent") find such consistent targets, with mixup, distil far better than fixed ones,
which under random crops and erasing may describe what the view no longer shows. It costs a
teacher forward pass per step and needs teachers that take the student's input (size and
colour); nothing is saved but the teachers' identities (:data:`TEACHERS`), which a resumed run
checks.

A teacher's resampling step (``--resample-via``) is left out here: it passes an input through
the resize round trip the training images went through, and these are those images. A teacher
of another input size or colour gets the images converted as the data layer decodes them
(Pillow ``convert``, bilinear resize). Its classes are matched by canonical emotion name: it
must know every class the student learns; classes it has beyond those are dropped and its
probabilities renormalised over the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn
from tqdm.auto import tqdm

from ferkit import io
from ferkit.errors import FerkitError
from ferkit.faces.images import whole_image_crop
from ferkit.models.store import Run
from ferkit.training.config import PreparedData

TARGETS = "teacher_targets.safetensors"
TEACHERS = "teachers.json"  # --distill-views augmented: who teaches, checked on --resume
CHUNK = 1024  # images converted and scored at a time (bounds the memory of a conversion)


def teacher_targets(
    teachers: list[str],
    prepared: PreparedData,
    out: Path,
    progress: bool = True,
    resuming: bool = False,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The (N, classes) soft targets of ``prepared``'s training images, the mean of the
    teachers' probabilities (read from ``out`` when a run there saved them for the same
    teachers and data, else computed and saved), and each teacher as it was: name, folder and
    weights checksum (a shipped name may later name other weights).

    ``resuming``: a run that continues must learn from the teachers it started with; one of
    them now holding other weights (a shipped name that moved on, a folder retrained) is an
    error naming it, not a silent change of targets halfway through."""
    runs = [_load_teacher(name) for name in teachers]
    identities = [_identity(name, run) for name, run in zip(teachers, runs, strict=True)]
    key = _key(identities, prepared)
    path = out / TARGETS
    saved = _saved(path)  # (its key, its targets), or None
    if resuming and saved is not None:
        _same_teachers(path, saved[0], identities)
    shape = (len(prepared.y_train), len(prepared.classes))
    if saved is not None and saved[0] == key and _usable(saved[1], shape):
        return saved[1].float(), identities
    total = np.zeros((len(prepared.y_train), len(prepared.classes)), dtype=np.float64)
    for run in runs:
        total += _probabilities(run, prepared, progress)
    targets = torch.from_numpy((total / len(runs)).astype(np.float32))
    out.mkdir(parents=True, exist_ok=True)
    io.write_bytes(path, save({"targets": targets}, metadata={"key": key}))
    return targets, identities


def _same_teachers(path: Path, key: str, identities: list[dict[str, Any]]) -> None:
    """Refuse to resume when a teacher's weights differ from those the saved targets (whose
    ``key`` is given) came from."""
    try:
        before = json.loads(key)["teachers"]
    except (ValueError, KeyError, TypeError):
        return  # an unreadable key: the targets are computed again
    for was, now in zip(before, identities, strict=False):
        if was.get("weights_sha256") != now["weights_sha256"]:
            raise FerkitError(
                f"{path}: teacher {now['name']} ({now['path']}) now holds other weights than "
                "the run started with; resume with the original teachers or start a new run"
            )


def _identity(name: str, run: Run) -> dict[str, Any]:
    return {
        "name": name,
        "path": str(run.path.resolve()),
        "weights_sha256": run.card.get("weights_sha256"),
    }


def teacher_report(targets: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """How the teachers see the training images: their accuracy and mean top probability
    (near 1 and 1: they recall their own training set, and the soft targets add little)."""
    return {
        "teacher_train_accuracy": round(float((targets.argmax(1) == labels).float().mean()), 4),
        "teacher_mean_top_probability": round(float(targets.max(1).values.mean()), 4),
    }


def _load_teacher(name: str) -> Run:
    """The teacher run (a folder or a shipped name) as its torch network (the float network
    it was trained as, whose resampling step can be removed), without that step; a run that
    cannot give probabilities is refused by name."""
    from ferkit.models import load_run
    from ferkit.models.resampling import without_resampling

    try:
        run = without_resampling(load_run(name, backend="torch"))
    except FerkitError as exc:
        raise FerkitError(f"teacher {name}: {exc}") from exc
    if not hasattr(run.estimator, "predict_proba"):
        raise FerkitError(f"teacher {name} ({run.path}): gives no probabilities to learn from")
    return run


def class_columns(run: Run, canonical: list[str]) -> list[int]:
    """For each student class (canonical name), its column in the teacher's output (also how
    ``benchmarks/ensemble.py`` lines up models with extra classes)."""
    missing = [c for c in canonical if c not in run.canonical]
    if missing:
        raise FerkitError(
            f"teacher {run.name} ({run.path}) has no class {missing[0]!r}; it knows "
            f"{', '.join(run.canonical)}: a teacher must know every class the student learns"
        )
    return [run.canonical.index(c) for c in canonical]


def on_classes(probs: np.ndarray, columns: list[int]) -> np.ndarray:
    """Probabilities ``(n, classes)`` kept to ``columns`` (:func:`class_columns`) and renormalised:
    a teacher's, or an ensemble member's, answer over the classes it is compared on."""
    kept = np.asarray(probs, dtype=np.float64)[:, columns]
    return kept / np.maximum(kept.sum(axis=1, keepdims=True), 1e-12)


def _probabilities(run: Run, prepared: PreparedData, progress: bool) -> np.ndarray:
    """``run``'s probabilities over the student's classes (renormalised) on the train images."""
    columns = class_columns(run, prepared.canonical)
    images = prepared.x_train.numpy()
    parts = []
    chunks = range(0, len(images), CHUNK)
    for start in tqdm(chunks, disable=not progress, desc=f"teacher {run.name}", unit="chunk"):
        batch = _in_format(images[start : start + CHUNK], run.image_size, run.color)
        parts.append(on_classes(run.estimator.predict_proba(batch), columns))
    return np.concatenate(parts)


def _in_format(images: np.ndarray, size: int, color: str) -> np.ndarray:
    """uint8 NHWC images in another run's size and colour, converted as the data layer decodes
    a file (:func:`~ferkit.faces.images.whole_image_crop`); unchanged when they already fit."""
    channels = 1 if color == "gray" else 3
    if images.shape[1:] == (size, size, channels):
        return images
    return np.stack([whole_image_crop(image, size, color) for image in images])


def _key(identities: list[dict[str, Any]], prepared: PreparedData) -> str:
    """What the saved targets depend on: each teacher (folder and weights checksum), the
    student's classes and the training images and labels (their SHA-256)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(prepared.x_train.numpy()).tobytes())
    digest.update(np.ascontiguousarray(prepared.y_train.numpy()).tobytes())
    teachers = [{k: t[k] for k in ("path", "weights_sha256")} for t in identities]
    record: dict[str, Any] = {
        "teachers": teachers, "classes": prepared.canonical, "data_sha256": digest.hexdigest()
    }  # fmt: skip
    return json.dumps(record, sort_keys=True)


def _saved(path: Path) -> tuple[str, torch.Tensor] | None:
    """The key and targets a run saved at ``path``, read once; None when there are none or
    the file is unreadable (they are computed again)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as saved:
            return (saved.metadata() or {}).get("key", ""), saved.get_tensor("targets")
    except (OSError, SafetensorError, KeyError):
        return None


def _usable(targets: torch.Tensor, shape: tuple[int, int]) -> bool:
    """Saved targets of the expected shape, all finite."""
    return tuple(targets.shape) == shape and bool(torch.isfinite(targets).all())


class Teachers(nn.Module):
    """The teachers of ``--distill-views augmented`` as one module: a batch normalised as the
    student's input -> the teachers' mean probabilities over the student's classes.

    Each teacher's input is the same view renormalised with its own statistics (an affine map
    of the student's), scored as a single view (no flip averaging: the student's view is the
    one to describe); its columns are the student's classes, renormalised. Teachers stay in
    eval mode and never learn (``train()`` leaves them so)."""

    scales: torch.Tensor
    shifts: torch.Tensor

    def __init__(
        self, runs: list[Run], canonical: list[str], mean: list[float], std: list[float]
    ) -> None:
        super().__init__()
        self.nets = nn.ModuleList(run.estimator.model for run in runs)
        self.columns = [class_columns(run, canonical) for run in runs]
        # teacher i's input from the student's: x * scales[i] + shifts[i], (teachers, C, 1, 1)
        student_mean, student_std = torch.tensor(mean), torch.tensor(std)
        their_means = torch.stack([run.estimator.mean.flatten() for run in runs])
        their_stds = torch.stack([run.estimator.std.flatten() for run in runs])
        shifts = (student_mean - their_means) / their_stds
        self.register_buffer("scales", (student_std / their_stds)[..., None, None].float())
        self.register_buffer("shifts", shifts[..., None, None].float())
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Teachers:
        """Teachers are always in eval mode (BatchNorm's running statistics, no dropout)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(x), len(self.columns[0]), device=x.device)
        for i, (net, columns) in enumerate(zip(self.nets, self.columns, strict=True)):
            view = x * self.scales[i : i + 1] + self.shifts[i : i + 1]
            probs = torch.softmax(net(view, flip=False).float(), dim=1)[:, columns]
            total += probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return total / len(self.nets)


def online_teachers(
    teachers: list[str], prepared: PreparedData, out: Path, resuming: bool = False
) -> tuple[Teachers, list[dict[str, Any]]]:
    """The teachers as a :class:`Teachers` module for ``prepared``'s input, and their
    identities (saved in ``out``; ``resuming`` refuses a teacher whose weights changed since
    the run started, as :func:`teacher_targets` does). A teacher of another input size or
    colour, or one that is not a network, is refused by name."""
    runs = [_load_teacher(name) for name in teachers]
    for name, run in zip(teachers, runs, strict=True):
        _check_input(name, run, prepared)
    identities = [_identity(name, run) for name, run in zip(teachers, runs, strict=True)]
    path = out / TEACHERS
    if resuming and path.is_file():
        _same_teachers(path, path.read_text(), identities)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(path, {"teachers": identities})
    module = Teachers(runs, prepared.canonical, prepared.mean, prepared.std)
    return module, identities


def _check_input(name: str, run: Run, prepared: PreparedData) -> None:
    """An augmented view is handed to the teacher as it is: it must be a network taking the
    student's input size and colour."""
    if not isinstance(getattr(run.estimator, "model", None), nn.Module):
        raise FerkitError(
            f"teacher {name} ({run.path}): not a network; --distill-views augmented needs "
            "networks (use --distill-views clean)"
        )
    if (run.image_size, run.color) != (prepared.image_size, prepared.color):
        raise FerkitError(
            f"teacher {name} ({run.path}) takes {run.image_size}x{run.image_size} {run.color} "
            f"images, the student {prepared.image_size}x{prepared.image_size} {prepared.color}: "
            "--distill-views augmented needs teachers of the student's input (use "
            "--distill-views clean, which converts the images)"
        )
