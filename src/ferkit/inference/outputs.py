"""Files ``ferkit predict --out DIR`` writes: annotated copies, video timelines, predictions.json.

Output names mirror the inputs (``photos/a/b.jpg`` -> ``DIR/photos/a/b.jpg``); two inputs that
would land on the same name (same-named files from different folders) get ``-2``, ``-3``... on
the later one, so no result overwrites another. Every file is written atomically (a temp file
renamed into place), so an interrupted run never leaves a half-written image, CSV or video.
"""

from __future__ import annotations

import csv
import io as text_io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ferkit import io
from ferkit.errors import FerkitError
from ferkit.inference.annotate import annotate
from ferkit.inference.inputs import InputFile, VideoFrames
from ferkit.inference.results import SCORE_DECIMALS, FaceResult, ImageResult, PredictionReport

REPORT_FILE = "predictions.json"
# Formats Pillow writes as 8-bit RGB: an annotated copy keeps the input's name. Others (.gif is
# palette-only, .pgm gray-only) get ".png" appended, so the drawing keeps its colours.
RGB_SUFFIXES = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
VIDEO_FOURCC = "mp4v"
FALLBACK_FPS = 25.0


def timeline_header(classes: Sequence[str], probabilities: bool) -> list[str]:
    """Columns of a video's timeline CSV (``p_<class>`` only for models with probabilities)."""
    head = ["frame", "time_s", "face", "left", "top", "width", "height", "label", "score"]
    return head + ([f"p_{name}" for name in classes] if probabilities else []) + ["rejected"]


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.{SCORE_DECIMALS}f}"


def _face_row(face: FaceResult, classes: Sequence[str], probabilities: bool) -> list[Any]:
    box = face.box
    row: list[Any] = [
        box.left,
        box.top,
        box.width,
        box.height,
        face.label or "",
        _score(face.score),
    ]
    if probabilities:
        probs = face.probabilities or {}
        row += [_score(probs.get(name)) for name in classes]
    return [*row, "; ".join(face.reasons)]


def timeline_rows(
    frames: Sequence[ImageResult], classes: Sequence[str], probabilities: bool
) -> list[list[Any]]:
    """One row per face per analysed frame (faces numbered from 1, left to right), and one row
    with empty face columns for a frame without a face, so the timeline shows every frame that
    was looked at."""
    empty = [""] * (len(timeline_header(classes, probabilities)) - 3)
    rows = []
    for frame in frames:
        start = [frame.frame, f"{frame.time_s or 0.0:.6f}"]
        if not frame.faces:
            rows.append([*start, "", *empty])
        for number, face in enumerate(frame.faces, start=1):
            rows.append([*start, number, *_face_row(face, classes, probabilities)])
    return rows


class OutputWriter:
    """Writes one ``predict_many`` call's files under ``root``, claiming each name once."""

    def __init__(self, root: str | os.PathLike[str], landmarks: bool = False) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise FerkitError(f"{self.root}: --out must be a folder, and this is a file")
        self.landmarks = landmarks
        self._taken: set[str] = {REPORT_FILE}

    def _claim(self, names: Sequence[Path]) -> list[Path]:
        """``names`` as given, or all with the same ``-n`` suffix when any is taken."""
        number = 1
        while True:
            suffix = "" if number == 1 else f"-{number}"
            candidates = [name.with_name(f"{name.stem}{suffix}{name.suffix}") for name in names]
            keys = [c.as_posix().lower() for c in candidates]  # case-insensitive file systems
            if not any(key in self._taken for key in keys):
                self._taken.update(keys)
                return candidates
            number += 1

    def write_image(self, item: InputFile, image: np.ndarray, result: ImageResult) -> str:
        """The annotated copy of one image; returns its path relative to ``root``."""
        name = item.name
        fmt = RGB_SUFFIXES.get(name.suffix.lower())
        if fmt is None:
            name, fmt = name.with_name(name.name + ".png"), "PNG"
        (name,) = self._claim([name])
        drawn = annotate(image, result.faces, self.landmarks)
        buffer = text_io.BytesIO()
        options = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
        Image.fromarray(drawn, "RGB").save(buffer, format=fmt, **options)
        io.write_bytes(self.root / name, buffer.getvalue())
        return name.as_posix()

    def video_names(self, item: InputFile) -> tuple[Path, Path]:
        """(timeline CSV, annotated MP4) names of a video, claimed together."""
        timeline, video = self._claim(
            [item.name.with_suffix(".csv"), item.name.with_suffix(".mp4")]
        )
        return timeline, video

    def write_timeline(
        self, name: Path, frames: Sequence[ImageResult], classes: Sequence[str], probs: bool
    ) -> str:
        buffer = text_io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(timeline_header(classes, probs))
        writer.writerows(timeline_rows(frames, classes, probs))
        io.write_text(self.root / name, buffer.getvalue())
        return name.as_posix()

    def write_video(
        self, name: Path, source: Path, frames: Sequence[ImageResult], fps: float | None
    ) -> str:
        """Every frame of ``source`` re-encoded as MP4 with the boxes of the last analysed frame.

        Reads the video a second time instead of holding its frames: memory stays flat for
        long videos. With ``every`` > 1, a frame between two analysed ones shows the boxes of
        the previous analysed frame, so the video plays at its own rate and length.
        """
        from ferkit.faces.detectors import import_cv2

        cv2 = import_cv2()
        by_frame = {frame.frame: frame.faces for frame in frames}
        target = self.root / name
        faces: list[FaceResult] = []
        with VideoFrames(source) as video, io.atomic_path(target, suffix=".mp4") as tmp:
            writer = None
            try:
                for index, bgr in enumerate(video.raw_frames()):
                    if writer is None:
                        writer = self._open_writer(cv2, tmp, target, fps, bgr.shape)
                    faces = by_frame.get(index, faces)
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    drawn = annotate(rgb, faces, self.landmarks)
                    writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            finally:
                if writer is not None:
                    writer.release()
        return name.as_posix()

    @staticmethod
    def _open_writer(
        cv2: Any, tmp: Path, target: Path, fps: float | None, shape: tuple[int, ...]
    ) -> Any:
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC)
        writer = cv2.VideoWriter(str(tmp), fourcc, fps or FALLBACK_FPS, (shape[1], shape[0]))
        if not writer.isOpened():
            raise FerkitError(
                f"{target}: OpenCV cannot write an MP4 ({VIDEO_FOURCC}) video here; "
                "its FFmpeg backend is missing"
            )
        return writer

    def write_report(self, report: PredictionReport) -> Path:
        path = self.root / REPORT_FILE
        io.write_json(path, report.to_dict())
        return path
