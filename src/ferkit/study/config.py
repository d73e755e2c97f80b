"""What decides a study: the options of ``ferkit study`` and the mode presets behind them.

Everything here is plain data, so a stage can put the settings that shape its outputs into its
``stage.json`` and a re-run can tell "same work, skip it" from "settings changed, redo it".
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from ferkit.options import GROUP_BY_HELP, option, to_argv
from ferkit.training.recipes import NOTEBOOK, OLD_NAMES, current_name, recipe

Recipe = Literal["notebook", "ferkit"]  # ferkit.training.recipes.RECIPES
SvmMethod = Literal["exact", "pca", "fast"]  # ferkit.training.svm.Method

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
NOTEBOOK_FIGURES: list[tuple[str, str | None, float]] = [
    ("raw-pixel SVM", "svm-raw", 0.364),
    ("ResNet18-feature SVM (img2vec, ImageNet)", None, 0.433),
    ("HOG SVM", "svm-hog", 0.507),
    ("CNN-10", "cnn10", 0.555),
    ("ConvNet", "convnet", 0.629),
    ("ResNet50 (ImageNet, fine-tuned)", "resnet50", 0.694),
    ("happy-vs-sad ConvNet", "happy-sad", 0.931),
]


def _model_args(value: dict[str, dict[str, Any]]) -> list[str]:
    """``{"fernet": {"width": 0.5}}`` -> ``["--arg=fernet:width=0.5"]``, as ``--arg`` parses it."""
    return [
        f"--arg={m}:{k}={_arg_value(v)}" for m, kwargs in value.items() for k, v in kwargs.items()
    ]


@dataclass
class StudyConfig:
    """Options of one study; ``None`` sizes and epochs come from the quick or full preset.

    The one declaration of ``ferkit study``'s settings (:mod:`ferkit.options`): each field is
    an option of that name (``model_kwargs``: ``--arg model:key=value``), a key of its
    ``--config`` file, and :meth:`command` writes the command line back."""

    data: Path = option(cli=False, help="Dataset folder, data.yaml or FER2013 CSV.")
    out: Path = option(cli=False, help="Study folder (resumable).")
    quick: bool = option(False, help="~2,000 train / 800 val images, 3 epochs, small search.")
    recipe: Recipe = option(
        NOTEBOOK, aliases=OLD_NAMES,
        help="How every network is trained: notebook (the notebook's; 'seed' is its "
        "deprecated old name) or ferkit (ours).",
    )  # fmt: skip
    models: list[str] = option(
        factory=lambda: list(DEFAULT_MODELS), help="Networks, comma-separated."
    )
    features: list[str] = option(
        factory=lambda: list(DEFAULT_FEATURES),
        help="SVM features, comma-separated (raw, hog, landmarks, embedding).",
    )
    seed: int = option(0, help="Seed for sampling, searches and training.")
    epochs: int | None = option(None, min=1, help="Epochs (quick 3, full 50).")
    max_train: int | None = option(None, min=10, help="Train images kept.")
    max_val: int | None = option(None, min=10, help="Validation images kept.")
    search_size: int | None = option(
        None, min=10, help="SVM grid-search samples (quick 400, full 2000)."
    )
    # None: the recipe's (notebook 32: 64 gives 3 quick epochs too few steps to learn)
    batch_size: int | None = option(
        None, min=2, help="Network batch size (the recipe's: notebook 32)."
    )
    image_size: int | None = option(  # None: the data's size, at most MAX_AUTO_SIZE
        None, min=16, help="Image side for every model (default: the data's, at most 96)."
    )
    explain_images: int = option(4, min=1, help="Images explained.")
    threads: int | None = option(
        None, min=1, help="Torch threads for training (default: the cores usable here)."
    )
    group_by: str | None = option(None, help=GROUP_BY_HELP)  # subject regex of a held-out val
    happy_sad: bool = option(True, help="Train the happy-vs-sad ConvNet.")
    dedupe: bool = option(  # drop train images that duplicate a val/test image
        False, help="Drop train images that duplicate (exactly or nearly) a val/test image."
    )
    model_kwargs: dict[str, dict[str, Any]] = option(
        factory=dict, flag="--arg", argv=_model_args,
        help="Network argument model:key=value, e.g. fernet:width=0.5.",
    )  # fmt: skip
    embed_samples: int | None = option(
        None, min=5, help="Images in the inspection's PCA / t-SNE views (quick 500, full 1000)."
    )
    svm_method: SvmMethod = option(
        "pca", help="SVM method (ferkit svm --method): pca, exact or fast."
    )
    patience: int | None = option(  # None: the recipe's (notebook 8)
        None, min=1, help="Early-stopping patience of the networks (the recipe's: notebook 8)."
    )

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.out = Path(self.out)
        # "seed" warns, becomes "notebook"
        self.recipe = cast(Recipe, current_name(self.recipe, "recipe"))
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
        return shlex.join(["ferkit", "study", str(self.data), "--out", str(self.out),
                           *self.to_argv()])  # fmt: skip

    def to_argv(self) -> list[str]:
        """The ``ferkit study`` options of this config (DATA and ``--out`` apart): those off
        the defaults of its mode and recipe, ``--quick`` and ``--recipe`` when they are set."""
        preset = StudyConfig(self.data, self.out, quick=self.quick, recipe=self.recipe)
        return to_argv(self, base=replace(preset, quick=False, recipe="notebook"))


def _arg_value(value: Any) -> str:
    """A network argument as ``--arg`` parses it back (JSON, or the bare string)."""
    return value if isinstance(value, str) else json.dumps(value)
