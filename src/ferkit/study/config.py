"""What decides a study: the options of ``ferkit study`` and the mode presets behind them.

Everything here is plain data, so a stage can put the settings that shape its outputs into its
``stage.json`` and a re-run can tell "same work, skip it" from "settings changed, redo it".
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.training.recipes import NOTEBOOK, current_name, recipe

DEFAULT_MODELS = ("cnn10", "convnet", "fernet")
DEFAULT_FEATURES = ("raw", "hog")
HAPPY_SAD = ("happy", "sad")
HAPPY_SAD_MODEL = "convnet"  # the notebook's happy-vs-sad network

# Networks and SVMs run at the data's own size up to this (the notebook's AffectNet size): a 224-px
# dataset would cost ~5x the CPU time per image for little gain on expression crops.
MAX_AUTO_SIZE = 96

# --quick: sized to finish on 2 CPU cores in about 15 minutes on affectnet_yolo (96x96 RGB).
QUICK = {"max_train": 2000, "max_val": 800, "epochs": 3, "search_size": 400, "embed_samples": 500}
# full mode: the notebook's settings (all the data, early stopping on validation accuracy).
FULL = {
    "max_train": None,
    "max_val": None,
    "epochs": 50,
    "search_size": 2000,
    "embed_samples": 1000,
}

# The notebook's accuracies, on AffectNet's withheld *test* split (not shipped here): shown
# beside ours for orientation only. Keys are study run names; None = no ferkit counterpart run.
SEED_FIGURES: list[tuple[str, str | None, float]] = [
    ("raw-pixel SVM", "svm-raw", 0.364),
    ("ResNet18-feature SVM (img2vec, ImageNet)", None, 0.433),
    ("HOG SVM", "svm-hog", 0.507),
    ("CNN-10", "cnn10", 0.555),
    ("ConvNet", "convnet", 0.629),
    ("ResNet50 (ImageNet, fine-tuned)", "resnet50", 0.694),
    ("happy-vs-sad ConvNet", "happy-sad", 0.931),
]


@dataclass
class StudyConfig:
    """Options of one study; ``None`` sizes and epochs come from the quick or full preset."""

    data: Path
    out: Path
    quick: bool = False
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    seed: int = 0
    epochs: int | None = None
    max_train: int | None = None
    max_val: int | None = None
    search_size: int | None = None
    embed_samples: int | None = None
    svm_method: str = "pca"
    recipe: str = NOTEBOOK  # how every network is trained (ferkit.training.recipes)
    batch_size: int | None = None  # None: the recipe's (notebook 32: 64 gives 3 quick epochs too
    patience: int | None = None  # few steps to learn); None: the recipe's (notebook 8)
    happy_sad: bool = True
    explain_images: int = 4
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int | None = None
    image_size: int | None = None  # None: the data's size, at most MAX_AUTO_SIZE
    dedupe: bool = False  # drop train images that duplicate a val/test image
    group_by: str | None = None  # subject regex for a held-out val (ferkit.data.groups)

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.out = Path(self.out)
        self.recipe = current_name(self.recipe, "recipe")  # "seed" warns, becomes "notebook"
        preset = QUICK if self.quick else FULL
        trained = recipe(self.recipe)  # an unknown recipe fails here, before any work
        preset = {**preset, "batch_size": trained["batch_size"], "patience": trained["patience"]}
        for key, value in preset.items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    def describe(self) -> dict[str, Any]:
        """The settings as JSON-ready data (the study's own record)."""
        return {
            "data": str(self.data),
            "out": str(self.out),
            "mode": "quick" if self.quick else "full",
            "models": self.models,
            "features": self.features,
            "seed": self.seed,
            "epochs": self.epochs,
            "max_train": self.max_train,
            "max_val": self.max_val,
            "search_size": self.search_size,
            "embed_samples": self.embed_samples,
            "svm_method": self.svm_method,
            "recipe": self.recipe,
            "batch_size": self.batch_size,
            "patience": self.patience,
            "happy_sad": self.happy_sad,
            "explain_images": self.explain_images,
            "model_kwargs": self.model_kwargs,
            "image_size": self.image_size,
            "threads": self.threads,
            "dedupe": self.dedupe,
            "group_by": self.group_by,
            "command": self.command(),
        }

    def command(self) -> str:
        """The ``ferkit study`` command that makes (or resumes) this study, options at their
        default left out: the report's first command, so the whole study can be re-run by hand."""
        base = StudyConfig(self.data, self.out, quick=self.quick, recipe=self.recipe)
        parts = ["ferkit", "study", str(self.data), "--out", str(self.out)]
        parts += ["--quick"] if self.quick else []
        parts += ["--recipe", self.recipe] if self.recipe != NOTEBOOK else []
        for key, option in CLI_OPTIONS.items():
            value = getattr(self, key)
            if value != getattr(base, key):
                text = ",".join(value) if isinstance(value, list) else str(value)
                parts += [option, text]
        parts += [] if self.happy_sad else ["--no-happy-sad"]
        parts += ["--dedupe"] if self.dedupe else []
        for model, kwargs in self.model_kwargs.items():
            parts += [f"--arg={model}:{k}={_arg_value(v)}" for k, v in kwargs.items()]
        return shlex.join(parts)


def _arg_value(value: Any) -> str:
    """A network argument as ``--arg`` parses it back (JSON, or the bare string)."""
    return value if isinstance(value, str) else json.dumps(value)


# StudyConfig field -> its ``ferkit study`` option (flags and --arg are handled apart)
CLI_OPTIONS = {
    "models": "--models",
    "features": "--features",
    "seed": "--seed",
    "epochs": "--epochs",
    "max_train": "--max-train",
    "max_val": "--max-val",
    "search_size": "--search-size",
    "batch_size": "--batch-size",
    "image_size": "--image-size",
    "explain_images": "--explain-images",
    "threads": "--threads",
    "group_by": "--group-by",
}
