"""A run folder holds one trained model: its weights and a JSON card that says how to feed it.

Model files must load without executing code, so scikit-learn models are saved with skops
(never pickle or joblib) and every type they contain is checked against an allow-list of the
estimator families ferkit itself builds before loading. The JSON card (``model.json``) carries
the classes, their canonical names and the preprocessing (image size, colour), so ``evaluate``
and ``predict`` can feed any dataset to any run.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio

from ferkit import __version__, io
from ferkit.data.dataset import Split
from ferkit.errors import FerkitError

CARD = "model.json"
SKOPS_FILE = "model.skops"
# Type prefixes a ferkit sklearn run may contain; anything else in a file is refused.
_TRUSTED_PREFIXES = (
    "sklearn.",
    "numpy.",
    "scipy.",
    "builtins.",
    "ferkit.features.",
    "ferkit.models.svm.",
)


@dataclass
class Run:
    """A loaded run: ``predict`` takes uint8 images as the dataset layer returns them."""

    path: Path
    kind: str
    classes: list[str]
    canonical: list[str]
    image_size: int
    color: str
    estimator: Any
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name)

    @property
    def backend(self) -> str:
        """What runs the predictions: "sklearn", "torch" or "onnx" (onnxruntime)."""
        return str(getattr(self.estimator, "backend", self.kind))

    def prepare(self, split: Split) -> np.ndarray:
        """The split's images in this run's size and colour (a clear error if they differ)."""
        images = split.images
        channels = 1 if self.color == "gray" else 3
        if images.shape[1:] != (self.image_size, self.image_size, channels):
            raise FerkitError(
                f"run {self.path} expects {self.image_size}x{self.image_size} {self.color} images, "
                f"got {images.shape[1:]}; load the data with image_size={self.image_size}, "
                f"color={self.color!r}"
            )
        return images

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices (into ``classes``) for (N, H, W, C) uint8 images."""
        return np.asarray(self.estimator.predict(images), dtype=np.int64)


def save_sklearn_run(run_dir: str | Path, estimator: Any, card: dict[str, Any]) -> Path:
    """Write ``model.skops`` and ``model.json`` atomically into ``run_dir``."""
    required = {"classes", "canonical", "image_size", "color"}
    if missing := required - set(card):
        raise ValueError(f"model card lacks {sorted(missing)}")
    run_dir = Path(run_dir)
    # Deflate: float64 arrays fitted on float32 features carry zero low bits (about half off).
    data = sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED)
    io.write_bytes(run_dir / SKOPS_FILE, data)
    full = {
        "format": "ferkit-run/1",
        "kind": "sklearn",
        "ferkit_version": __version__,
        "weights": SKOPS_FILE,
        **card,
    }
    io.write_json(run_dir / CARD, full)
    return run_dir


def _load_skops(path: Path) -> Any:
    data = path.read_bytes()
    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if refused:
        raise FerkitError(f"{path}: refuses to load unexpected types {refused}")
    return sio.loads(data, trusted=untrusted)


def _load_sklearn_estimator(run_dir: Path, card: dict[str, Any]) -> Any:
    weights = run_dir / card.get("weights", SKOPS_FILE)
    if not weights.is_file():
        raise FerkitError(f"{weights}: model file is missing")
    try:
        return _load_skops(weights)
    except FerkitError:
        raise
    except Exception as exc:  # skops raises many types on a damaged file
        raise FerkitError(f"{weights}: cannot load the model: {exc}") from exc


def _load_network_estimator(run_dir: Path, card: dict[str, Any], backend: str) -> Any:
    """onnxruntime when the backend allows it and the run has a verified export, else torch."""
    if backend != "torch":
        from ferkit.models.onnx_run import load_onnx_estimator  # no torch import on this path

        estimator = load_onnx_estimator(run_dir, card, forced=backend == "onnx")
        if estimator is not None:
            return estimator
    from ferkit.models.torch_run import load_torch_estimator  # torch only when needed

    return load_torch_estimator(run_dir, card)


def load_run(run_dir: str | Path, backend: str | None = None) -> Run:
    """Load a run folder (or a shipped model by name); errors name the file and the reason.

    ``backend`` decides what runs a network run (default: ``$FERKIT_BACKEND``, else
    ``"auto"``): ``"auto"`` uses onnxruntime when the run has an ONNX export whose checksum
    matches its card and onnxruntime is installed, torch otherwise (a tampered or stale
    export warns and falls back); ``"onnx"`` insists on onnxruntime and raises FerkitError for
    anything that stands in the way; ``"torch"`` always loads the torch network (needed for
    Grad-CAM and fine-tuning). scikit-learn runs have one backend and ignore the setting.
    """
    from ferkit.models.onnx_run import resolve_backend

    backend = resolve_backend(backend)  # a bad value fails even for sklearn runs
    run_dir = Path(run_dir)
    if not run_dir.exists() and len(run_dir.parts) == 1:
        from ferkit.weights import shipped_path

        run_dir = shipped_path(run_dir.name)
    card_path = run_dir / CARD
    if not card_path.is_file():
        raise FerkitError(f"{run_dir}: not a ferkit run (no {CARD})")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise FerkitError(f"{card_path}: unreadable model card: {exc}") from exc
    if not isinstance(card, dict):
        raise FerkitError(f"{card_path}: the model card is not a JSON object")
    kind = card.get("kind")
    if kind == "sklearn":
        estimator = _load_sklearn_estimator(run_dir, card)
    elif kind == "torch":
        estimator = _load_network_estimator(run_dir, card, backend)
    else:
        raise FerkitError(f"{card_path}: unsupported run kind {kind!r}")
    missing = {"classes", "canonical", "image_size", "color"} - set(card)
    if missing:
        raise FerkitError(f"{card_path}: card lacks {sorted(missing)}")
    return Run(
        run_dir,
        kind,
        list(card["classes"]),
        list(card["canonical"]),
        int(card["image_size"]),
        str(card["color"]),
        estimator,
        card,
    )
