"""dlib's face detector, 68-point shape predictor and face-embedding ResNet, loaded on demand.

The model files ship in the ``face_recognition_models`` package. Its ``__init__`` imports
``pkg_resources`` (gone from recent setuptools), so the files are located through the import
system without importing the package.

dlib objects cannot be pickled, so estimators never hold them: they are loaded here, once per
thread (in practice once per process: the main thread plus one per joblib worker). Not simply
once per process, because the detector and the ResNet keep scratch buffers and are not safe to
share between threads, and loading costs about 1 s for the detector and the 68-point model.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import FerkitError

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install face_recognition_models dlib-bin"
# iBUG 300-W indices (0-based) of SHAPE_68: the subject's right eye is on the image's left.
# Here, not in landmarks.py, so face alignment needs no scikit-learn (landmarks.py imports it).
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)

_local = threading.local()


class MissingModelError(FerkitError):
    """dlib or one of its model files is not installed."""


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise MissingModelError(
            f"dlib is not installed ({exc}); install it: {INSTALL_HINT}"
        ) from exc
    return dlib


@functools.cache
def model_path(filename: str) -> Path:
    """Path of a model file inside face_recognition_models, or a MissingModelError naming it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise MissingModelError(
            f"the dlib model {filename} comes from the face_recognition_models package, "
            f"which is not installed; install it: {INSTALL_HINT}"
        )
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise MissingModelError(
            f"the dlib model file {path} is missing; reinstall it: {INSTALL_HINT}"
        )
    return path


def _cached(name: str, load: Any) -> Any:
    model = getattr(_local, name, None)
    if model is None:
        model = load()
        setattr(_local, name, model)
    return model


def detector() -> Any:
    """dlib's HOG + linear SVM frontal face detector."""
    return _cached("detector", lambda: import_dlib().get_frontal_face_detector())


def shape_predictor() -> Any:
    """The 68-point (iBUG 300-W) landmark model."""
    return _cached("shape", lambda: import_dlib().shape_predictor(str(model_path(SHAPE_68))))


def face_encoder() -> Any:
    """The ResNet that maps an aligned face to a 128-d descriptor."""
    return _cached(
        "encoder", lambda: import_dlib().face_recognition_model_v1(str(model_path(RESNET)))
    )


def check_models(*filenames: str) -> None:
    """Raise MissingModelError now, in the caller's process, rather than inside a worker."""
    import_dlib()
    for filename in filenames:
        model_path(filename)


@dataclass
class Face:
    """The 68 landmarks of the largest face, its box and whether the detector found it."""

    shape: Any  # dlib.full_object_detection
    points: np.ndarray  # (68, 2) float64, (x, y) in pixels
    box: tuple[float, float, float, float]  # left, top, width, height
    found: bool


def find_face(image: np.ndarray, upsample: int) -> Face:
    """Landmarks of the largest detected face in a (H, W) or (H, W, 3) uint8 image.

    The datasets' images are already face crops, so when the detector finds nothing (small,
    blurred or turned faces) the whole crop is used as the face box instead of dropping the
    image; ``found`` says which happened.
    """
    dlib = import_dlib()
    boxes = detector()(image, upsample)
    found = len(boxes) > 0
    if found:
        box = max(boxes, key=lambda r: (r.area(), -r.top(), -r.left()))
    else:
        box = dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1)
    shape = shape_predictor()(image, box)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return Face(shape, points, (box.left(), box.top(), box.width(), box.height()), found)


def face_images(batch: np.ndarray) -> list[np.ndarray]:
    """(B, H, W, C) uint8 -> contiguous (H, W) gray or (H, W, 3) RGB images, as dlib takes."""
    return [np.ascontiguousarray(img[..., 0] if img.shape[-1] == 1 else img) for img in batch]


def dlib_version() -> str:
    return str(getattr(import_dlib(), "__version__", "unknown"))
