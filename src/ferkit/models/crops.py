"""Multi-crop test-time augmentation at inference: a copy of a run that scores each face as
several crops (``Predictor(crops=5)``, ``--crops 5``) and averages their probabilities.

The five views are the four corners and the centre of a square of side
``round(fraction * size)``, each resized back to the model's input size (bilinear, as
``cv2.INTER_LINEAR``). Each view is scored by the run's own ``predict_proba``, so a network
trained with ``--tta flip`` also averages each crop with its mirror image: ten views per face,
at ten times the single view's network time. On FER2013 val (3,589 faces) five crops of 44/48
took the shipped ``fer2013`` from 66.0% to 67.5% (docs/BENCHMARKS.md); smaller crops (42, 40)
did no better, and adding the full view to the five did not help.

Only ``predict_proba`` and ``predict`` average over crops: ``embed`` and every other attribute
(a torch network, an onnxruntime session, a pipeline's steps) are the wrapped estimator's own,
on the full view. :func:`multi_crop` never changes the run it is given: a ``Run`` may be shared
(a server's predictor, a caller's cached run). Drop the mirror first
(:func:`ferkit.models.flip.single_view`), then add crops: a multi-crop estimator's ``flip``
cannot be changed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ferkit.errors import FerkitError, OptionError
from ferkit.models.store import Run

CROP_COUNTS = (1, 5)  # one view (the run as it is) or the four corners and the centre
DEFAULT_CROP_FRACTION = 44 / 48  # the best of 44, 42 and 40 on FER2013's 48-pixel faces
CROP_CHUNK = 256  # faces whose views are built at once: 5 x 256 images, not 5 x the split


def check_crop_options(crops: int, fraction: float) -> tuple[int, float]:
    """``(crops, fraction)`` when valid; an :class:`OptionError` saying what is allowed."""
    allowed = ", ".join(map(str, CROP_COUNTS))
    if (
        isinstance(crops, bool)
        or not isinstance(crops, int | np.integer)
        or crops not in CROP_COUNTS
    ):
        raise OptionError(f"crops must be one of {allowed}, got {crops!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.floating):
        raise OptionError(f"crop fraction must be a number in (0.5, 1), got {fraction!r}")
    if not 0.5 < float(fraction) < 1:
        raise OptionError(f"crop fraction must be in (0.5, 1) (exclusive), got {fraction!r}")
    return int(crops), float(fraction)


def crop_boxes(height: int, width: int, fraction: float) -> list[tuple[int, int, int]]:
    """``(top, left, side)`` of the five crops of a ``height x width`` image: top-left,
    top-right, bottom-left, bottom-right, centre (the centre rounded towards the top left)."""
    side = round(fraction * min(height, width))
    bottom, right = height - side, width - side
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    return [(top, left, side) for top, left in corners]


def crop_views(images: np.ndarray, fraction: float) -> np.ndarray:
    """The five views of uint8 (N, H, W, C) ``images``: (5, N, H, W, C) uint8, each crop
    resized back to H x W with bilinear interpolation (``cv2.INTER_LINEAR``)."""
    import cv2  # only where crops are asked for: ``ferkit predict`` may not need it

    n, height, width, channels = images.shape
    views = np.empty((5, n, height, width, channels), dtype=np.uint8)
    for v, (top, left, side) in enumerate(crop_boxes(height, width, fraction)):
        for i in range(n):
            crop = np.ascontiguousarray(images[i, top : top + side, left : left + side])
            resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
            views[v, i] = resized.reshape(height, width, channels)  # cv2 drops a single channel
    return views


class MultiCropClassifier:
    """An estimator whose ``predict_proba`` is the mean of ``inner.predict_proba`` over the five
    crop views of each image; ``predict`` is its argmax. Everything else (``embed``,
    ``backend``, ``classes_``, a network or session) is read from ``inner``, on the full view.
    """

    crops = 5

    def __init__(self, inner: Any, fraction: float) -> None:
        self.inner = inner
        self.fraction = fraction

    def __getattr__(self, name: str) -> Any:
        # only reached for names not found on the wrapper; "inner" itself missing means the
        # object is half-built (copy, pickle), where delegating would recurse
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def flip(self) -> bool:
        """Whether the wrapped estimator averages each view with its mirror (read-only)."""
        return bool(getattr(self.inner, "flip", True))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) averaged over the crops, a chunk of faces at once."""
        if len(images) == 0:
            return np.asarray(self.inner.predict_proba(images))
        parts = []
        for start in range(0, len(images), CROP_CHUNK):
            chunk = images[start : start + CROP_CHUNK]
            views = crop_views(chunk, self.fraction)
            scores = np.asarray(self.inner.predict_proba(views.reshape(-1, *chunk.shape[1:])))
            parts.append(scores.reshape(len(views), len(chunk), -1).mean(axis=0))
        return np.concatenate(parts)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices: the argmax of the averaged probabilities (column order of
        ``predict_proba``, mapped through ``classes_`` when the estimator has one)."""
        if len(images) == 0:
            return np.zeros(0, dtype=np.int64)
        best = self.predict_proba(images).argmax(axis=1)
        classes = getattr(self.inner, "classes_", None)
        return np.asarray(classes)[best] if classes is not None else best


def crops_of(run: Run) -> int:
    """How many crop views ``run`` averages per face (1: the image as given)."""
    estimator = run.estimator
    return int(estimator.crops) if isinstance(estimator, MultiCropClassifier) else 1


def crop_fraction_of(run: Run) -> float | None:
    """The side of ``run``'s crops as a fraction of the image (None without crops)."""
    estimator = run.estimator
    return float(estimator.fraction) if isinstance(estimator, MultiCropClassifier) else None


def multi_crop(run: Run, crops: int = 5, fraction: float = DEFAULT_CROP_FRACTION) -> Run:
    """``run`` scoring each face as ``crops`` views averaged; ``run`` itself is untouched.

    ``crops=1`` returns ``run`` as it is. An estimator without ``predict_proba`` (a
    scikit-learn SVM without probability estimates) has nothing to average: refused, naming
    the model. A run already averaging crops is not wrapped twice: refused as well.
    """
    crops, fraction = check_crop_options(crops, fraction)
    if crops == 1:
        return run
    if isinstance(run.estimator, MultiCropClassifier):
        raise OptionError(f"model {run.name} ({run.path}) already averages {crops_of(run)} crops")
    if not hasattr(run.estimator, "predict_proba"):
        raise FerkitError(
            f"model {run.name} ({run.path}) gives no class probabilities (predict_proba), "
            "so its crops cannot be averaged; use --crops 1"
        )
    return dataclasses.replace(run, estimator=MultiCropClassifier(run.estimator, fraction))
