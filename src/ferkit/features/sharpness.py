"""Sharpness matching for classical pipelines: blur each image down to the training sharpness.

The scikit-learn counterpart of the networks' :class:`~ferkit.models.nets.sharpness.
SharpnessMatch` (and the same code: the torch module runs on the batch), placed before the
feature extractor when the training images are much blurrier than the ones the model will see
(``ferkit svm --match-sharpness``). Raw pixels, HOG and landmarks all change with blur, so an
SVM fitted on blurred faces misreads sharp ones exactly as a network does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ferkit.errors import FerkitError
from ferkit.features.base import check_images, to_uint8

BATCH = 1024


class MatchSharpness(TransformerMixin, BaseEstimator):
    """uint8 (N, H, W, C) images -> the same images, each blurred (Gaussian, sigma 0-4 px) just
    enough to be no sharper than ``target``; stateless, so ``fit`` does nothing."""

    def __init__(self, target: float = 0.01) -> None:
        self.target = target

    def fit(self, X: Any, y: Any = None) -> MatchSharpness:
        check_images(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        import torch

        from ferkit.models.nets.sharpness import SharpnessMatch

        images = check_images(X)
        height, width = images.shape[1:3]
        if height != width:
            raise FerkitError(f"sharpness matching needs square images, got {height}x{width}")
        match = SharpnessMatch(float(self.target), height).eval()
        out = np.empty(images.shape, dtype=np.uint8)
        with torch.no_grad():
            for start in range(0, len(images), BATCH):
                part = np.ascontiguousarray(images[start : start + BATCH], dtype=np.float32)
                x = torch.from_numpy(part).permute(0, 3, 1, 2)
                out[start : start + BATCH] = to_uint8(match(x).permute(0, 2, 3, 1).numpy())
        return out
