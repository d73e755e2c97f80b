"""CNN embeddings: the penultimate layer of a trained ferkit network (the notebook's img2vec row).

The notebook fed ResNet18 ImageNet features (via img2vec) to an SVM. No ImageNet weights can be
fetched here, so the embedding comes from a network ferkit trained itself: any neural run
folder or shipped model name. Images are brought to the run's size and colour first, so a
96x96 RGB dataset can be embedded by a 48x48 gray FER2013 network.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from ferkit.errors import OptionError
from ferkit.features.base import FeatureExtractor, Stats, to_gray


@functools.lru_cache(maxsize=4)
def _load(run: str) -> Any:
    """The run's predictor, loaded once per process (the extractor itself stays params-only)."""
    from ferkit.models.store import load_run

    loaded = load_run(run)
    if loaded.kind != "torch":
        raise OptionError(f"{run}: a {loaded.kind} run has no network to take embeddings from")
    return loaded


def _fit_images(images: np.ndarray, size: int, color: str) -> np.ndarray:
    """uint8 (N, H, W, C) at the network's size and colour (PIL resampling, anti-aliased)."""
    from PIL import Image

    if color == "gray" and images.shape[-1] == 3:
        images = np.clip(np.rint(to_gray(images)), 0, 255).astype(np.uint8)[..., None]
    elif color == "rgb" and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images, dtype=np.uint8)
    out = np.empty((len(images), size, size, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images.astype(np.uint8)):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        resized = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = resized.reshape(size, size, -1)
    return out


class NetworkEmbedding(FeatureExtractor):
    """Penultimate-layer features of the network in ``run`` (a run folder or shipped name)."""

    name = "cnn"
    min_parallel = 10**9  # torch already uses every core; worker processes would only copy

    def __init__(self, run: str = "fer2013", progress: bool = True, cache: bool = True) -> None:
        self.run = run
        self.progress = progress
        self.cache = cache

    def _check_params(self) -> None:
        if not isinstance(self.run, str) or not self.run:
            raise OptionError("run must name a network run folder or a shipped model")
        _load(self.run)

    def _cache_salt(self) -> str:
        # the weights' checksum (retraining into the same folder is a cache miss) and the
        # architecture, whose sharpness_target changes the embedding without touching weights
        card = _load(self.run).card
        arch = json.dumps(card.get("architecture"), sort_keys=True)
        return f"{card.get('weights_sha256', '')}:{arch}"

    def _extract(self, batch: np.ndarray) -> tuple[np.ndarray, Stats]:
        run = _load(self.run)
        images = _fit_images(batch, run.image_size, run.color)
        return run.estimator.embed(images), {}
