"""How sharp a set of images is, so that splits blurred differently are noticed.

Sharpness is the variance of the 4-neighbour Laplacian (interior pixels) over the variance of
the image, on the channel mean: brightness and contrast do not change it, blur lowers it fast.
Typical face crops score 0.3-1.5; the train split of ``../shared/data/fer2013`` scores 0.004
(every image low-passed, about a 3.5-px Gaussian) while its val split scores 0.7, which is the
case this exists for: a network trained on such a split fails on sharp inputs unless they are
blurred to match (:mod:`ferkit.models.nets.sharpness`). ``ferkit inspect`` reports each split's
median and warns about a gap; ``ferkit train`` acts on it.
"""

from __future__ import annotations

import numpy as np

# a split is "much blurrier" than another when its median sharpness is below this fraction of
# the other's (fer2013: 0.006; the two affectnet_yolo splits are within 3% of each other)
SHARPNESS_GAP = 0.5
SAMPLE = 2000


def sharpness(images: np.ndarray) -> np.ndarray:
    """Per-image sharpness of uint8 (N, H, W, C) images (float64, shape (N,))."""
    gray = images.astype(np.float64).mean(axis=-1)
    lap = (
        gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1] + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:]
    ) - 4 * gray[:, 1:-1, 1:-1]
    n = len(gray)
    return lap.reshape(n, -1).var(axis=1) / np.maximum(gray.reshape(n, -1).var(axis=1), 1e-12)


def median_sharpness(images: np.ndarray, n: int = SAMPLE, seed: int = 0) -> float:
    """Median sharpness of a seeded sample of up to ``n`` images (0.0 for no image)."""
    if len(images) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), min(n, len(images)), replace=False))
    return float(np.median(sharpness(images[idx])))


def much_blurrier(median: float, reference: float) -> bool:
    """True when a split of ``median`` sharpness is much blurrier than one of ``reference``."""
    return median < SHARPNESS_GAP * reference
