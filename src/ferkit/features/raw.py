"""Raw pixels: the notebook's weakest baseline (SVM on flattened pixels, 36.4% on AffectNet).

Kept because every other feature has to beat it, and because it is the only feature that needs
no library beyond numpy and skimage.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

from ferkit.features.base import FeatureExtractor, Stats, check_int, to_gray


class RawPixels(FeatureExtractor):
    """Optionally resized and gray-converted pixels, flattened and scaled to [0, 1].

    ``size`` resizes to ``size`` x ``size`` (anti-aliased, as a smaller image is what keeps an
    RBF SVM tractable); ``gray`` converts RGB to luma. Features are (H * W * C,) float32.
    """

    name = "raw"
    min_parallel = 10**9  # numpy over whole batches is already fast; workers would only copy

    def __init__(
        self,
        size: int | None = None,
        gray: bool = False,
        progress: bool = True,
        cache: bool = True,
    ) -> None:
        self.size = size
        self.gray = gray
        self.progress = progress
        self.cache = cache

    def _check_params(self) -> None:
        if self.size is not None:
            check_int("size", self.size, 1)

    def _extract(self, batch: np.ndarray) -> tuple[np.ndarray, Stats]:
        pixels = to_gray(batch)[..., None] if self.gray else batch.astype(np.float64)
        if self.size is not None and pixels.shape[1:3] != (self.size, self.size):
            shape = (self.size, self.size, pixels.shape[3])
            pixels = np.stack(
                [resize(p, shape, anti_aliasing=True, preserve_range=True) for p in pixels]
            )
        features = np.clip(pixels, 0.0, 255.0) / 255.0
        return features.reshape(len(batch), -1).astype(np.float32), {}
