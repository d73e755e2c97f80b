"""Boxes and captions drawn on a copy of the image: what the model saw and what it said.

Classified faces are green with ``label score``; faces the quality gate rejected are orange with
``rejected: reason`` (or ``label score (rejected)`` when they were classified anyway), so a
reader sees at a glance which answers to distrust. Drawn with OpenCV, which the video writer
needs anyway, on RGB arrays (colours below are RGB).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ferkit.faces.images import check_image, to_rgb
from ferkit.inference.results import FaceResult

ACCEPTED_COLOR = (40, 200, 40)
REJECTED_COLOR = (255, 140, 0)
TEXT_COLOR = (0, 0, 0)
LANDMARK_COLOR = (0, 200, 255)


def caption(face: FaceResult) -> str:
    """The text drawn by a face: ``happy 0.83``, ``happy``, or ``rejected: small face ...``."""
    if face.label is None:
        reason = face.reasons[0] if face.reasons else "not classified"
        return f"rejected: {reason}"
    text = face.label if face.score is None else f"{face.label} {face.score:.2f}"
    return text if face.ok else f"{text} (rejected)"


def _cv2() -> Any:
    from ferkit.faces.detectors import import_cv2

    return import_cv2()


def _label(
    cv2: Any, canvas: np.ndarray, text: str, x: int, y: int, color: tuple[int, ...], scale: float
) -> None:
    """``text`` on a filled box whose bottom-left corner is (x, y), kept inside the image."""
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    height, width = canvas.shape[:2]
    x = min(max(x, 0), max(width - w - 2, 0))
    y = min(max(y, h + base + 2), height - 1)
    cv2.rectangle(canvas, (x, y - h - base - 2), (x + w + 2, y), color, cv2.FILLED)
    origin = (x + 1, y - base)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, text, origin, font, scale, TEXT_COLOR, thickness, cv2.LINE_AA)


def annotate(image: np.ndarray, faces: Sequence[FaceResult], landmarks: bool = False) -> np.ndarray:
    """An (H, W, 3) uint8 RGB copy of ``image`` with every face's box and caption drawn.

    Line width and text size follow the image size, so captions stay legible on a 48-px crop
    and on a 12-megapixel photo. ``landmarks`` also dots the 68 points of faces that have them.
    """
    cv2 = _cv2()
    canvas = np.array(to_rgb(check_image(image)))  # a copy: the caller's pixels stay clean
    side = min(canvas.shape[:2])
    thickness = max(1, round(side / 300))
    scale = max(0.3, side / 900)
    for face in faces:
        color = ACCEPTED_COLOR if face.ok else REJECTED_COLOR
        box = face.box
        cv2.rectangle(
            canvas, (box.left, box.top), (box.right - 1, box.bottom - 1), color, thickness
        )
        if landmarks and face.landmarks is not None:
            for x, y in np.rint(face.landmarks).astype(int):
                cv2.circle(canvas, (int(x), int(y)), thickness, LANDMARK_COLOR, cv2.FILLED)
        _label(cv2, canvas, caption(face), box.left, box.top - 1, color, scale)
    return canvas
