"""How sharp a set of images is, so that splits blurred differently are noticed.

Sharpness is the variance of the 4-neighbour Laplacian (interior pixels) over the variance of
the image, on the channel mean: brightness and contrast do not change it, blur lowers it fast.
Typical face crops score 0.3-1.5. The train split of ``../shared/data/fer2013`` scored 0.004
(every image low-passed, about a 3.5-px Gaussian) against 0.7 on its val split, until it was
rebuilt sharp (0.47) on 2026-12-02. That is the case this exists for: a network trained on
such a split fails on sharp inputs unless they are blurred to match
(:mod:`ferkit.models.nets.sharpness`). ``ferkit inspect`` reports each split's median and warns
about a gap; ``ferkit train`` acts on it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ferkit.errors import OptionError

# a split is "much blurrier" than another when its median sharpness is below this fraction of
# the other's (the blurred fer2013 copy: 0.006, the sharp one: 0.63; the two affectnet_yolo
# splits are within 3% of each other)
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


MODES = ("auto", "on", "off")


def matching_target(
    mode: str,
    train: np.ndarray,
    val: np.ndarray | None,
    seed: int = 0,
    *,
    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[float | None, dict[str, Any]]:
    """The sharpness a model's inputs are blurred to (None: no matching) and the measurements
    behind the decision, for ``ferkit train`` and ``ferkit svm``: ``on`` always matches to the
    training images' median, ``auto`` only when they are much blurrier than ``val`` (warned),
    ``off`` never.

    ``parts`` (a multi-dataset run: each dataset's name -> its (train, val) images): ``auto``
    compares each dataset's train split with its own val split, not the merged splits, because
    a merge weighs the datasets differently in train and val: FER2013's 48-px faces upscaled
    beside AffectNet's sharp 96-px ones made the merged train split look twice as blurry as the
    merged val split with no split blurred at all."""
    if mode not in MODES:
        raise OptionError(f"match_sharpness must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return None, {"mode": "off"}
    train_median = median_sharpness(train, seed=seed)
    info: dict[str, Any] = {"mode": mode, "train_median": round(train_median, 6)}
    gaps: list[str] = []
    if val is not None and len(val):
        val_median = median_sharpness(val, seed=seed)
        info["val_median"] = round(val_median, 6)
        if parts is None and much_blurrier(train_median, val_median):
            gaps.append(f"median sharpness {train_median:.4g} vs {val_median:.4g}")
    if parts is not None:
        info["datasets"] = {}
        for name, (part_train, part_val) in parts.items():
            medians = (
                median_sharpness(part_train, seed=seed),
                median_sharpness(part_val, seed=seed),
            )
            info["datasets"][name] = {"train_median": round(medians[0], 6),
                                      "val_median": round(medians[1], 6)}  # fmt: skip
            if len(part_val) and much_blurrier(*medians):
                gaps.append(f"{name}: median sharpness {medians[0]:.4g} vs {medians[1]:.4g}")
    info["matched"] = mode == "on" or bool(gaps)
    if mode == "auto" and gaps:
        warnings.warn(
            f"training images are much blurrier than validation images ({'; '.join(gaps)}): "
            "inputs will be blurred to the training sharpness at test time "
            "(match_sharpness='off' to disable)",
            stacklevel=3,
        )
    return (train_median if info["matched"] else None), info
