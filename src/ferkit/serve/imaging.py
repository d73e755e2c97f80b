"""What bounds one request's CPU work: detection on a small copy and a cap on faces analysed.

Face detection costs grow with the pixels scanned (dlib at upsample 1 scans the image doubled):
about 8 s for a 4600x3450 photo on one CPU core, against under a second for a 2-megapixel copy.
So the server looks for faces on a copy scaled down to at most ``max_detect_pixels``; a large
JPEG is decoded at 1/2, 1/4 or 1/8 scale for that search (as ``ferkit predict`` does, through
:meth:`ferkit.inference.Predictor.predict_file`), and again in full only when a face found
there is too small to cut from it. Landmarks, crops and quality measures come from the decoded
image; boxes come back in the pixels of the upload as the client sent it (EXIF rotation
applied), whatever scale the decoder or the detector worked at. At most ``max_faces`` faces (the
largest) are analysed per image; the answer says how many were found.

``ferkit predict`` and the other commands scan at most 4 megapixels
(:mod:`ferkit.faces.scale`); the server's bound is its own, usually smaller, ``--detect-mp``.
"""

from __future__ import annotations

import copy
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferkit.errors import OptionError
from ferkit.faces import Box, FaceDetector
from ferkit.inference import Predictor
from ferkit.serve.limits import ServeError

DEFAULT_MAX_DETECT_PIXELS = 2_000_000
DEFAULT_MAX_FACES = 100
# EXIF orientations that turn the picture a quarter: width and height swap.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def upright_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upload as a viewer shows it (EXIF rotation applied), from the header.

    Opening is where Pillow's own guards fire on metadata (a zTXt or iCCP chunk that inflates
    past its limit raises ``ValueError``): that is the client's image, so a 413 with the reason,
    never a 500. Anything else unreadable is left to the decoder, which says why.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                width, height = img.size
                orientation = img.getexif().get(0x0112)
    except ValueError as exc:
        raise ServeError(
            413, f"image metadata too large to read safely (possible metadata bomb): {exc}"
        ) from None
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError):
        return 0, 0  # the decoder reports it with its own reason
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


@dataclass
class Detection:
    """What the last detection on this thread did: the size scanned and the faces found."""

    width: int = 0
    height: int = 0
    found: int = 0


class BoundedDetector:
    """A face detector that keeps at most ``max_faces`` boxes (the largest: the ones a
    classifier reads best) and records what it scanned.

    The predictor hands it the copy it scans, already shrunk to the predictor's
    ``max_detect_pixels`` (:func:`ferkit.faces.scale.detect_scaled`), and scales the boxes back
    to the upload itself. What it did is kept per thread (:meth:`last`), since one detector
    serves every worker thread.
    """

    def __init__(self, inner: FaceDetector, max_faces: int) -> None:
        if max_faces < 1:
            raise OptionError("max_faces must be >= 1")
        self.inner = inner
        self.max_faces = max_faces
        self._local = threading.local()

    def detect(self, image: np.ndarray) -> list[Box]:
        boxes = self.inner.detect(image)
        height, width = image.shape[:2]
        self._local.last = Detection(width, height, len(boxes))
        boxes.sort(key=lambda b: (-b.area, -b.score))
        return boxes[: self.max_faces]

    def last(self) -> Detection:
        """The last :meth:`detect` on the calling thread (zeros when none)."""
        return getattr(self._local, "last", Detection())

    def __repr__(self) -> str:
        return f"BoundedDetector({self.inner!r}, max_faces={self.max_faces})"


def bounded_predictor(
    predictor: Predictor, max_pixels: int, max_faces: int, max_decode_pixels: int | None = None
) -> tuple[Predictor, BoundedDetector]:
    """A shallow copy of ``predictor`` (same loaded model) that scans at most ``max_pixels``
    for faces and keeps at most ``max_faces`` of them; ``max_decode_pixels`` (None: the
    predictor's own) bounds what it decodes of an upload.

    A copy, so a predictor the caller passed in keeps its own settings for its other uses.
    Predictor has no public way to swap its detector; its ``_detector`` is what it scans with.
    """
    if max_pixels < 1:
        raise OptionError("max_pixels must be >= 1")
    bounded = BoundedDetector(predictor._detector, max_faces)
    serving = copy.copy(predictor)
    serving._detector = bounded
    serving.max_detect_pixels = max_pixels
    if max_decode_pixels is not None:
        serving.max_pixels = max_decode_pixels
    return serving, bounded
