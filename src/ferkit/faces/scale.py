"""Face detection on a smaller copy of a large photo, boxes back in the photo's own pixels.

Detection cost grows with the pixels scanned (dlib at upsample 1 scans the image doubled): a
48-megapixel phone photo takes about half a minute and several GB on one core, a 4-megapixel
copy about two seconds. Faces that matter in such a photo are far larger than the detector's
smallest face, so :func:`find_faces` looks for faces on a copy of at most
``DEFAULT_MAX_DETECT_PIXELS`` and takes the landmarks, crops and quality measures from the
full-resolution image. ``ferkit serve`` scans an even smaller copy (its ``--detect-mp``).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ferkit.errors import OptionError
from ferkit.faces.detectors import Box, FaceDetector

# 4 MP: a 12 MP photo is scanned at 0.58x, so faces down to about 70 px (dlib finds ~40 px
# faces at upsample 1) are still found there; a 48 MP photo costs what a 4 MP one does.
DEFAULT_MAX_DETECT_PIXELS = 4_000_000


def shrink(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """``image`` scaled down (aspect kept) to at most ``max_pixels``; as it is when it fits."""
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return image
    factor = math.sqrt(max_pixels / (height * width))
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    picture = Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    small = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = np.asarray(small)
    return out[:, :, None] if image.ndim == 3 and out.ndim == 2 else out


def scaled_box(box: Box, sx: float, sy: float, width: int, height: int) -> Box:
    """``box`` from a scaled image back to one of ``width`` x ``height`` (clipped inside), its
    landmarks (if the detector gave any) scaled with it."""
    left, top = math.floor(box.left * sx), math.floor(box.top * sy)
    right, bottom = math.ceil(box.right * sx), math.ceil(box.bottom * sy)
    left, top = min(max(left, 0), width - 1), min(max(top, 0), height - 1)
    right, bottom = min(max(right, left + 1), width), min(max(bottom, top + 1), height)
    return box.mapped(left, top, right - left, bottom - top, sx, sy)


def detect_scaled(detector: FaceDetector, image: np.ndarray, max_pixels: int | None) -> list[Box]:
    """``detector.detect`` on ``image`` shrunk to ``max_pixels`` (None: full size), boxes in
    ``image``'s pixels."""
    if max_pixels is not None and max_pixels < 1:
        raise OptionError("max_pixels must be >= 1 (or None for no limit)")
    height, width = image.shape[:2]
    small = image if max_pixels is None else shrink(image, max_pixels)
    boxes = list(detector.detect(small))
    sh, sw = small.shape[:2]
    if (sh, sw) == (height, width):
        return boxes
    return [scaled_box(b, width / sw, height / sh, width, height) for b in boxes]
