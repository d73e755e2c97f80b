"""What decides a training run, an SVM fit and a tuning search, and what a run trains on: the
types every training module shares.

They live apart from :mod:`ferkit.training.deep` (which loads data and starts workers) so the
loop, the DDP launcher, tuning and the CLI can import them without importing each other: the
package's imports form a chain, ``config`` -> ``loop`` -> ``callbacks`` -> ``worker`` ->
``distributed`` -> ``deep`` -> ``tune``, with no cycle (the ``[tool.importlinter]`` contracts in
pyproject.toml check it). The module imports neither torch, scikit-learn nor Optuna: the CLI
reads its options' help, defaults, limits and choices from these dataclasses when it starts
(``ferkit predict`` and ``ferkit --help`` too), so :class:`SVMConfig` and :class:`TuneConfig`
live here rather than beside the code that needs those libraries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from ferkit.errors import FerkitError, OptionError, did_you_mean
from ferkit.options import (
    GROUP_BY_HELP,
    NOTEBOOK_MARGIN,
    SHARPNESS_HELP,
    Color,
    Sharpness,
    json_pairs,
    option,
    to_argv,
)
from ferkit.training.recipes import OLD_NAMES, current_name

if TYPE_CHECKING:
    import torch

__all__ = [
    "BALANCING",
    "CHECKPOINT",
    "CLASS_NAMES_HELP",
    "EMA_MAX",
    "NOTEBOOK_MAX_EPOCHS",
    "SIDECAR",
    "TTA_MODES",
    "PreparedData",
    "SVMConfig",
    "TrainConfig",
    "TuneConfig",
    "resolve_device",
]

# A run folder's training checkpoint (last epoch) and the SHA-256 record it must match before
# ``torch.load(weights_only=True)`` opens it (:mod:`ferkit.training.checkpoint`).
CHECKPOINT = "checkpoint.pt"
SIDECAR = "checkpoint.sha256.json"

CLASS_NAMES_HELP = (
    "Class folders not named by emotion: a preset (rafdb: RAF-DB's 1-7; fer2013: "
    "0-6) or FOLDER=EMOTION pairs, e.g. 1=surprise,2=fear."
)


Balance = Literal["undersample", "weights", "none"]
Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["plateau", "cosine"]
Augment = Literal["none", "notebook", "strong"]  # ferkit.training.augment.AUGMENTATIONS
Tta = Literal["none", "flip"]
DistillViews = Literal["clean", "augmented"]

# The largest --ema decay: 1 would never move the average (a horizon of 1e6 steps already
# outlasts any run here).
EMA_MAX = 0.999999

BALANCING: tuple[str, ...] = get_args(Balance)
TTA_MODES: tuple[str, ...] = get_args(Tta)  # test-time augmentation recorded in the architecture


@dataclass
class TrainConfig:
    """Everything that decides a training run; stored in the checkpoint and ``train.json``.

    The one declaration of ``ferkit train``'s settings (:mod:`ferkit.options`): each field is an
    option of that name (``image_size``: ``--size``; ``model_kwargs``: ``--arg key=value``), a
    key of its ``--config`` file, and :meth:`to_argv` writes the command line back."""

    model: str = option("fernet", help="Registered network (see `ferkit models`).")
    model_kwargs: dict[str, Any] = option(
        factory=dict, flag="--arg", argv=json_pairs("--arg"),
        help="Network argument key=value (repeatable).",
    )  # fmt: skip
    image_size: int | None = option(None, flag="--size", min=8, max=1024, help="Image side.")
    color: Color | None = option(None, help="Decode as rgb or gray.")
    classes: list[str] | None = option(
        None, help="Comma-separated class subset, e.g. happiness,sadness."
    )
    class_names: str | None = option(None, help=CLASS_NAMES_HELP)
    balance: Balance = option(
        "undersample", help="undersample (the notebook's, largest - margin), weights or none."
    )
    margin: int = option(NOTEBOOK_MARGIN, help="Undersampling margin.")
    epochs: int = option(50, min=1, help="Maximum epochs.")
    batch_size: int = option(64, min=2, help="Global batch size.")
    lr: float = option(1e-3, help="Initial learning rate.")
    weight_decay: float = option(0.0, help="L2 / weight decay.")
    optimizer: Optimizer = option("adam", help="Optimiser.")
    schedule: Schedule = option(
        "plateau", help="plateau (ReduceLROnPlateau 0.1/3, the notebook's) or cosine."
    )
    plateau_factor: float = option(0.1, help="Learning-rate factor of the plateau schedule.")
    plateau_patience: int = option(3, help="Epochs without progress before plateau cuts it.")
    patience: int = option(8, help="Early-stopping patience (epochs).")
    augment: Augment = option(
        "notebook", aliases=OLD_NAMES,
        help="Training-image augmentation (notebook: the notebook's flip, rotation, zoom and "
        "shear; 'seed' is its deprecated old name).",
    )  # fmt: skip
    label_smoothing: float = option(0.0, help="Label smoothing.")
    mixup: float = option(0.0, help="Mixup alpha (0 = off).")
    ema: float = option(
        0.0, min=0.0, max=EMA_MAX,
        help="Decay of an exponential moving average of the weights and BatchNorm statistics, "
        "updated every step, e.g. 0.999 (0 = off): validation, early stopping and the saved "
        "model use the average.",
    )  # fmt: skip
    seed: int = option(0, help="Seed for sampling, init and augmentation.")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N.")
    bf16: bool = option(True, help="bf16 autocast (CPU AMX / CUDA).")
    channels_last: bool = option(True, help="channels-last memory format (faster convolutions).")
    train_split: str = option("train", help="Training split.")
    val_split: str = option("val", help="Validation split.")
    max_train: int | None = option(None, help="Use a stratified train subset.")
    group_by: str | None = option(None, help=GROUP_BY_HELP)
    init: str | None = option(None, help="Start from this run's weights.")
    threads: int | None = option(None, help="Torch threads per process.")
    nproc: int = option(1, min=1, help="DistributedDataParallel processes.")
    match_sharpness: Sharpness = option("auto", help=SHARPNESS_HELP)
    resample_via: int | None = option(
        None,
        help="Pass each test-time input through the resize round trip the training images "
        "went through: bicubic up to this side, area down (224 for ../shared/data/fer2013's "
        "rebuilt train split). Training images are left as they are.",
    )
    teacher: list[str] | None = option(
        None,
        help="Distil from these runs or shipped models (comma-separated): their averaged "
        "probabilities on each training image become soft targets beside its label.",
    )
    distill: float = option(
        0.5, min=0.0, max=1.0,
        help="With --teacher: the soft targets' weight in the loss (the label's is 1 minus it).",
    )  # fmt: skip
    distill_temperature: float = option(
        2.0, min=1.0, max=20.0,
        help="With --teacher: the temperature that softens teachers and student alike before "
        "they are compared (Hinton et al.'s T).",
    )  # fmt: skip
    distill_views: DistillViews = option(
        "clean",
        help="With --teacher: what the teachers score. clean: each training image once, "
        "before the first epoch (saved; cheap). augmented: each augmented (and mixed) view "
        "the student sees, at every step (consistent targets; a teacher pass per step; "
        "teachers must take the student's input size and colour).",
    )
    tta: Tta = option(
        "none",
        help="Test-time augmentation saved with the model: none, or flip (average each image "
        "with its mirror; twice the inference cost). Validation uses it too.",
    )
    dedupe: bool = option(
        False, help="Drop train images that duplicate (exactly or nearly) a val/test image."
    )

    def __post_init__(self) -> None:
        # "seed" warns, becomes "notebook"
        self.augment = cast(Augment, current_name(self.augment, "augment"))

    def to_argv(self, *, always: Iterable[str] = (), skip: Iterable[str] = ()) -> list[str]:
        """The ``ferkit train`` options that build this config (DATA and ``--out`` apart):
        the fields off their default, and those in ``always``."""
        return to_argv(self, always=always, skip=skip)

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
            (self.optimizer in get_args(Optimizer), "optimizer must be adam, adamw or sgd"),
            (self.schedule in get_args(Schedule), "schedule must be plateau or cosine"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 2, "batch size must be at least 2"),
            (self.lr > 0, "learning rate must be positive"),
            (self.nproc >= 1, "nproc must be at least 1"),
            (self.batch_size % self.nproc == 0, "batch size must be divisible by nproc"),
            (self.color in (None, *get_args(Color)), "color must be gray or rgb"),
            (0.0 <= self.label_smoothing < 1.0, "label smoothing must be in [0, 1)"),
            (self.mixup >= 0.0, "mixup must be >= 0"),
            (0.0 <= self.ema <= EMA_MAX, f"ema must be in [0, {EMA_MAX}] (a decay below 1)"),
            (self.tta in TTA_MODES, f"tta must be one of {', '.join(TTA_MODES)}"),
            (0.0 <= self.distill <= 1.0, "distill must be in [0, 1]"),
            (self.distill_temperature >= 1.0, "distill temperature must be at least 1"),
            (self.teacher is None or len(self.teacher) > 0, "teacher names no run"),
            (
                self.distill_views in get_args(DistillViews),
                f"distill_views must be one of {', '.join(get_args(DistillViews))}",
            ),
            (
                self.distill_views == "clean" or bool(self.teacher),
                "--distill-views augmented needs --teacher (the teachers that score the views)",
            ),
            # two gloo ranks with teachers' targets died of SIGABRT in 3 of ~30 test runs
            # (never without them); until that is understood, distillation is one process
            (
                not self.teacher or self.nproc == 1,
                "--teacher trains in one process: drop --nproc (distillation under "
                "DistributedDataParallel is not supported yet)",
            ),
            (
                self.resample_via is None or self.resample_via >= 2,
                "resample_via must be a side in pixels larger than the input size",
            ),
            (
                self.match_sharpness in get_args(Sharpness),
                f"match_sharpness must be one of {', '.join(get_args(Sharpness))}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise FerkitError(message)


Features = Literal["raw", "hog", "landmarks", "embedding", "cnn"]  # ferkit.features.EXTRACTORS
Method = Literal["exact", "pca", "fast"]  # ferkit.models.svm.SVMClassifier
Kernel = Literal["linear", "rbf"]


@dataclass
class SVMConfig:
    """The settings of ``ferkit svm``: the one declaration of its options (:mod:`ferkit.options`),
    as :func:`train_svm` takes them through :meth:`train_kwargs`."""

    features: Features = option("hog", help="Feature extractor.")
    network: str | None = option(
        None, help="For --features cnn: network run folder or shipped name."
    )
    method: Method = option(
        "pca",
        help="pca (SVC on PCA-256, the recommended path), exact SVC (the notebook's) or fast "
        "(PCA+Nystroem+linear).",
    )
    pca_components: int | None = option(
        None, min=1, help="Principal components for --method pca (256) or fast (512)."
    )
    kernel: Kernel = option("rbf", help="Kernel when not searching.")
    C: float = option(10.0, help="C when not searching.")
    gamma: str = option("scale", help="gamma when not searching.")
    search: bool = option(False, help="Grid-search kernel, C, gamma first.")
    search_on: str = option(
        "val", help="Split to search on (the notebook's: val), or 'train' for plain CV."
    )
    search_size: int = option(2000, min=10, help="Samples used by the search.")
    margin: int = option(NOTEBOOK_MARGIN, help="Undersample classes to largest - margin.")
    image_size: int | None = option(None, flag="--size", min=8, max=1024, help="Image side.")
    color: Color | None = option(None, help="Decode as rgb or gray.")
    match_sharpness: Sharpness = option("auto", help=SHARPNESS_HELP)
    dedupe: bool = option(
        False, help="Drop train images that duplicate (exactly or nearly) a val/test image."
    )
    group_by: str | None = option(
        None,
        help="Grid search: keep each subject in one CV fold, the subject being the first "
        "capture group of this regex in each item's path. Default: detected in the file "
        "names (CK+ S010_..., RaFD, subjectN, JAFFE, KDEF); 'none': plain stratified folds.",
    )
    seed: int = option(0, help="Seed for sampling and solvers.")

    def train_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`train_svm` these settings stand for (the fixed
        kernel, C and gamma only without a search, as the search chooses them)."""
        params = None if self.search else {
            "kernel": self.kernel, "C": self.C, "gamma": _number(self.gamma)
        }  # fmt: skip
        return {
            "features": self.features, "method": self.method, "search": self.search,
            "search_on": self.search_on, "search_size": self.search_size, "params": params,
            "margin": self.margin, "seed": self.seed, "image_size": self.image_size,
            "color": self.color, "pca_components": self.pca_components,
            "feature_params": {"run": self.network} if self.network else None,
            "match_sharpness": self.match_sharpness, "dedupe": self.dedupe,
            "group_by": self.group_by,
        }  # fmt: skip

    def to_argv(self, *, always: Iterable[str] = ()) -> list[str]:
        """The ``ferkit svm`` options that build this config (DATA and ``--out`` apart)."""
        return to_argv(self, always=always)


def _number(text: str) -> float | str:
    """gamma as sklearn takes it: a number, or a name (``scale``, ``auto``)."""
    try:
        return float(text)
    except ValueError:
        return text


NOTEBOOK_MAX_EPOCHS = 10  # the notebook's ``kt.Hyperband(..., max_epochs=10)``


@dataclass
class TuneConfig:
    """The settings of ``ferkit tune`` besides the base :class:`TrainConfig` (whose fields its
    ``--config`` file takes too): the one declaration of its own options (:mod:`ferkit.options`)."""

    model: str = option("seedcnn", help="Registered network.")
    trials: int = option(20, min=1, help="Total finished trials wanted.")
    max_epochs: int = option(NOTEBOOK_MAX_EPOCHS, min=1, help="Hyperband's epoch budget.")
    timeout: float | None = option(None, help="Stop starting trials after s.")
    seed: int = option(0, help="Sampler and training seed.")

    def to_argv(self) -> list[str]:
        """The ``ferkit tune`` options of these settings (off their default)."""
        return to_argv(self)


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
    # --teacher: each training image's soft target (N, classes), the teachers' mean probabilities
    soft_train: torch.Tensor | None = None
    # --teacher with --distill-views augmented: the teachers, scoring each augmented batch
    # (normalised student input -> mean probabilities over the classes)
    teachers: torch.nn.Module | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FerkitError("device cuda requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as exc:  # torch's "Expected one of cpu, cuda, ... device type"
        raise OptionError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
