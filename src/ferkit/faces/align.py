"""Landmarks of a detected face (dlib's 68, or a detector's 5), and the crop a classifier sees.

Framing. The crop is defined in an *eye-levelled* frame (origin at the midpoint of the two eye
centres, x along the eye line). In that frame the 68 landmarks span a box of width ``w`` and
height ``h`` (jaw to jaw, brows to chin); the face size is ``s = sqrt(w * h)``. The crop is a
square of side ``s * (1 + 2 * margin)`` centred ``lift * s`` below the eye midpoint. So
``margin`` is the padding on each side of the face as a fraction of its size, and ``lift`` puts
the eyes above the centre, leaving room for the forehead as dataset crops do.

Why these quantities (benchmarks/faces_study.py: the faces dlib finds in 800 random validation
images of each dataset, 768 AffectNet and 550 FER2013): ``s`` predicts the dataset's crop side
better than the inter-ocular or the eye-to-mouth distance (coefficient of variation of the
ratio: AffectNet 0.122 vs 0.153 and 0.156; FER2013 0.103 vs 0.154 and 0.139), and the crop's
horizontal centre is the eye midpoint (10th-90th percentile -0.03 to +0.01 s on AffectNet,
-0.05 to +0.07 s on FER2013).

Measured framing of the training crops, median (10th-90th percentile):
  AffectNet 96x96: margin 0.31 (0.19-0.44), lift 0.10 (0.04-0.14)
  FER2013 48x48:   margin 0.13 (0.06-0.21), lift 0.13 (0.09-0.22)
FER2013's crops are tight (the chin touches the bottom edge, the jaw corners are often cut),
AffectNet's looser; :data:`FRAMINGS` holds both medians. The 68 points run from 0.18 s above
the eye midpoint (brows) to 0.79-0.81 s below (chin), medians; the chin is 0.90-0.91 s below at
the 99th percentile of both datasets.

The default, margin 0.2 and lift 0.2: margin 0.2 lies inside both datasets' 10th-90th
percentile range, so the face has the same size in the crop as in either dataset's training
images, within their own spread. Lift 0.2 then puts the crop's bottom edge 0.9 s below the eye
midpoint (its top 0.5 s above), where the chin of about 99% of faces ends, so an open mouth is
not cut off. It sits near FER2013's 85th percentile of lift and above AffectNet's 99th: the face
is about 7% of the crop lower than in a median AffectNet crop, inside the +-10% translation of
ferkit's "strong" augmentation but not of "seed" (which does not translate). Pass
``**FRAMINGS["affectnet"]`` or ``**FRAMINGS["fer2013"]`` to match one dataset exactly. On
skimage's astronaut the default leaves the chin 3 px above the bottom of a 48-px crop
(tests/test_faces.py checks that all 68 points are inside).

Five points. A detector that gives 5 points (RetinaFace: eye centres, nose tip, mouth corners)
frames the crop without dlib's 68-point fit: the eye midpoint and roll come from the two eye
points, and the face size ``s`` is estimated as ``FIVE_SIZE * sqrt(d * m)`` (d: eye distance,
m: height of the mouth corners' midpoint below the eyes, eye-levelled). Measured on the faces
both dlib and RetinaFace find in 300 random validation images of each dataset (292 AffectNet,
213 FER2013; benchmarks/five_points.py): ``s / sqrt(d * m)`` has median 2.17 and 2.24 with a
coefficient of variation of 0.060 and 0.076 (``s / d`` alone: 0.099 and 0.120; ``s / m``:
0.083 and 0.096), so 2.2 frames the face within about 7% of the 68-point crop's size. The
two detectors' eye midpoints agree to 0.005 s (median; 10th-90th percentile within 0.03 s),
and their roll to 0.3-0.6 degrees (10th-90th percentile within 3.6), so no further correction
is applied.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from skimage.filters import gaussian
from skimage.transform import AffineTransform, warp

from ferkit.errors import FerkitError
from ferkit.faces.detectors import Box
from ferkit.faces.images import Color, as_layout, check_color, check_image
from ferkit.features import dlib_models
from ferkit.features.dlib_models import LEFT_EYE, RIGHT_EYE

DEFAULT_MARGIN = 0.2
DEFAULT_LIFT = 0.2
# The face size s from 5 points, per sqrt(eye distance * eye-to-mouth height) (module doc).
FIVE_SIZE = 2.2


class Framing(TypedDict):
    """How a crop frames the face (see the module doc): a TypedDict, so ``**framing`` passes
    ``margin`` and ``lift`` to :func:`face_transform` or :func:`ferkit.faces.find_faces` with
    their types checked."""

    margin: float
    lift: float


FRAMINGS: dict[str, Framing] = {
    "default": {"margin": DEFAULT_MARGIN, "lift": DEFAULT_LIFT},
    "fer2013": {"margin": 0.13, "lift": 0.13},
    "affectnet": {"margin": 0.31, "lift": 0.10},
}


def landmarks_68(image: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 (x, y) landmarks, float64 (68, 2) in image pixels, of the face in ``box``.

    Uses the shape predictor shared with ferkit's landmark features (loaded once per thread).
    """
    image = check_image(image)
    dlib = dlib_models.import_dlib()
    rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
    shape = dlib_models.shape_predictor()(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def check_landmarks(landmarks: object) -> np.ndarray:
    """``landmarks`` as a finite float64 (68, 2) or (5, 2) array, or a FerkitError."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape not in ((68, 2), (5, 2)) or not np.isfinite(points).all():
        raise FerkitError(
            "landmarks must be a finite (68, 2) or (5, 2) array of (x, y) points, "
            f"got shape {points.shape}"
        )
    return points


def is_five(landmarks: np.ndarray) -> bool:
    """True for a detector's 5 points (eyes, nose tip, mouth corners), False for dlib's 68."""
    return len(landmarks) == 5


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right eye (image left) and left eye: the mean of dlib's points
    36-41 and 42-47, or the first two of 5 points."""
    if is_five(landmarks):
        return landmarks[0], landmarks[1]
    return landmarks[RIGHT_EYE].mean(0), landmarks[LEFT_EYE].mean(0)


def roll_degrees(landmarks: np.ndarray) -> float:
    """Angle of the eye line against the horizontal, degrees, positive when it slopes down to
    the image's right (clockwise on screen, as y grows downwards)."""
    right, left = eye_centres(landmarks)
    dx, dy = left - right
    return float(np.degrees(np.arctan2(dy, dx)))


def _rotation(degrees: float) -> np.ndarray:
    theta = np.radians(degrees)
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def levelled(landmarks: np.ndarray) -> np.ndarray:
    """The landmarks rotated about the eye midpoint so the eyes are level, origin there."""
    right, left = eye_centres(landmarks)
    return (landmarks - (right + left) / 2) @ _rotation(-roll_degrees(landmarks)).T


def face_size(landmarks: np.ndarray) -> float:
    """``sqrt(w * h)`` of the eye-levelled landmark box: a face size in pixels that ignores
    roll and, unlike the eye distance alone, changes little with yaw.

    From 5 points, the same quantity estimated (module doc, "Five points"):
    ``FIVE_SIZE * sqrt(d * m)``, d the eye distance, m the eye-to-mouth height.
    """
    q = levelled(landmarks)
    if is_five(landmarks):
        eyes = q[1, 0] - q[0, 0]
        mouth = (q[3, 1] + q[4, 1]) / 2
        return float(FIVE_SIZE * np.sqrt(max(eyes, 1e-6) * max(mouth, 1e-6)))
    w, h = np.ptp(q, axis=0)
    return float(np.sqrt(max(w, 1e-6) * max(h, 1e-6)))


def face_transform(
    landmarks: np.ndarray,
    size: int,
    margin: float = DEFAULT_MARGIN,
    lift: float = DEFAULT_LIFT,
    rotate: bool = True,
) -> np.ndarray:
    """3x3 affine matrix from image (x, y) to crop (x, y) for the framing in the module doc.

    ``rotate=False`` keeps the image upright (same centre and scale, eyes not levelled).
    Apply it to points with :func:`transform_points`.
    """
    points = check_landmarks(landmarks)
    if not isinstance(size, int | np.integer) or size < 1:
        raise FerkitError(f"size must be a positive integer, got {size!r}")
    if not margin > -0.5:
        raise FerkitError(f"margin must be > -0.5 (a crop of positive size), got {margin!r}")
    s = face_size(points)
    if s < 1.0:
        raise FerkitError(f"the landmarks span less than a pixel (face size {s:.2g} px)")
    right, left = eye_centres(points)
    mid = (right + left) / 2
    angle = roll_degrees(points) if rotate else 0.0
    scale = size / (s * (1 + 2 * margin))
    linear = scale * _rotation(-angle)
    centre = (size - 1) / 2
    offset = np.array([centre, centre - scale * lift * s]) - linear @ mid
    matrix = np.eye(3)
    matrix[:2, :2], matrix[:2, 2] = linear, offset
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a 3x3 affine ``matrix``."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def _source_window(
    matrix: np.ndarray, size: int, shape: tuple[int, ...], pad: float
) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the pixels the crop reads, padded, inside the image."""
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float)
    source = transform_points(np.linalg.inv(matrix), corners)
    x0, y0 = np.floor(source.min(0) - pad).astype(int)
    x1, y1 = np.ceil(source.max(0) + pad).astype(int) + 1
    height, width = shape[:2]
    x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    return x0, y0, max(min(x1, width), x0 + 1), max(min(y1, height), y0 + 1)


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` uint8 crop that ``matrix`` maps the image onto, in one warp.

    When the face is shrunk, the source is first low-passed (sigma = (1/scale - 1) / 2, the
    rule skimage's ``resize`` uses for anti-aliasing), else a 48-px crop of a 500-px face
    aliases. Only the window the crop reads is filtered, so a 12-megapixel photo costs no more
    than a small one. Pixels beyond the image repeat its edge rather than turn black.
    """
    image = check_image(image)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    sigma = max((1 / scale - 1) / 2, 0.0)
    x0, y0, x1, y1 = _source_window(matrix, size, image.shape, pad=3 * sigma + 2)
    window = image[y0:y1, x0:x1].astype(np.float64)
    if sigma > 0:
        channel_axis = -1 if window.ndim == 3 else None
        window = gaussian(window, sigma, channel_axis=channel_axis, preserve_range=True)
    to_window = np.eye(3)
    to_window[:2, 2] = (-x0, -y0)
    # skimage's warp takes the map from output to input coordinates: crop -> image -> window.
    crop_to_window = AffineTransform(matrix=to_window @ np.linalg.inv(matrix))
    crop = warp(
        window,
        crop_to_window,
        output_shape=(size, size),
        order=1,
        mode="edge",
        preserve_range=True,
    )
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8)


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int,
    margin: float = DEFAULT_MARGIN,
    color: Color = "gray",
    lift: float = DEFAULT_LIFT,
    rotate: bool = True,
) -> np.ndarray:
    """A ``size`` x ``size`` face crop with the eyes level, framed from the 68 (or 5) landmarks.

    Returns uint8 (size, size, 1) for ``color="gray"`` or (size, size, 3) for "rgb", the layout
    of ferkit datasets. ``margin`` (padding around the face, as a fraction of its size) and
    ``lift`` are explained in the module doc, with how their defaults were measured.
    """
    color = check_color(color)
    matrix = face_transform(landmarks, size, margin, lift, rotate)
    return as_layout(warp_crop(image, matrix, size), color)
