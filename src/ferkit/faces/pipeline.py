"""Photo in, classifier-ready face crops out: detect, landmark, align, assess."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np

from ferkit.errors import FerkitError
from ferkit.faces.align import (
    DEFAULT_LIFT,
    DEFAULT_MARGIN,
    face_size,
    face_transform,
    landmarks_68,
    warp_crop,
)
from ferkit.faces.detectors import Box, FaceDetector, create_detector
from ferkit.faces.images import Color, as_layout, check_color, check_image
from ferkit.faces.quality import THRESHOLDS, Quality, assess_face
from ferkit.faces.scale import DEFAULT_MAX_DETECT_PIXELS, detect_scaled

LANDMARKS = ("auto", "68")


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face of a photo.

    ``crop`` is (size, size, 1) gray or (size, size, 3) RGB uint8, the layout of ferkit
    datasets, so a model's ``predict`` takes ``np.stack([f.crop for f in faces])``.
    ``transform`` is the 3x3 affine map from image (x, y) to crop (x, y), e.g. to draw the
    landmarks on the crop with :func:`ferkit.faces.align.transform_points`. ``landmarks`` are
    the 5 points of a detector that gives them (RetinaFace) unless :func:`find_faces` was
    asked for dlib's 68 (``landmarks="68"``), which other detectors always get.
    """

    box: Box
    landmarks: np.ndarray  # (68, 2) dlib's, or (5, 2) the detector's; float64, image pixels
    crop: np.ndarray
    quality: Quality
    transform: np.ndarray


def _resolve(detector: str | FaceDetector) -> FaceDetector:
    if isinstance(detector, str):
        return create_detector(detector)
    if not isinstance(detector, FaceDetector):
        raise FerkitError(
            f"detector must be a registered name or have a detect(image) method, "
            f"got {type(detector).__name__}"
        )
    return detector


def _thresholds(min_size: float, quality: Mapping[str, float] | None) -> dict[str, Any]:
    unknown = sorted(set(quality or {}) - set(THRESHOLDS))
    if unknown:
        raise FerkitError(
            f"unknown quality threshold(s) {', '.join(unknown)}; known: {', '.join(THRESHOLDS)}"
        )
    return {"min_face_px": min_size, **(quality or {})}


def _plausible(five: np.ndarray | None, box: Box) -> TypeGuard[np.ndarray]:
    """Whether a detector's 5 points can frame the face: 5 finite points whose face size is
    within 0.3-3x the box's side. Otherwise (the mouth on or above the eye line, points
    bunched together: no face size to frame from) the 68-point fit from the box frames it.
    An upside-down face keeps its points: its roll (about 180 degrees) fails the gate."""
    if five is None or five.shape != (5, 2) or not np.isfinite(five).all():
        return False
    side = np.sqrt(max(box.area, 1))
    return 0.3 <= face_size(five) / side <= 3.0


def find_faces(
    image: np.ndarray,
    detector: str | FaceDetector = "auto",
    size: int = 48,
    color: Color = "gray",
    min_size: float = 32.0,
    align: bool = True,
    margin: float = DEFAULT_MARGIN,
    lift: float = DEFAULT_LIFT,
    quality: Mapping[str, float] | None = None,
    max_detect_pixels: int | None = DEFAULT_MAX_DETECT_PIXELS,
    landmarks: str = "auto",
) -> list[DetectedFace]:
    """Every face in ``image`` ((H, W) gray or (H, W, 3) RGB uint8), sorted left to right.

    Left to right (then top to bottom) so that the n-th face of a printed result is where a
    reader looks for it; sort by ``face.box.area`` for the largest first. An image without a
    face gives ``[]``. Faces that fail the quality gate are still returned, with
    ``quality.ok`` false and the reasons, so the caller decides whether to skip them or to
    report them ("face too small") instead of silently dropping them.

    ``min_size`` is the quality gate's minimum face size in pixels; ``quality`` passes other
    thresholds of :func:`ferkit.faces.assess_face` by name. ``align=False`` keeps the crop
    upright (same framing, eyes not levelled). ``margin`` and ``lift`` frame the crop (see
    :mod:`ferkit.faces.align`; ``**FRAMINGS["fer2013"]`` matches FER2013's crops).
    ``max_detect_pixels`` bounds the pixels the detector scans (:mod:`ferkit.faces.scale`;
    None scans the full image); landmarks and crops always come from the full image.
    ``landmarks="auto"`` aligns from the detector's own 5 points when its boxes carry them
    (no 68-point fit: about 2 ms less per face, and the crops frame the face as the 68-point
    ones do, see :mod:`ferkit.faces.align`); ``"68"`` always fits dlib's 68 points.
    """
    image = check_image(image)
    color = check_color(color)
    finder = _resolve(detector)
    thresholds = _thresholds(min_size, quality)
    if landmarks not in LANDMARKS:
        raise FerkitError(f"landmarks must be one of {', '.join(LANDMARKS)}, got {landmarks!r}")
    faces = []
    boxes = detect_scaled(finder, image, max_detect_pixels)
    for box in sorted(boxes, key=lambda b: (b.left, b.top)):
        five = box.points() if landmarks == "auto" else None
        points = five if _plausible(five, box) else landmarks_68(image, box)
        matrix = face_transform(points, size, margin, lift, rotate=align)
        crop = as_layout(warp_crop(image, matrix, size), color)
        verdict = assess_face(image, box, points, **thresholds)
        faces.append(DetectedFace(box, points, crop, verdict, matrix))
    return faces
