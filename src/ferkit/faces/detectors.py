"""Face detectors behind one small interface, and a registry of them by name.

A detector maps an image to face boxes. Three ship: RetinaFace-MobileNet0.25
(:mod:`ferkit.faces.retinaface`, a small CNN run by onnxruntime that also gives 5 landmarks;
``"auto"``, the default), dlib's HOG frontal detector (the one ferkit's landmark features
already use, so the 68-point model starts from the box framing it was trained on) and OpenCV's
Haar cascade (a different failure profile: it often finds faces that dlib misses and vice
versa). ``"dlib-haar"`` chains the last two (the default before RetinaFace). Users plug their
own with :func:`register_detector`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ferkit.errors import FerkitError
from ferkit.faces.images import check_image, to_gray
from ferkit.faces.retinaface import RetinaFaceDetector
from ferkit.features import dlib_models
from ferkit.features.dlib_models import MissingModelError

HAAR_FRONTAL = "haarcascade_frontalface_default.xml"
OPENCV_HINT = 'pip install "opencv-python-headless>=4.8,<5"'

_local = threading.local()


@dataclass(frozen=True)
class Box:
    """A face box in pixels: ``left``, ``top``, ``width``, ``height``, plus the detector's score.

    Scores are only comparable within one detector (dlib: SVM margin, about 0-3; Haar: the last
    stage's weight, about 0-10; RetinaFace: a probability, 0-1). ``landmarks`` holds the points
    a detector finds with the box, as ((x, y), ...) image pixels, or None: RetinaFace gives 5
    (eye centres, nose tip, mouth corners; :mod:`ferkit.faces.retinaface`), dlib and Haar none.
    """

    left: int
    top: int
    width: int
    height: int
    score: float = 0.0
    landmarks: tuple[tuple[float, float], ...] | None = None

    def points(self) -> np.ndarray | None:
        """``landmarks`` as a float64 (N, 2) array, or None."""
        return None if self.landmarks is None else np.array(self.landmarks, dtype=np.float64)

    def mapped(self, left: int, top: int, width: int, height: int, sx: float, sy: float) -> Box:
        """A box at the given pixels with this one's score, its landmarks scaled by (sx, sy)."""
        marks = self.landmarks
        if marks is not None:
            marks = tuple((x * sx, y * sy) for x, y in marks)
        return Box(left, top, width, height, self.score, marks)

    @property
    def right(self) -> int:
        """One past the last column, so ``image[top:bottom, left:right]`` is the box."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def area(self) -> int:
        return self.width * self.height

    def clip(self, shape: tuple[int, ...]) -> Box | None:
        """This box cut to an image of ``shape`` (H, W, ...); None when nothing is left."""
        height, width = shape[:2]
        left, top = max(self.left, 0), max(self.top, 0)
        right, bottom = min(self.right, width), min(self.bottom, height)
        if right <= left or bottom <= top:
            return None
        return Box(left, top, right - left, bottom - top, self.score, self.landmarks)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image) -> list[Box]`` is a detector.

    ``image`` is (H, W) gray or (H, W, 3) RGB uint8; boxes lie inside it. Implementations may
    return the boxes in any order: :func:`ferkit.faces.find_faces` sorts them.
    """

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _clipped(boxes: list[Box], shape: tuple[int, ...]) -> list[Box]:
    kept = (box.clip(shape) for box in boxes)
    return [box for box in kept if box is not None]


class DlibDetector:
    """dlib's HOG + linear SVM frontal face detector.

    ``upsample`` doubles the image that many times before scanning: dlib's window is 80x80, so
    upsample 0 misses faces under about 80 px, 1 finds them down to about 40 px (and costs ~4x
    the time). ``threshold`` is dlib's ``adjust_threshold``: detections scoring below it are
    dropped. The default 0.2 rather than dlib's 0: at upsample 1 dlib fires on the astronaut's
    suit with score 0.12, while 97% of the faces it finds in AffectNet validation crops score
    above 0.2 (86% in FER2013's 48-px crops, which sit at the detector's size limit; ``"auto"``
    then falls back to Haar). Lower it for recall, raise it for precision.
    """

    def __init__(self, upsample: int = 1, threshold: float = 0.2) -> None:
        if not isinstance(upsample, int) or isinstance(upsample, bool) or upsample < 0:
            raise FerkitError(f"upsample must be an integer >= 0, got {upsample!r}")
        self.upsample = upsample
        self.threshold = float(threshold)

    def detect(self, image: np.ndarray) -> list[Box]:
        image = check_image(image)
        detector = dlib_models.detector()
        if hasattr(detector, "run"):
            rects, scores, _ = detector.run(image, self.upsample, self.threshold)
        else:  # a dlib build without run(): no scores, so no threshold either
            rects = detector(image, self.upsample)
            scores = [0.0] * len(rects)
        boxes = [
            Box(r.left(), r.top(), r.width(), r.height(), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return _clipped(boxes, image.shape)

    def __repr__(self) -> str:
        return f"DlibDetector(upsample={self.upsample}, threshold={self.threshold})"


def import_cv2() -> Any:
    """OpenCV, or a MissingModelError saying which package to install."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingModelError(
            f"the Haar face detector needs OpenCV, which is not installed ({exc}); "
            f"install it: {OPENCV_HINT}"
        ) from exc
    return cv2


def haar_cascade(filename: str = HAAR_FRONTAL) -> Any:
    """An OpenCV cascade from ``cv2.data.haarcascades``, loaded once per thread.

    Per thread because a CascadeClassifier keeps scratch state while it scans.
    """
    cache: dict[str, Any] = getattr(_local, "cascades", None) or {}
    _local.cascades = cache
    if filename not in cache:
        cv2 = import_cv2()
        root = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if root is None:
            raise MissingModelError(
                f"this OpenCV ({cv2.__version__}) does not ship its Haar cascades "
                f"(cv2.data.haarcascades); install OpenCV 4: {OPENCV_HINT}"
            )
        cascade = cv2.CascadeClassifier(str(root) + filename)
        if cascade.empty():
            raise MissingModelError(f"cannot load the Haar cascade {root}{filename}")
        cache[filename] = cascade
    return cache[filename]


class HaarDetector:
    """OpenCV's Viola-Jones frontal face cascade (``haarcascade_frontalface_default.xml``).

    ``scale_factor`` is the step between scanned scales, ``min_neighbors`` how many overlapping
    raw hits a face needs (higher: fewer false positives, fewer faces), ``min_size`` the
    smallest face side in pixels. OpenCV is imported on first use, so ferkit works without it
    until a Haar detector actually runs.
    """

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        cascade: str = HAAR_FRONTAL,
    ) -> None:
        if not scale_factor > 1.0:
            raise FerkitError(f"scale_factor must be > 1, got {scale_factor!r}")
        if min_neighbors < 0 or min_size < 1:
            raise FerkitError(
                f"min_neighbors must be >= 0 and min_size >= 1, got {min_neighbors}, {min_size}"
            )
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.cascade = cascade

    def detect(self, image: np.ndarray) -> list[Box]:
        image = check_image(image)
        cascade = haar_cascade(self.cascade)
        rects, _, weights = cascade.detectMultiScale3(
            to_gray(image),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        boxes = [
            Box(int(x), int(y), int(w), int(h), float(s))
            for (x, y, w, h), s in zip(rects, np.ravel(weights), strict=True)
        ]
        return _clipped(boxes, image.shape)

    def __repr__(self) -> str:
        return (
            f"HaarDetector(scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
            f"min_size={self.min_size})"
        )


class FallbackDetector:
    """Runs its detectors in order and returns the boxes of the first that finds any.

    A fallback, not an ensemble: boxes of different detectors are never mixed, so one face is
    never reported twice, and the later detectors cost nothing when the first succeeds.
    """

    def __init__(self, *detectors: FaceDetector) -> None:
        if not detectors:
            raise FerkitError("FallbackDetector needs at least one detector")
        self.detectors = detectors

    def detect(self, image: np.ndarray) -> list[Box]:
        for detector in self.detectors:
            boxes = detector.detect(image)
            if boxes:
                return boxes
        return []

    def __repr__(self) -> str:
        return f"FallbackDetector({', '.join(map(repr, self.detectors))})"


def dlib_haar_detector(
    dlib: dict[str, Any] | None = None, haar: dict[str, Any] | None = None
) -> FallbackDetector:
    """dlib first; only when dlib finds no face, the Haar cascade (a fallback, not a vote).

    ferkit's ``"auto"`` until issue 19 (now ``"dlib-haar"``): dlib's boxes suit the 68-point
    model, which was trained on them; Haar rescues faces dlib misses. ``dlib`` and ``haar``
    are keyword arguments for each detector.
    """
    return FallbackDetector(DlibDetector(**(dlib or {})), HaarDetector(**(haar or {})))


DetectorFactory = Callable[..., FaceDetector]
# "auto" is RetinaFace with its defaults (options as :class:`RetinaFaceDetector`).
# Chosen by benchmarks/detectors.py (docs/BENCHMARKS.md, "Face detectors (issue 19)"): on 200
# synthetic 640x480 scenes with 416 dataset faces of 24-200 px it finds as many faces as
# ``"dlib-haar"`` (recall 0.611 for both) with half its false positives in scenes, none on
# skimage's face-free images (dlib-haar: 0.43 per image), in about an eighth of the time; it
# finds more of the faces over 80 px and of the rotated ones, fewer of those under 80 px.
# It also gives the 5 points that align a face without dlib's 68-point fit.
_REGISTRY: dict[str, DetectorFactory] = {
    "dlib": DlibDetector,
    "haar": HaarDetector,
    "retinaface": RetinaFaceDetector,
    "dlib-haar": dlib_haar_detector,
    "auto": RetinaFaceDetector,
}


def register_detector(name: str, factory: DetectorFactory, *, replace: bool = False) -> None:
    """Make ``create_detector(name, **kwargs)`` call ``factory(**kwargs)``.

    ``factory`` is anything that returns an object with ``detect(image) -> list[Box]`` (a class
    or a function). Registering a taken name is an error unless ``replace`` is true, so a plugin
    cannot silently shadow a built-in.
    """
    if not isinstance(name, str) or not name:
        raise FerkitError(f"a detector name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise FerkitError(f"the factory for detector {name!r} is not callable: {factory!r}")
    if name in _REGISTRY and not replace:
        raise FerkitError(
            f"a face detector named {name!r} is already registered; pass replace=True to override"
        )
    _REGISTRY[name] = factory


def unregister_detector(name: str) -> None:
    """Forget a registered detector (tests and plugins clean up with this)."""
    _REGISTRY.pop(name, None)


def detector_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def _check_options(name: str, factory: DetectorFactory, kwargs: dict[str, Any]) -> None:
    """A FerkitError naming the detector when ``kwargs`` do not fit its factory's signature.

    Checked by binding, not by catching TypeError from the call, so a bug inside a factory
    still surfaces as itself.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: let the call decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise FerkitError(f"bad options for face detector {name!r}: {exc}") from None


def create_detector(name: str, **kwargs: Any) -> FaceDetector:
    """The detector registered as ``name`` ("auto", "retinaface", "dlib", "haar", "dlib-haar"
    or a user's), built with kwargs.

    An unknown name is a FerkitError that lists the known ones.
    """
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(detector_names())
        raise FerkitError(f"unknown face detector {name!r}; known: {known}") from None
    _check_options(name, factory, kwargs)
    detector = factory(**kwargs)
    if not isinstance(detector, FaceDetector):
        raise FerkitError(
            f"the factory for face detector {name!r} returned {type(detector).__name__}, "
            "which has no detect(image) method"
        )
    return detector
