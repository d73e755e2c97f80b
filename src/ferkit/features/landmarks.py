"""Facial landmarks: dlib's 68 points plus a few distances that move with expression.

Detector upsampling, faces found in random images of each validation split (two samples):
AffectNet 96x96 RGB, 400 images: upsample 0 335 (83.8%), 1 378 (94.5%), 2 374 (93.5%);
  500 others: 1 477 (95.4%), 2 476 (95.2%);
FER2013 48x48 gray, 400 images: upsample 0 0 (0%), 1 281 (70.2%), 2 281 (70.2%);
  500 others: 1 335 (67.0%), 2 335 (67.0%); all 3589 at upsample 1: 2493 (69.5%).
Upsampling twice finds no more faces and takes 2-5x longer than once, hence ``upsample=1``.

Parallelism, measured on 1000 AffectNet images on this 2-core machine (detection at upsample 1
+ 68 points): serial 13.4 s (74 img/s); 2 threads 8.1 s (dlib releases the GIL only in parts);
2 worker processes 7.3 s on the first call (start-up and model loading included), 4.3 s once
they run. So inputs of ``min_parallel`` images or more go to processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError

from ferkit.features import dlib_models
from ferkit.features.base import FeatureExtractor, Stats, check_int, to_uint8
from ferkit.features.dlib_models import LEFT_EYE, RIGHT_EYE

# iBUG 300-W indices (0-based), as the eyes in dlib_models.
RIGHT_BROW, LEFT_BROW = slice(17, 22), slice(22, 27)
GEOMETRY_NAMES = (
    "mouth_width",
    "mouth_open_outer",
    "mouth_open_inner",
    "right_eye_open",
    "left_eye_open",
    "right_brow_to_eye",
    "left_brow_to_eye",
    "inner_brow_gap",
    "mouth_corner_lift",
    "nose_to_mouth",
    "nose_to_chin",
)


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a - b)))


def geometry(points: np.ndarray, fallback_scale: float) -> np.ndarray:
    """Expression distances of 68 (x, y) points, in units of the inter-ocular distance.

    Dividing by the distance between the eye centres removes face size; the signed mouth-corner
    lift is measured along the axis perpendicular to the eye line, so head roll does not change
    it (positive: corners above the mouth centre, as in a smile).
    """
    p = points
    right_eye, left_eye = p[RIGHT_EYE].mean(0), p[LEFT_EYE].mean(0)
    iod = _dist(right_eye, left_eye)
    scale = iod if iod > 1e-6 else max(fallback_scale, 1.0)
    dx, dy = (left_eye - right_eye) / scale if iod > 1e-6 else (1.0, 0.0)
    up = np.array([dy, -dx])  # unit normal to the eye line pointing up the face (y grows down)
    mouth_centre = p[[51, 57, 62, 66]].mean(0)
    corners = p[[48, 54]].mean(0)
    values = [
        _dist(p[48], p[54]),
        _dist(p[51], p[57]),
        _dist(p[62], p[66]),
        (_dist(p[37], p[41]) + _dist(p[38], p[40])) / 2,
        (_dist(p[43], p[47]) + _dist(p[44], p[46])) / 2,
        _dist(p[RIGHT_BROW].mean(0), right_eye),
        _dist(p[LEFT_BROW].mean(0), left_eye),
        _dist(p[21], p[22]),
        float((corners - mouth_centre) @ up),
        _dist(p[33], p[51]),
        _dist(p[33], p[8]),
    ]
    return np.array(values) / scale


class DlibFaceExtractor(FeatureExtractor):
    """Shared by the dlib extractors: face detection with a whole-crop fallback, and its counts.

    After ``transform``, ``n_images_`` and ``n_not_found_`` describe that call (a pipeline's
    last ``predict`` overwrites those of its ``fit``). They are results, not params: they stay
    out of the cache key, and a cache hit restores them.
    """

    upsample: int

    def _check_params(self) -> None:
        check_int("upsample", self.upsample, 0)
        dlib_models.check_models(dlib_models.SHAPE_68)

    def _cache_salt(self) -> str:
        return f"dlib={dlib_models.dlib_version()}"

    def _set_stats(self, stats: Stats, n_images: int) -> None:
        self.n_images_ = n_images
        self.n_not_found_ = int(stats.get("n_not_found", 0))

    def report(self) -> dict[str, Any]:
        """Counts of the last ``transform``: images, and faces the detector did not find."""
        if not hasattr(self, "n_images_"):
            raise NotFittedError(f"{type(self).__name__}.report() needs a transform() first")
        return {
            "n_images": self.n_images_,
            "n_not_found": self.n_not_found_,
            "not_found_rate": self.n_not_found_ / self.n_images_,
        }


class Landmarks68(DlibFaceExtractor):
    """dlib's 68 landmarks normalised to the face box, plus expression distances.

    Each point becomes ((x, y) - box centre) / (box width, box height), giving 136 values that
    do not depend on where the face is or how large it is; :data:`GEOMETRY_NAMES` lists the 11
    distances appended after them (see :func:`geometry`). 147 values per image.
    """

    name = "landmarks"
    batch_size = 64
    min_parallel = 500

    def __init__(
        self,
        upsample: int = 1,
        n_jobs: int = -1,
        progress: bool = True,
        cache: bool = True,
    ) -> None:
        self.upsample = upsample
        self.n_jobs = n_jobs
        self.progress = progress
        self.cache = cache

    def _extract(self, batch: np.ndarray) -> tuple[np.ndarray, Stats]:
        rows, missed = [], 0
        for image in dlib_models.face_images(to_uint8(batch)):
            face = dlib_models.find_face(image, self.upsample)
            missed += not face.found
            left, top, width, height = face.box
            centre = np.array([left + (width - 1) / 2, top + (height - 1) / 2])
            normalised = (face.points - centre) / np.array([width, height])
            rows.append(np.concatenate([normalised.ravel(), geometry(face.points, width)]))
        return np.stack(rows).astype(np.float32), {"n_not_found": missed}
