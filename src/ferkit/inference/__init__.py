"""Prediction on photos, folders and videos: faces found, cut, classified, reported.

``Predictor(model)`` holds a model and the face pipeline set up for it; ``predict_image``,
``predict_video`` and ``predict_many`` return JSON-serialisable results (``to_dict()``), and
``predict_many(..., out=DIR)`` writes annotated copies, video timelines and predictions.json.
``ferkit predict`` is the command-line face of it (README, *Predicting on photos and videos*).
"""

from __future__ import annotations

from ferkit.faces.framing import framing_name  # how a model's faces are cut
from ferkit.inference.inputs import (
    VIDEO_EXTENSIONS,
    UnreadableInputError,
    collect_inputs,
    is_video_name,
    read_image,
)
from ferkit.inference.model import DEFAULT_MODEL, default_model_path
from ferkit.inference.outputs import REPORT_FILE, timeline_header
from ferkit.inference.predictor import Predictor
from ferkit.inference.results import FaceResult, ImageResult, PredictionReport, VideoResult

__all__ = [
    "DEFAULT_MODEL",
    "REPORT_FILE",
    "VIDEO_EXTENSIONS",
    "FaceResult",
    "ImageResult",
    "PredictionReport",
    "Predictor",
    "UnreadableInputError",
    "VideoResult",
    "collect_inputs",
    "default_model_path",
    "framing_name",
    "is_video_name",
    "read_image",
    "timeline_header",
]
