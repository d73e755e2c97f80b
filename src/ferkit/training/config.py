"""What decides a training run, and what it trains on: the types every training module shares.

They live apart from :mod:`ferkit.training.deep` (which loads data and starts workers) so the
loop, the DDP launcher, tuning and the CLI can import them without importing each other: the
package's imports form a chain, ``config`` -> ``loop`` -> ``worker`` -> ``distributed`` ->
``deep`` -> ``tune``, with no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ferkit.data.balance import SEED_MARGIN
from ferkit.data.sharpness import MODES as SHARPNESS_MODES
from ferkit.errors import FerkitError, OptionError, did_you_mean
from ferkit.training.checkpoint import CHECKPOINT, SIDECAR
from ferkit.training.recipes import current_name

__all__ = [
    "BALANCING",
    "CHECKPOINT",
    "SIDECAR",
    "TTA_MODES",
    "PreparedData",
    "TrainConfig",
    "resolve_device",
]

BALANCING = ("none", "undersample", "weights")
TTA_MODES = ("none", "flip")  # test-time augmentation recorded in the saved architecture


@dataclass
class TrainConfig:
    """Everything that decides a training run; stored in the checkpoint and ``train.json``."""

    model: str = "fernet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    color: str | None = None
    classes: list[str] | None = None
    class_names: str | None = None  # numbered class folders: a preset (rafdb) or 1=surprise,...
    balance: str = "undersample"
    margin: int = SEED_MARGIN
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "plateau"
    plateau_factor: float = 0.1
    plateau_patience: int = 3
    patience: int = 8
    augment: str = "notebook"  # the notebook's; "seed" is its old name
    label_smoothing: float = 0.0
    mixup: float = 0.0
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    channels_last: bool = True
    train_split: str = "train"
    val_split: str = "val"
    max_train: int | None = None
    group_by: str | None = None  # no val split: subject regex of the hold-out (ferkit.data.groups)
    init: str | None = None
    threads: int | None = None
    nproc: int = 1
    match_sharpness: str = "auto"
    tta: str = "none"  # "flip": evaluate on each image and its mirror (validation included)
    dedupe: bool = False  # drop train images that duplicate a validation/test image

    def __post_init__(self) -> None:
        self.augment = current_name(self.augment, "augment")  # "seed" warns, becomes "notebook"

    def check(self) -> None:
        """Reject impossible settings before any data is loaded."""
        from ferkit.models.nets import list_models
        from ferkit.training.augment import AUGMENTATIONS

        if self.model not in list_models():
            raise FerkitError(
                f"unknown model {self.model!r}{did_you_mean(self.model, list_models())} "
                f"(known: {', '.join(list_models())})"
            )
        checks = [
            (self.balance in BALANCING, f"balance must be one of {', '.join(BALANCING)}"),
            (self.augment in AUGMENTATIONS, f"augment must be one of {', '.join(AUGMENTATIONS)}"),
            (self.optimizer in ("adam", "adamw", "sgd"), "optimizer must be adam, adamw or sgd"),
            (self.schedule in ("plateau", "cosine"), "schedule must be plateau or cosine"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 2, "batch size must be at least 2"),
            (self.lr > 0, "learning rate must be positive"),
            (self.nproc >= 1, "nproc must be at least 1"),
            (self.batch_size % self.nproc == 0, "batch size must be divisible by nproc"),
            (self.color in (None, "gray", "rgb"), "color must be gray or rgb"),
            (0.0 <= self.label_smoothing < 1.0, "label smoothing must be in [0, 1)"),
            (self.mixup >= 0.0, "mixup must be >= 0"),
            (self.tta in TTA_MODES, f"tta must be one of {', '.join(TTA_MODES)}"),
            (
                self.match_sharpness in SHARPNESS_MODES,
                f"match_sharpness must be one of {', '.join(SHARPNESS_MODES)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise FerkitError(message)


@dataclass
class PreparedData:
    """Train/validation pixels and labels as shared tensors, plus what the card needs."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: list[str]
    canonical: list[str]
    image_size: int
    color: str
    mean: list[float]
    std: list[float]
    loss_weights: list[float] | None
    info: dict[str, Any]
    sharpness_target: float | None = None
    val_source: torch.Tensor | None = None  # several datasets: each val sample's dataset
    sources: list[str] = field(default_factory=list)  # their names, indexed by val_source


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FerkitError("device cuda requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as exc:  # torch's "Expected one of cpu, cuda, ... device type"
        raise OptionError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
