"""What ``ferkit predict`` reads: image files, folders of them (recursively) and videos.

Images are decoded by the data layer's :func:`ferkit.data.images.decode_image` (decompression
bomb limits, EXIF rotation, 16-bit, CMYK, alpha and palette images), so a user's photo is read
exactly as a training image is. Videos are read with OpenCV. Every input that yields nothing
becomes a :class:`ferkit.data.Problem` with the file and the reason; none is dropped silently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ferkit.data import images
from ferkit.data.images import ImageProblem, decode_image, is_image_name
from ferkit.data.problems import Problem
from ferkit.data.scan import file_key, path_kind, walk_files
from ferkit.errors import InputError

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
Kind = Literal["image", "video"]


class UnreadableInputError(InputError):
    """An input file that cannot be read; ``problem`` holds its kind, path and reason."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(f"{problem.path}: {problem.reason}")


def is_video_name(path: str | os.PathLike[str]) -> bool:
    """True when the extension is one ``ferkit predict`` reads as a video."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class InputFile:
    """One file to predict on; ``name`` is where its outputs go under ``--out`` (relative)."""

    path: Path
    kind: Kind
    name: Path


@dataclass
class CollectedInputs:
    files: list[InputFile]
    errors: list[Problem]
    skipped: list[Problem]


def _kind(path: Path) -> Kind:
    return "video" if is_video_name(path) else "image"


# what a folder walk records that the user must hear about as an error (exit 1), not a skip
_ERROR_KINDS = frozenset({"unreadable-folder", "unreadable-file"})


def _walk(folder: Path, base: Path, out: CollectedInputs, exclude: tuple[int, int] | None) -> None:
    """Every image and video under ``folder``, sorted; everything else is recorded.

    Folder links are not followed (a link back up the tree would never end); file links are.
    Only regular files are read: a FIFO named ``.jpg`` would block ``open`` for ever. A folder
    that cannot be read is an error. ``exclude`` (the output folder) is not read, so a second
    run over ``.`` with ``--out ./preds`` does not predict on the first run's annotated copies.
    """
    found = 0
    problems: list[Problem] = []
    excluded = [exclude] if exclude is not None else []
    for name in walk_files(folder, problems, follow_links=False, exclude=excluded):
        path = Path(name)
        if is_image_name(name) or is_video_name(name):
            out.files.append(InputFile(path, _kind(path), base / path.relative_to(folder)))
            found += 1
        else:
            suffix = path.suffix or "(none)"
            reason = f"not an image or video file (extension {suffix})"
            problems.append(Problem("not-an-image", str(path), reason))
    for problem in problems:
        (out.errors if problem.kind in _ERROR_KINDS else out.skipped).append(problem)
    if not found and not any(p.kind in _ERROR_KINDS for p in problems):
        out.skipped.append(Problem("no-images", str(folder), "folder holds no image or video file"))


def collect_inputs(
    inputs: Sequence[str | os.PathLike[str]], exclude: str | os.PathLike[str] | None = None
) -> CollectedInputs:
    """The files behind ``inputs`` (files and folders), in the order given, each once.

    A file is read whatever its extension (a photo saved without one still decodes), as a video
    when its extension says so; a folder contributes the image and video files below it. A
    path that does not exist, is a link loop or is not a regular file (a FIFO, a device) is an
    error. Output names mirror the inputs: a file keeps its name, a folder's files keep their
    path below the folder, under the folder's own name. Folders are not searched below
    ``exclude`` (the output folder).
    """
    out = CollectedInputs([], [], [])
    excluded = file_key(exclude) if exclude is not None else None
    for item in inputs:
        path = Path(item)
        kind, reason = path_kind(path)
        if kind == "dir":
            _walk(path, Path(Path(os.path.realpath(path)).name or "input"), out, excluded)
        elif kind == "file":
            out.files.append(InputFile(path, _kind(path), Path(path.name)))
        elif kind == "unreadable-file" and not os.path.lexists(path):
            out.errors.append(Problem("missing", str(path), "no such file or folder"))
        else:
            out.errors.append(Problem(kind, str(path), reason))
    seen: set[tuple[int, int] | str] = set()
    unique = []
    for file in out.files:
        key = file_key(file.path) or os.path.abspath(file.path)
        if key not in seen:
            seen.add(key)
            unique.append(file)
    out.files = unique
    return out


@dataclass(frozen=True)
class ReadImage:
    """An image's pixels as decoded, and the original's size: ``scale`` > 1 when a JPEG was
    decoded at a reduced scale (1/2, 1/4 or 1/8), so boxes found in ``pixels`` are multiplied
    by ``scale`` to be in the original's coordinates. That is forced for a JPEG over the pixel
    limit (see ``DEFAULT_MAX_PIXELS`` in :mod:`ferkit.data.images`), and chosen (``draft``)
    when the caller asked for fewer pixels to detect faces in: then ``path`` can be decoded
    again at full resolution (:func:`read_image_scaled` without ``min_pixels``)."""

    pixels: np.ndarray
    width: int
    height: int
    scale: float = 1.0
    draft: bool = False

    def reduction(self, path: str | os.PathLike[str]) -> Problem | None:
        """The warning that says detection ran at a forced reduced scale, or None."""
        if self.scale == 1.0 or self.draft:
            return None
        h, w = self.pixels.shape[:2]
        reason = (
            f"{self.width}x{self.height} is over the limit of {images.DEFAULT_MAX_PIXELS:,} "
            f"pixels: faces were found at 1/{self.scale:g} scale ({w}x{h}); boxes and landmarks "
            "are in the original's coordinates, the annotated copy is at the reduced scale"
        )
        return Problem("reduced-scale", str(path), reason, severity="warning")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file, or :class:`UnreadableInputError` saying why.

    Decoded at full size (face detection needs the detail) up to the data layer's pixel limit
    (100 megapixels: a 48 MP phone photo is read whole); past it a decompression bomb is
    refused, and a JPEG is decoded at a reduced scale (:func:`read_image_scaled` says which).
    """
    return read_image_scaled(path).pixels


def read_image_scaled(
    path: str | os.PathLike[str],
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> ReadImage:
    """:func:`read_image` plus the original's size and the scale it was decoded at.

    ``min_pixels``: a JPEG larger than needed decodes at 1/2, 1/4 or 1/8 scale, keeping at
    least that many pixels (``draft``; a 24 MP photo decodes at 6 MP in a quarter of the time
    when faces are searched on 4 MP anyway). ``max_pixels`` is the decode limit (None: the
    data layer's; ``ferkit serve`` sets its own, lower one): a JPEG over it is always reduced,
    and not a draft, since it cannot be decoded in full.
    """
    if max_pixels is None:
        max_pixels = images.DEFAULT_MAX_PIXELS
    try:
        pixels = decode_image(path, color="rgb", max_pixels=max_pixels, min_pixels=min_pixels)
    except ImageProblem as exc:
        raise UnreadableInputError(Problem(exc.kind, str(path), exc.reason)) from None
    height, width = pixels.shape[:2]
    header = images.peek_image(path)
    if header is None or header[0] * header[1] <= width * height:
        return ReadImage(pixels, width, height)
    big, small = max(header[:2]), min(header[:2])  # EXIF rotation may have swapped the sides
    full = (big, small) if width >= height else (small, big)
    draft = min_pixels is not None and big * small <= max_pixels
    return ReadImage(pixels, full[0], full[1], full[0] / width, draft)


# -- video --------------------------------------------------------------------------------------


def _cv2() -> Any:
    from ferkit.faces.detectors import import_cv2  # a clear message when OpenCV is missing

    return import_cv2()


@dataclass
class Frame:
    index: int
    time_s: float
    pixels: np.ndarray  # (H, W, 3) uint8 RGB


class VideoFrames:
    """A video opened with OpenCV: its size and rate, and its frames as RGB arrays.

    Times are ``frame / fps`` when the container declares a rate (exact and reproducible),
    else the decoder's timestamp. Opening refuses empty and undecodable files with the reason.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._cv2 = _cv2()
        problem = self._check_file()
        if problem:
            raise UnreadableInputError(problem)
        self._capture = self._cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            raise UnreadableInputError(
                Problem("corrupt-video", str(self.path), "not a decodable video (unknown format)")
            )
        cap = self._capture
        fps = float(cap.get(self._cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = fps if math.isfinite(fps) and fps > 0 else None
        self.declared_frames = max(int(cap.get(self._cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        self.width = int(cap.get(self._cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(cap.get(self._cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.frames_read = 0

    def _check_file(self) -> Problem | None:
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            return Problem("unreadable-file", str(self.path), f"cannot read file: {exc.strerror}")
        if size == 0:
            return Problem("empty-file", str(self.path), "empty file (0 bytes)")
        return None

    def _time(self, index: int) -> float:
        if self.fps:
            return index / self.fps
        return float(self._capture.get(self._cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Frames 0, every, 2 * every... as RGB; the frames in between are grabbed, not decoded."""
        cv2, cap = self._cv2, self._capture
        index = 0
        while True:
            wanted = index % every == 0
            if wanted:
                ok, bgr = cap.read()
            else:
                ok, bgr = cap.grab(), None
            if not ok:
                return
            self.frames_read += 1
            if wanted:
                yield Frame(index, self._time(index), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def raw_frames(self) -> Iterator[np.ndarray]:
        """Every frame as decoded (BGR), for re-encoding."""
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                return
            yield bgr

    def truncation(self) -> Problem | None:
        """A warning when fewer frames decoded than the container declares (a damaged file)."""
        if self.declared_frames and self.frames_read < self.declared_frames:
            return Problem(
                "truncated-video",
                str(self.path),
                f"decoded {self.frames_read} of the {self.declared_frames} frames the file "
                "declares (truncated or damaged)",
                severity="warning",
            )
        return None

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
