"""What a prediction returns: per face, per image (or video frame), per video, per batch.

Every result converts to plain JSON types with ``to_dict()``; ``PredictionReport.to_dict()`` is
the document ``ferkit predict --json`` prints and ``predictions.json`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ferkit import __version__
from ferkit.data.problems import Problem
from ferkit.faces import Box, Quality

SCORE_DECIMALS = 4


def _round(value: float | None, decimals: int = SCORE_DECIMALS) -> float | None:
    return None if value is None else round(float(value), decimals)


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, what the model says, and whether it passed the quality gate.

    ``label`` is the canonical emotion name (``angry``, ``happy``...), ``None`` when the face
    failed the quality gate and was not classified. ``score`` is the probability of ``label``
    and ``probabilities`` maps every canonical class to its probability, both ``None`` when
    the model gives no probabilities (ferkit's SVMs do not). ``quality`` is ``None`` when it
    was not assessed (``detect=False``: the whole image is the face). ``landmarks`` (68 x, y
    image points) are kept only when asked for.
    """

    box: Box
    label: str | None
    score: float | None = None
    probabilities: dict[str, float] | None = None
    quality: Quality | None = None
    landmarks: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        """True unless the quality gate rejected the face."""
        return self.quality is None or self.quality.ok

    @property
    def reasons(self) -> list[str]:
        """Why the quality gate rejected the face (empty when it did not)."""
        return [] if self.quality is None else list(self.quality.reasons)

    @property
    def classified(self) -> bool:
        return self.label is not None

    def to_dict(self) -> dict[str, Any]:
        box = self.box
        out: dict[str, Any] = {
            "box": {"left": box.left, "top": box.top, "width": box.width, "height": box.height},
            "detector_score": _round(box.score),
            "label": self.label,
            "score": _round(self.score),
            "probabilities": (
                None
                if self.probabilities is None
                else {k: _round(v) for k, v in self.probabilities.items()}
            ),
            "quality": _quality_dict(self.quality),
        }
        if self.landmarks is not None:
            out["landmarks"] = np.round(self.landmarks, 1).tolist()
        return out


def _quality_dict(quality: Quality | None) -> dict[str, Any] | None:
    if quality is None:
        return None
    return {
        "ok": quality.ok,
        "reasons": list(quality.reasons),
        "face_px": _round(quality.face_px, 1),
        "sharpness": _round(quality.sharpness, 3),
        "brightness": _round(quality.brightness, 1),
        "contrast": _round(quality.contrast, 1),
        "roll": _round(quality.roll, 1),
        "yaw": _round(quality.yaw, 1),
    }


@dataclass
class ImageResult:
    """The faces of one image (or of one analysed video frame), left to right.

    ``source`` is the file (or ``"<array>"``); ``frame`` and ``time_s`` are set for video
    frames; ``annotated`` is the annotated copy's path relative to the output folder, when one
    was written. Zero faces is a result, not an error.
    """

    source: str
    width: int
    height: int
    faces: list[FaceResult] = field(default_factory=list)
    frame: int | None = None
    time_s: float | None = None
    annotated: str | None = None

    @property
    def rejected(self) -> int:
        return sum(not face.ok for face in self.faces)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.frame is None:
            out.update(source=self.source, width=self.width, height=self.height)
        else:
            out.update(frame=self.frame, time_s=_round(self.time_s, 6))
        out["faces"] = [face.to_dict() for face in self.faces]
        if self.annotated is not None:
            out["annotated"] = self.annotated
        return out


@dataclass
class VideoResult:
    """A video's analysed frames (every ``every``-th, from frame 0) and its output files.

    ``frames_read`` counts every frame decoded; ``fps`` is the container's rate (``None`` when
    it declares none, then times come from the decoder's timestamps).
    """

    source: str
    width: int
    height: int
    fps: float | None
    every: int
    frames_read: int
    frames: list[ImageResult] = field(default_factory=list)
    timeline: str | None = None
    annotated: str | None = None

    @property
    def faces(self) -> int:
        return sum(len(frame.faces) for frame in self.frames)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "fps": _round(self.fps, 3),
            "every": self.every,
            "frames_read": self.frames_read,
            "frames_analysed": len(self.frames),
            "frames": [frame.to_dict() for frame in self.frames],
        }
        if self.timeline is not None:
            out["timeline"] = self.timeline
        if self.annotated is not None:
            out["annotated"] = self.annotated
        return out


def _problem_dict(problem: Problem) -> dict[str, str]:
    """A problem as JSON, without the dataset-only fields (split, severity: the list says it)."""
    return {"kind": problem.kind, "path": problem.path, "reason": problem.reason}


@dataclass
class PredictionReport:
    """Everything one ``predict_many`` call produced, including what it could not read.

    ``errors`` are inputs that could not be read (missing, empty, corrupt, not an image or
    video): each has the file and the reason. ``skipped`` are files passed over while walking
    a folder (not an image or video by their extension, folder links not followed) and folders
    without any image: listed so nothing disappears unseen, but not errors. ``warnings`` are
    inputs read only in part (a video that ended before its declared length).
    """

    model: dict[str, Any]
    options: dict[str, Any]
    images: list[ImageResult] = field(default_factory=list)
    videos: list[VideoResult] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every input could be read (faces or not)."""
        return not self.errors

    def all_faces(self) -> list[FaceResult]:
        faces = [face for image in self.images for face in image.faces]
        return faces + [face for v in self.videos for frame in v.frames for face in frame.faces]

    def summary(self) -> dict[str, int]:
        faces = self.all_faces()
        return {
            "images": len(self.images),
            "videos": len(self.videos),
            "frames": sum(len(v.frames) for v in self.videos),
            "faces": len(faces),
            "classified": sum(face.classified for face in faces),
            "rejected": sum(not face.ok for face in faces),
            "errors": len(self.errors),
            "skipped": len(self.skipped),
            "warnings": len(self.warnings),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ferkit_version": __version__,
            "model": self.model,
            "options": self.options,
            "summary": self.summary(),
            "images": [image.to_dict() for image in self.images],
            "videos": [video.to_dict() for video in self.videos],
            "errors": [_problem_dict(problem) for problem in self.errors],
            "skipped": [_problem_dict(problem) for problem in self.skipped],
            "warnings": [_problem_dict(problem) for problem in self.warnings],
        }
