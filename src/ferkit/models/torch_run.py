"""Neural-network runs: safetensors weights + the JSON card, and a predictor over uint8 images.

Weights are stored with safetensors (a header + raw tensors: loading cannot execute code, unlike
pickle-based ``torch.save``). The card records the architecture (registry name + constructor
arguments), the normalisation and a SHA-256 of the weights file, so a run rebuilds its network
from the registry and refuses a weights file that was altered after training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch.overrides import TorchFunctionMode

from ferkit import __version__, io
from ferkit.errors import FerkitError, ModelFileError
from ferkit.models.card import CARD_VERSION, FORMAT, ModelCard
from ferkit.models.checks import (
    CARD,
    MAX_IMAGE_SIZE,
    card_file,
    checked_bytes,
    expected_sha256,
    sha256,
)
from ferkit.models.nets.resample import MAX_VIA

if TYPE_CHECKING:  # the nets are imported when a network is built, not with this module
    from ferkit.models.nets.base import Network

WEIGHTS_FILE = "model.safetensors"
# A network over either budget is refused before any real allocation: ferkit's largest family
# (resnet50) has 24M parameters, so these leave room while stopping a card that asks for
# petabytes (``width: 1e6``).
MAX_PARAMETERS = 200_000_000
MAX_BYTES = 4 * 2**30
# Inclusive (low, high) ranges of every architecture value a card may carry; None: a float
# range open at the low end (dropout and width must be above it).
_INT_RANGES = {
    "num_classes": (2, 10_000),
    "in_channels": (1, 3),
    "image_size": (1, MAX_IMAGE_SIZE),
    "dense_units": (1, 65_536),
    "depth": (1, 16),
    "stem": (1, MAX_IMAGE_SIZE),
    "resample_via": (2, MAX_VIA),
}
PREFILTER_KWARGS = ("sharpness_target", "resample_via")
_FLOAT_RANGES = {"width": (0.0, 16.0), "sharpness_target": (0.0, 1e6)}
_RATES = ("dropout", "conv_dropout")


def _check_value(key: str, value: Any) -> None:
    """One architecture value against its range (unknown options are the registry's job)."""
    low: float
    high: float
    if key in _INT_RANGES:
        low, high = _INT_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise FerkitError(
                f"architecture {key} must be an integer in [{low}, {high}], got {value!r}"
            )
    elif key in _FLOAT_RANGES:
        low, high = _FLOAT_RANGES[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not low < value <= high:
            raise FerkitError(
                f"architecture {key} must be a number in ({low:g}, {high:g}], got {value!r}"
            )
    elif key in _RATES:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 <= value < 1:
            raise FerkitError(f"architecture {key} must be a number in [0, 1), got {value!r}")
    elif key == "flip_average" and not isinstance(value, bool):
        raise FerkitError(f"architecture flip_average must be true or false, got {value!r}")


def check_architecture(config: Any) -> dict[str, Any]:
    """``config`` with every value type- and range-checked, before anything is built.

    A tampered card must fail with a message here, not make torch allocate what it asks for.
    """
    if not isinstance(config, dict):
        raise FerkitError(f"architecture must be a JSON object, got {type(config).__name__}")
    for key in ("name", "num_classes", "in_channels", "image_size"):
        if key not in config:
            raise FerkitError(f"architecture lacks {key!r}")
    if not isinstance(config["name"], str):
        raise FerkitError(f"architecture name must be a string, got {config['name']!r}")
    kwargs = config.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise FerkitError(f"architecture kwargs must be a JSON object, got {kwargs!r}")
    for key in ("num_classes", "in_channels", "image_size"):
        _check_value(key, config[key])
    for key, value in kwargs.items():
        _check_value(str(key), value)
    return {**config, "kwargs": dict(kwargs)}


class _NoMetaNormal(TorchFunctionMode):
    """Leaves ``Tensor.normal_`` undone on meta tensors (which hold no values to fill).

    torch has no meta kernel for ``normal_``: it runs a Python reference whose first call
    imports torch._dynamo, about 1 s of CPU added to every load of a kaiming-initialised run.
    """

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        if func is torch.Tensor.normal_ and args and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def _check_budget(config: dict[str, Any]) -> None:
    """Build the network on torch's meta device (no memory) and refuse one over budget."""
    from ferkit.models.nets import create_model

    # the prefilters compute their (weightless, size-bounded) blur and resize matrices from
    # real values, which the meta device has not: they are left out of the count
    kwargs = {k: v for k, v in config["kwargs"].items() if k not in PREFILTER_KWARGS}
    with torch.device("meta"), _NoMetaNormal():
        meta = create_model(
            config["name"],
            config["num_classes"],
            config["in_channels"],
            config["image_size"],
            **kwargs,
        )
    tensors = [*meta.parameters(), *meta.buffers()]
    count = sum(t.numel() for t in tensors)
    size = sum(t.numel() * t.element_size() for t in tensors)
    if count > MAX_PARAMETERS or size > MAX_BYTES:
        raise FerkitError(
            f"architecture {config['name']!r} would have {count:,} parameters "
            f"({size / 2**30:.1f} GiB); the limit is {MAX_PARAMETERS:,} "
            f"({MAX_BYTES / 2**30:.0f} GiB)"
        )


def build_network(config: Any) -> Network:
    """Rebuild a registered network from its ``config`` (as ``Network.config`` gives it).

    Every value is range-checked and the size measured on the meta device first, so a
    tampered card is a FerkitError instead of an allocation of whatever it asks for.
    """
    from ferkit.models.nets import create_model

    config = check_architecture(config)
    _check_budget(config)
    return create_model(
        config["name"],
        config["num_classes"],
        config["in_channels"],
        config["image_size"],
        **config["kwargs"],
    )


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    """The model's tensors as safetensors bytes (contiguous CPU copies, fp32 kept as is)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata={"format": "pt", "producer": f"ferkit {__version__}"})


def save_torch_run(run_dir: str | Path, model: torch.nn.Module, card: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``model.json`` atomically into ``run_dir``.

    ``card`` needs classes, canonical, image_size, color, mean and std; the architecture comes
    from ``model.config``.
    """
    required = {"classes", "canonical", "image_size", "color", "mean", "std"}
    if missing := required - set(card):
        raise ValueError(f"model card lacks {sorted(missing)}")
    run_dir = Path(run_dir)
    data = state_dict_bytes(model)
    io.write_bytes(run_dir / WEIGHTS_FILE, data)
    full = {
        "format": FORMAT,
        "card_version": CARD_VERSION,
        "kind": "torch",
        "ferkit_version": __version__,
        "weights": WEIGHTS_FILE,
        "weights_sha256": sha256(data),
        "architecture": model.config,
        **card,
    }
    io.write_json(run_dir / CARD, ModelCard.from_dict(full, run_dir / CARD).to_dict())
    return run_dir


def load_weights(path: Path, expected: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file whose bytes match the SHA-256 ``expected``; a damaged or
    altered file is a clear FerkitError. Parses the very bytes that were hashed."""
    data = checked_bytes(path, expected)
    return parse_safetensors(data, path)


def parse_safetensors(data: bytes, source: Path) -> dict[str, torch.Tensor]:
    """The tensors in safetensors ``data`` (header + raw tensors: no code runs)."""
    try:
        return load(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{source}: not a readable safetensors file: {exc}") from exc


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``tensors`` strictly; missing/unexpected keys or shape mismatches name the file."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    wrong = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or extra or wrong:
        raise ModelFileError(
            f"{source}: weights do not fit the architecture "
            f"(missing {missing[:5]}, unexpected {extra[:5]}, wrong shape {wrong[:5]})"
        )
    model.load_state_dict(tensors)


class TorchClassifier:
    """Predicts from uint8 (N, H, W, C) images the way the network was trained to see them.

    Holds the network in eval mode; batches the input so memory stays flat on big splits.
    ``flip=False`` asks a flip-averaged network (``flip_average``) for its single view on
    every call without changing the network (see :func:`ferkit.models.flip.single_view`).
    """

    backend = "torch"
    flip = True

    def __init__(
        self,
        model: torch.nn.Module,
        mean: list[float],
        std: list[float],
        batch_size: int = 256,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.batch_size = batch_size

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """Normalised float NCHW tensor of uint8 NHWC images."""
        return to_input(images, self.mean, self.std).to(self.device)

    @torch.no_grad()
    def _batched(self, images: np.ndarray, fn: str) -> np.ndarray:
        outputs = []
        for start in range(0, len(images), self.batch_size):
            x = self.to_tensor(images[start : start + self.batch_size])
            options = {} if self.flip else {"flip": False}
            call = self.model if fn == "forward" else getattr(self.model, fn)
            out = call(x, **options)
            outputs.append(out.float().cpu())
        if not outputs:
            return np.zeros((0, 0), dtype=np.float32)
        return torch.cat(outputs).numpy()

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, classes)."""
        logits = self._batched(images, "forward")
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1) if len(images) else np.zeros(0, int)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer features (the input of the classifier head)."""
        return self._batched(images, "embed")


def to_input(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1], then standardised with the training statistics."""
    if images.ndim != 4:
        raise FerkitError(f"expected (N, H, W, C) images, got shape {images.shape}")
    # astype copies (as .float() did): a read-only array (a decoded cache, an image from a
    # file) is never handed to torch, which warns about non-writable memory
    x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2) / 255.0
    return (x - mean) / std


def load_torch_estimator(run_dir: Path, card: Mapping[str, Any]) -> TorchClassifier:
    """The card's network with its checked weights, ready to predict."""
    card_path = run_dir / "model.json"
    if "architecture" not in card:
        raise ModelFileError(f"{card_path}: card lacks 'architecture'")
    try:
        model = build_network(card["architecture"])
    except FerkitError as exc:
        raise ModelFileError(f"{card_path}: {exc}") from exc
    arch = card["architecture"]
    channels = arch["in_channels"]
    if arch["num_classes"] != len(card["classes"]) or channels != (
        1 if card["color"] == "gray" else 3
    ):
        raise ModelFileError(
            f"{card_path}: the architecture ({arch['num_classes']} classes, {channels} "
            f"channel(s)) does not match the card ({len(card['classes'])} classes, "
            f"{card['color']})"
        )
    for key in ("mean", "std"):
        value: Any = card.get(key)
        numbers = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
        if not numbers or len(value) != channels or (key == "std" and min(value) <= 0):
            raise ModelFileError(
                f"{card_path}: {key} must be a list of {channels} finite numbers"
                f"{' > 0' if key == 'std' else ''}, got {value!r}"
            )
    weights = card_file(run_dir, card.get("weights", WEIGHTS_FILE), "weights")
    load_state(model, load_weights(weights, expected_sha256(run_dir, card)), weights)
    return TorchClassifier(model, card["mean"], card["std"])
