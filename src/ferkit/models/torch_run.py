"""Neural-network runs: safetensors weights + the JSON card, and a predictor over uint8 images.

Weights are stored with safetensors (a header + raw tensors: loading cannot execute code, unlike
pickle-based ``torch.save``). The card records the architecture (registry name + constructor
arguments), the normalisation and a SHA-256 of the weights file, so a run rebuilds its network
from the registry and refuses a weights file that was altered after training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ferkit import __version__, io
from ferkit.errors import FerkitError

WEIGHTS_FILE = "model.safetensors"


def build_network(config: dict[str, Any]) -> torch.nn.Module:
    """Rebuild a registered network from its ``config`` (as ``Network.config`` gives it)."""
    from ferkit.models.nets import create_model

    try:
        return create_model(
            config["name"],
            int(config["num_classes"]),
            int(config["in_channels"]),
            int(config["image_size"]),
            **dict(config.get("kwargs") or {}),
        )
    except KeyError as exc:
        raise FerkitError(f"architecture lacks {exc}") from exc


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    """The model's tensors as safetensors bytes (contiguous CPU copies, fp32 kept as is)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata={"format": "pt", "producer": f"ferkit {__version__}"})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_torch_run(run_dir: str | Path, model: torch.nn.Module, card: dict[str, Any]) -> Path:
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
        "format": "ferkit-run/1",
        "kind": "torch",
        "ferkit_version": __version__,
        "weights": WEIGHTS_FILE,
        "weights_sha256": sha256(data),
        "architecture": model.config,  # type: ignore[attr-defined]
        **card,
    }
    io.write_json(run_dir / "model.json", full)
    return run_dir


def load_weights(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file; a damaged or altered file is a clear FerkitError."""
    if not path.is_file():
        raise FerkitError(f"{path}: model file is missing")
    if expected_sha256 is not None and sha256(path.read_bytes()) != expected_sha256:
        raise FerkitError(
            f"{path}: weights do not match the checksum in model.json (altered or damaged file)"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise FerkitError(f"{path}: not a readable safetensors file: {exc}") from exc


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``tensors`` strictly; missing/unexpected keys or shape mismatches name the file."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    wrong = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or extra or wrong:
        raise FerkitError(
            f"{source}: weights do not fit the architecture "
            f"(missing {missing[:5]}, unexpected {extra[:5]}, wrong shape {wrong[:5]})"
        )
    model.load_state_dict(tensors)


class TorchClassifier:
    """Predicts from uint8 (N, H, W, C) images the way the network was trained to see them.

    Holds the network in eval mode; batches the input so memory stays flat on big splits.
    """

    backend = "torch"

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
            out = getattr(self.model, fn)(x) if fn != "forward" else self.model(x)
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


def load_torch_estimator(run_dir: Path, card: dict[str, Any]) -> TorchClassifier:
    """The card's network with its checked weights, ready to predict."""
    card_path = run_dir / "model.json"
    try:
        model = build_network(card["architecture"])
    except KeyError as exc:
        raise FerkitError(f"{card_path}: card lacks {exc}") from exc
    except FerkitError as exc:
        raise FerkitError(f"{card_path}: {exc}") from exc
    weights = run_dir / card.get("weights", WEIGHTS_FILE)
    load_state(model, load_weights(weights, card.get("weights_sha256")), weights)
    return TorchClassifier(model, card["mean"], card["std"])
