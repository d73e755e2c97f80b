"""Is a detected face usable for expression recognition? Measured values and reasons.

Everything is measured on a *normalised face patch*: the eye-levelled square of side ``s`` (the
landmark face size, see :mod:`ferkit.faces.align`) around the landmark box, resampled to
``PATCH_SIZE`` px gray. Measuring at a fixed size makes sharpness independent of how large the
face is in the photo, and a fixed patch at about the face size of the classifier's crop (34 px
in a default 48-px crop) judges blur at the scale the classifier will see: blur that vanishes
when the face is shrunk to 32 px cannot hurt a 48-px model.

Defaults. The value thresholds were set against the faces dlib finds in 800 random validation
images of each dataset (768 AffectNet, 550 FER2013; benchmarks/faces_study.py), so that a face
is rejected only when it is rarer than about 1 in 200 training faces:
- ``min_face_px`` 32: about the face size in a default 48-px crop (48 / 1.4 = 34 px), so the
  crop is not mostly interpolation; FER2013's own faces measure 38 px (median; 5th pct 31).
- ``min_sharpness`` 0.2: variance of the Laplacian of the patch divided by the patch's
  variance, i.e. the share of the face's contrast that is fine detail. Dividing makes it
  independent of exposure (a dark face is "dark", not "blurred"). 0.5th percentile: AffectNet
  0.40, FER2013 0.22; the astronaut measures 0.89, and 0.21 / 0.10 / 0.05 after a Gaussian
  blur of sigma 2 / 3 / 4 px on its 91-px face.
- ``min_brightness`` 50 / ``max_brightness`` 215 (mean luma, 0-255): 0.5th-99.5th percentiles
  59-195 (AffectNet) and 50-205 (FER2013).
- ``min_contrast`` 15 (luma standard deviation): 0.5th percentile 23 and 21.
- ``max_roll`` 30 degrees: alignment levels the eyes, but beyond this the frontal detectors
  and the 68-point model fail often, so the landmarks themselves are suspect (0.5th-99.5th
  percentiles: -17 to +17 AffectNet, -28 to +27 FER2013).
- ``max_yaw`` 45 degrees, an *estimate* (:func:`yaw_degrees`): 0.5th-99.5th percentiles -41 to
  +41 (AffectNet) and -40 to +38 (FER2013); past it the far half of the face is hidden and
  dlib's landmarks there are guesses.

Five points. When the face comes with a detector's 5 points instead of dlib's 68 (the fast
path, :mod:`ferkit.faces.align` "Five points"), every check still runs, from what 5 points
give: the size is the 5-point estimate of ``s``; roll is the eye line's; the patch for
sharpness, brightness and contrast is the same square, centred ``FIVE_PATCH_LIFT`` (0.33) s
below the eye midpoint, where the 68-point box centre sits (median 0.33 in both datasets,
10th-90th percentile 0.28-0.37, benchmarks/five_points.py); yaw uses the nose tip between the
eye *centres* (no eye corners), with the gain fitted against the 68-point estimate
(``FIVE_NOSE_GAIN`` 0.88: 0.90 AffectNet, 0.86 FER2013; correlation 0.94 and 0.85). The
thresholds are the same: the 5-point values follow the 68-point ones within the spreads
quoted there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ferkit.faces.align import (
    check_landmarks,
    face_size,
    face_transform,
    is_five,
    levelled,
    roll_degrees,
    warp_crop,
)
from ferkit.faces.detectors import Box
from ferkit.faces.images import check_image, to_gray

PATCH_SIZE = 32
# Nose-tip protrusion in front of the outer eye corners over half their distance, from the mean
# 3-D face of OpenFace's 68-point model (42.9 / 45.6): the gain of the yaw estimate below.
NOSE_DEPTH_RATIO = 0.94
RIGHT_OUTER_CORNER, LEFT_OUTER_CORNER, NOSE_TIP = 36, 45, 30
# 5 points (benchmarks/five_points.py): the nose tip's offset from the eye-centre midpoint, in
# half eye distances, per unit tan(yaw) of the 68-point estimate; and the 68-point box centre
# below the eye midpoint, in face sizes.
FIVE_NOSE_GAIN = 0.88
FIVE_PATCH_LIFT = 0.33


@dataclass(frozen=True)
class Quality:
    """The verdict on one face: ``ok``, the ``reasons`` it is not (empty when ok), and what
    was measured. Angles are estimates in degrees; see :func:`assess_face`."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    face_px: float = 0.0
    sharpness: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    roll: float = 0.0
    yaw: float = 0.0


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Estimated yaw, degrees, from where the nose tip sits between the outer eye corners.

    With the eyes levelled, let ``t`` be the nose tip's offset from the corners' midpoint in
    units of half their distance. A rigid head turned by ``yaw`` about the vertical axis and
    seen orthographically gives ``t = (D / W) tan(yaw)`` (D: nose depth in front of the
    corners, W: half their distance), hence ``yaw = atan(t * W / D)``. Positive when the nose
    points to the image's right. An estimate: pitch, perspective and faces unlike the mean
    face shift it by several degrees; it is meant to reject clearly turned heads.
    """
    points = check_landmarks(landmarks)
    q = levelled(points)
    if is_five(points):  # eye centres instead of corners: a measured gain (module doc)
        right, left, nose, depth = q[0, 0], q[1, 0], q[2, 0], FIVE_NOSE_GAIN
    else:
        right, left = q[RIGHT_OUTER_CORNER, 0], q[LEFT_OUTER_CORNER, 0]
        nose, depth = q[NOSE_TIP, 0], NOSE_DEPTH_RATIO
    half = (left - right) / 2
    if half <= 1e-6:  # eyes crossed: not a plausible frontal-ish face
        return 90.0
    t = (nose - (left + right) / 2) / half
    return float(np.degrees(np.arctan(t / depth)))


def face_patch(image: np.ndarray, landmarks: np.ndarray, size: int = PATCH_SIZE) -> np.ndarray:
    """(size, size) uint8 gray: the eye-levelled landmark box of the face, no background margin.

    From 5 points the box's centre is not known (no brows, no chin): it is put where the 68
    points' box centre sits on average, ``FIVE_PATCH_LIFT * s`` below the eye midpoint.
    """
    s = face_size(landmarks)
    if is_five(landmarks):
        lift = FIVE_PATCH_LIFT
    else:
        q = levelled(landmarks)
        lift = (q[:, 1].min() + q[:, 1].max()) / 2 / s
    matrix = face_transform(landmarks, size, margin=0.0, lift=lift)
    return to_gray(warp_crop(image, matrix, size))


def measure(image: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """The measured values of :class:`Quality` for one face."""
    points = check_landmarks(landmarks)
    patch = face_patch(check_image(image), points).astype(np.float64)
    laplacian = ndimage.laplace(patch, mode="nearest")[1:-1, 1:-1]
    return {
        "face_px": face_size(points),
        "sharpness": float(laplacian.var() / max(patch.var(), 1.0)),
        "brightness": float(patch.mean()),
        "contrast": float(patch.std()),
        "roll": roll_degrees(points),
        "yaw": yaw_degrees(points),
    }


THRESHOLDS = (
    "min_face_px",
    "min_sharpness",
    "min_brightness",
    "max_brightness",
    "min_contrast",
    "max_roll",
    "max_yaw",
)


def assess_face(
    image: np.ndarray,
    box: Box | None,
    landmarks: np.ndarray,
    *,
    min_face_px: float = 32.0,
    min_sharpness: float = 0.2,
    min_brightness: float = 50.0,
    max_brightness: float = 215.0,
    min_contrast: float = 15.0,
    max_roll: float = 30.0,
    max_yaw: float = 45.0,
) -> Quality:
    """Measure one face and list why it should not be classified (module doc: defaults).

    ``landmarks`` are dlib's 68 points or a detector's 5 (module doc). ``box`` is the
    detector's box; the measurements use the landmarks only (so the verdict does not depend on
    which detector found the face) and ``box`` is accepted for symmetry with the rest of the
    pipeline. Reasons are short phrases that start with a stable word:
    "small", "blurred", "dark", "bright", "low contrast", "pose".
    """
    values = measure(image, landmarks)
    reasons = []
    if values["face_px"] < min_face_px:
        reasons.append(f"small face: {values['face_px']:.0f} px < {min_face_px:g} px")
    if values["sharpness"] < min_sharpness:
        reasons.append(f"blurred: sharpness {values['sharpness']:.2f} < {min_sharpness:g}")
    if values["brightness"] < min_brightness:
        reasons.append(f"dark: mean luma {values['brightness']:.0f} < {min_brightness:g}")
    if values["brightness"] > max_brightness:
        reasons.append(f"bright: mean luma {values['brightness']:.0f} > {max_brightness:g}")
    if values["contrast"] < min_contrast:
        reasons.append(f"low contrast: luma std {values['contrast']:.1f} < {min_contrast:g}")
    if abs(values["roll"]) > max_roll:
        reasons.append(f"pose: roll {values['roll']:+.0f} deg beyond +-{max_roll:g}")
    if abs(values["yaw"]) > max_yaw:
        reasons.append(f"pose: yaw {values['yaw']:+.0f} deg (estimate) beyond +-{max_yaw:g}")
    return Quality(ok=not reasons, reasons=reasons, **values)
