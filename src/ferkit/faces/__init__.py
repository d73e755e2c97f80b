"""The face pipeline for photos: detect faces (RetinaFace by default, with 5 landmarks), find
their landmarks (the detector's 5, or dlib's 68), cut aligned crops framed like FER2013/AffectNet
training images, and say which faces are too poor to classify.

``find_faces(image)`` does all of it; the steps are public for callers that need one of them.
Detectors are pluggable by name (:func:`create_detector`, :func:`register_detector`).
README (*Faces in photos*) and docs/BENCHMARKS.md have the defaults and their measurements.
"""

from __future__ import annotations

from ferkit.faces.align import (
    DEFAULT_LIFT,
    DEFAULT_MARGIN,
    FRAMINGS,
    align_face,
    face_size,
    face_transform,
    landmarks_68,
    roll_degrees,
    transform_points,
)
from ferkit.faces.detectors import (
    Box,
    DlibDetector,
    FaceDetector,
    FallbackDetector,
    HaarDetector,
    create_detector,
    detector_names,
    register_detector,
    unregister_detector,
)
from ferkit.faces.framing import framing_name, largest_face
from ferkit.faces.pipeline import DetectedFace, find_faces
from ferkit.faces.quality import THRESHOLDS, Quality, assess_face, yaw_degrees
from ferkit.faces.retinaface import RetinaFaceDetector

__all__ = [
    "DEFAULT_LIFT",
    "DEFAULT_MARGIN",
    "FRAMINGS",
    "THRESHOLDS",
    "Box",
    "DetectedFace",
    "DlibDetector",
    "FaceDetector",
    "FallbackDetector",
    "HaarDetector",
    "Quality",
    "RetinaFaceDetector",
    "align_face",
    "assess_face",
    "create_detector",
    "detector_names",
    "face_size",
    "face_transform",
    "find_faces",
    "framing_name",
    "landmarks_68",
    "largest_face",
    "register_detector",
    "roll_degrees",
    "transform_points",
    "unregister_detector",
    "yaw_degrees",
]
