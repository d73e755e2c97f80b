"""Photos and videos in, one emotion per face out: the engine behind ``ferkit predict``.

A :class:`Predictor` holds one model and the face pipeline set up for it: faces are cut with
:func:`ferkit.faces.find_faces` at the model's own image size and colour, framed like the data
the model was trained on (its card's ``trained_on``: AffectNet or FER2013 framing, else the
default), then classified in batches across images and video frames.

Faces that fail the quality gate (too small, blurred, dark, turned away...) are returned with
their reasons and, by default, *no label*: a confident answer on a 20-pixel or blurred face is
worse than none. ``classify_rejected=True`` labels them anyway (they stay flagged).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from ferkit.data.problems import Problem
from ferkit.errors import FerkitError
from ferkit.faces import FRAMINGS, THRESHOLDS, Box, FaceDetector, create_detector, find_faces
from ferkit.faces.align import Framing
from ferkit.faces.framing import framing_name
from ferkit.faces.images import check_image, whole_image_crop
from ferkit.faces.scale import DEFAULT_MAX_DETECT_PIXELS, scaled_box
from ferkit.inference.inputs import (
    InputFile,
    ReadImage,
    UnreadableInputError,
    VideoFrames,
    collect_inputs,
    read_image_scaled,
)
from ferkit.inference.model import (
    classify,
    has_probabilities,
    quiet_features,
    resolve_model,
)
from ferkit.inference.outputs import OutputWriter
from ferkit.inference.results import FaceResult, ImageResult, PredictionReport, VideoResult
from ferkit.models.crops import DEFAULT_CROP_FRACTION, crop_fraction_of, crops_of, multi_crop
from ferkit.models.flip import flips_averaged, single_view
from ferkit.models.resampling import resample_via_of, resampling_backend, with_resampling
from ferkit.models.store import Run

T = TypeVar("T")
DEFAULT_BATCH_SIZE = 64
# Images (or frames) are held until their crops are classified; past this many pixels the batch
# is classified early, so a folder of 12-megapixel photos never sits in memory at once.
MAX_PENDING_PIXELS = 50_000_000


# A JPEG decoded at a reduced scale for detection (``read_image_scaled(min_pixels=...)``) is
# decoded again at full resolution only when a face's box in it is narrower than this many
# times the model's input side (or the quality gate's minimum face): the crop, which frames
# more than the box, then still has at least 1.5x the pixels of the model's input, so the full
# image would add no detail the model sees.
FULL_DECODE_BELOW = 1.5


@dataclass
class _Pending:
    """An image whose faces are found, waiting for its crops to be classified in a batch.

    ``result`` is in the coordinates of ``image`` (the pixels the faces were found in), and
    ``read`` maps them back to the original (:func:`_to_original`)."""

    result: ImageResult
    image: np.ndarray
    tag: Any
    crops: list[np.ndarray]
    targets: list[int]  # indices into result.faces that get a label
    read: ReadImage | None = None


class _GivenBoxes:
    """A detector that answers the boxes already found (in a reduced copy, scaled to this
    image), so :func:`find_faces` takes landmarks and crops from the full-resolution image
    without searching it again."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[Box]:
        return list(self.boxes)


# What the stream takes: the decoded image, its result to fill, the caller's tag, and the file
# it came from (to decode again at full resolution when it was drafted), or None.
_Item = tuple[ReadImage, ImageResult, T, Path | None]


def _frame_items(video: VideoFrames, every: int) -> Iterator[_Item[None]]:
    for frame in video.frames(every):
        height, width = frame.pixels.shape[:2]
        result = ImageResult(str(video.path), width, height, frame=frame.index, time_s=frame.time_s)
        yield ReadImage(frame.pixels, width, height), result, None, None


def _to_original(result: ImageResult, read: ReadImage | None) -> ImageResult:
    """``result`` in the original image's coordinates when it was decoded at a reduced scale
    (a JPEG over the pixel limit, or drafted for detection): boxes, landmarks, the measured
    face size and the image size multiplied back."""
    if read is None or read.scale == 1.0:
        return result
    s = read.scale
    result.width, result.height = read.width, read.height
    result.faces = [
        dataclasses.replace(
            face,
            box=face.box.mapped(
                round(face.box.left * s),
                round(face.box.top * s),
                round(face.box.width * s),
                round(face.box.height * s),
                s,
                s,
            ),
            landmarks=None if face.landmarks is None else face.landmarks * s,
            quality=None
            if face.quality is None
            else dataclasses.replace(face.quality, face_px=face.quality.face_px * s),
        )
        for face in result.faces
    ]
    return result


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise FerkitError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _framing(framing: str | Mapping[str, float] | None, run: Run) -> tuple[str, Framing]:
    if framing is None:
        name = framing_name(run.card)
        return name, FRAMINGS[name].copy()
    if isinstance(framing, str):
        if framing not in FRAMINGS:
            raise FerkitError(f"unknown framing {framing!r}; known: {', '.join(FRAMINGS)}")
        return framing, FRAMINGS[framing].copy()
    unknown = sorted(set(framing) - {"margin", "lift"})
    if unknown:
        raise FerkitError(f"a framing takes margin and lift, got {', '.join(unknown)}")
    default = FRAMINGS["default"]
    margin = float(framing.get("margin", default["margin"]))
    return "custom", Framing(margin=margin, lift=float(framing.get("lift", default["lift"])))


class Predictor:
    """One model plus the face pipeline that feeds it.

    ``model``: a run folder, a shipped model's name or a loaded :class:`ferkit.models.Run`;
    ``None`` (the default) is :data:`ferkit.inference.DEFAULT_MODEL`, or the first shipped model
    while that one is not shipped. ``detect=False`` takes every input as a face crop already
    (resized to the model's input, no quality gate). ``detector`` is a registered detector name
    or a detector object. ``framing`` (``None``: from the model's card) is a key of
    :data:`ferkit.faces.FRAMINGS` or ``{"margin": .., "lift": ..}``. ``quality`` overrides
    quality thresholds by name (``{"min_face_px": 24}``, see :func:`ferkit.faces.assess_face`).
    Rejected faces get no label unless ``classify_rejected``. ``landmarks`` fits dlib's 68
    points (instead of aligning from the detector's 5, when it gives them) and keeps them in
    the results. ``batch_size`` crops go to the classifier at once. ``flip=False`` scores
    each face once, without its mirror image, when the model averages the two (a network
    trained with ``--tta flip``, as the shipped ones are): half the network time, some
    accuracy lost (``ferkit evaluate --no-flip`` measures it); for other models it changes
    nothing. ``crops=5`` scores each face as its four corners and centre (side
    ``crop_fraction`` of the face, resized back) and averages their probabilities: five times
    the network time (ten with the mirror), +1.0 to +1.5 points on FER2013 val
    (:mod:`ferkit.models.crops`). ``resample_via=224`` passes each face (each crop) through
    the resize round trip via 224 px that the network's training images went through
    (:mod:`ferkit.models.resampling`; a name or folder is then loaded as its torch network).
    A ``Run`` passed in is not changed.

    Loading the model (seconds for a large scikit-learn pipeline) happens once, here: reuse the
    predictor for many calls. The feature extractors of a scikit-learn model are set to cache
    nothing and show no progress bars (prediction inputs are one-off).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Run | None = None,
        *,
        detect: bool = True,
        detector: str | FaceDetector = "auto",
        framing: str | Mapping[str, float] | None = None,
        quality: Mapping[str, float] | None = None,
        classify_rejected: bool = False,
        landmarks: bool = False,
        flip: bool = True,
        crops: int = 1,
        crop_fraction: float = DEFAULT_CROP_FRACTION,
        resample_via: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_detect_pixels: int | None = DEFAULT_MAX_DETECT_PIXELS,
    ) -> None:
        self.batch_size = _positive_int("batch_size", batch_size)
        if max_detect_pixels is not None:
            max_detect_pixels = _positive_int("max_detect_pixels", max_detect_pixels)
        self.max_detect_pixels = max_detect_pixels
        # files are decoded up to the data layer's limit (None); ``ferkit serve`` sets its own
        self.max_pixels: int | None = None
        unknown = sorted(set(quality or {}) - set(THRESHOLDS))
        if unknown:
            known = ", ".join(THRESHOLDS)
            raise FerkitError(f"unknown quality threshold(s) {', '.join(unknown)}; known: {known}")
        self.quality = dict(quality or {})
        backend = resampling_backend(resample_via)  # torch: an ONNX graph cannot take it
        self.run = resolve_model(
            model if isinstance(model, str | Run | None) else Path(model), backend
        )
        self.is_default = model is None
        self.flip = bool(flip)
        if not self.flip:
            self.run = single_view(self.run)  # a copy: a shared Run keeps both views
        self.resample_via = resample_via
        self.run = with_resampling(self.run, resample_via)  # a copy (None: as is); crops next
        self.run = multi_crop(self.run, crops, crop_fraction)  # a copy too (crops=1: as is)
        quiet_features(self.run)
        self.probabilities = has_probabilities(self.run)
        self.framing_name, self.framing = _framing(framing, self.run)
        self.detect = bool(detect)
        self.detector_name = detector if isinstance(detector, str) else type(detector).__name__
        self._detector = create_detector(detector) if isinstance(detector, str) else detector
        if not isinstance(self._detector, FaceDetector):
            raise FerkitError(
                f"detector must be a registered name or have a detect(image) method: {detector!r}"
            )
        self.classify_rejected = bool(classify_rejected)
        self.landmarks = bool(landmarks)

    @property
    def classes(self) -> list[str]:
        """The model's classes, by canonical emotion name (what labels are drawn from)."""
        return list(self.run.canonical)

    def describe(self) -> dict[str, Any]:
        """The model and settings, as recorded in every report."""
        return {
            "name": self.run.name,
            "path": str(self.run.path),
            "kind": self.run.kind,
            "default": self.is_default,
            "classes": self.classes,
            "image_size": self.run.image_size,
            "color": self.run.color,
            "probabilities": self.probabilities,
            # whether each face is scored with its mirror image too (flip TTA, on by default)
            "flip_averaged": flips_averaged(self.run),
            # crop views averaged per face (crops=1: the face as cut)
            "crops": crops_of(self.run),
            # the side the network resamples each face through (its own or resample_via)
            "resample_via": resample_via_of(self.run),
        }

    def options(self, every: int = 1) -> dict[str, Any]:
        return {
            "detect": self.detect,
            "detector": self.detector_name,
            "framing": self.framing_name,
            **self.framing,
            "quality": self.quality,
            "classify_rejected": self.classify_rejected,
            "landmarks": self.landmarks,
            "flip": self.flip,
            "crops": crops_of(self.run),
            "crop_fraction": crop_fraction_of(self.run),
            "resample_via": self.resample_via,  # the override asked for (None: the network's)
            "max_detect_pixels": self.max_detect_pixels,
            "every": every,
        }

    # -- one image ------------------------------------------------------------------------

    def predict_image(self, image: np.ndarray | str | os.PathLike[str]) -> ImageResult:
        """The faces of one photo: a uint8 array ((H, W) gray, (H, W, 1) or (H, W, 3) RGB) or
        an image file. An unreadable file raises :class:`UnreadableInputError` with the reason.
        """
        if not isinstance(image, np.ndarray):
            return self.predict_file(image)[0]
        pixels = check_image(image)
        return self._predict_one(ReadImage(pixels, pixels.shape[1], pixels.shape[0]), None)

    def predict_file(self, path: str | os.PathLike[str]) -> tuple[ImageResult, ReadImage]:
        """The faces of one image file, in the original's pixels, and the image as it was
        decoded to search them (a large JPEG at 1/2, 1/4 or 1/8 scale: ``ferkit serve``
        reports what it scanned). The file is decoded in full only when a face is too small
        in that draft to be cut from it. Unreadable: :class:`UnreadableInputError`."""
        read = self._read(Path(path))
        return self._predict_one(read, Path(path)), read

    def _predict_one(self, read: ReadImage, path: Path | None) -> ImageResult:
        source = "<array>" if path is None else str(path)
        result = ImageResult(source, read.pixels.shape[1], read.pixels.shape[0])
        done = next(self._stream([(read, result, None, path)]))
        return _to_original(done.result, done.read)

    def _read(self, path: Path) -> ReadImage:
        """``path`` decoded for this predictor: a large JPEG at the reduced scale detection
        needs (at least ``max_detect_pixels``), when faces are to be found in it."""
        wanted = self.max_detect_pixels if self.detect else None
        return read_image_scaled(path, min_pixels=wanted, max_pixels=self.max_pixels)

    def _find(self, image: np.ndarray, detector: FaceDetector, max_pixels: int | None) -> list[Any]:
        run = self.run
        return find_faces(
            image,
            detector,
            size=run.image_size,
            color=run.color,
            quality=self.quality,
            max_detect_pixels=max_pixels,
            landmarks="68" if self.landmarks else "auto",
            **self.framing,
        )

    def _needs_full(self, found: list[Any]) -> bool:
        """True when a face found in a drafted image is too small there to be cut from it."""
        side = max(self.run.image_size, float(self.quality.get("min_face_px", 32.0)))
        return any(min(f.box.width, f.box.height) < FULL_DECODE_BELOW * side for f in found)

    def _prepare(
        self, read: ReadImage, result: ImageResult, tag: Any, path: Path | None
    ) -> _Pending:
        """Find (or, with ``detect=False``, take) the faces and cut the crops to classify.

        Faces are searched in ``read`` as decoded; when it was drafted (a large JPEG read at a
        reduced scale) and a face is small in it, the file is decoded again at full resolution
        and the landmarks, crops and quality come from there (the boxes are not searched again).
        """
        run, image = self.run, read.pixels
        if not self.detect:
            result.faces = [FaceResult(Box(0, 0, result.width, result.height), None)]
            crop = whole_image_crop(image, run.image_size, run.color)
            return _Pending(result, image, tag, [crop], [0], read)
        found = self._find(image, self._detector, self.max_detect_pixels)
        if read.draft and path is not None and self._needs_full(found):
            full = read_image_scaled(path, max_pixels=self.max_pixels)
            height, width = full.pixels.shape[:2]
            sy, sx = height / image.shape[0], width / image.shape[1]
            boxes = [scaled_box(f.box, sx, sy, width, height) for f in found]
            found = self._find(full.pixels, _GivenBoxes(boxes), None)
            read, image = full, full.pixels
            result.width, result.height = width, height
        keep = self.landmarks
        result.faces = [
            FaceResult(f.box, None, quality=f.quality, landmarks=f.landmarks if keep else None)
            for f in found
        ]
        targets = [i for i, f in enumerate(found) if f.quality.ok or self.classify_rejected]
        return _Pending(result, image, tag, [found[i].crop for i in targets], targets, read)

    def _classify(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        labels: list[np.ndarray] = []
        probabilities: list[np.ndarray] = []  # stays empty for a model without probabilities
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack(crops[start : start + self.batch_size])
            index, probs = classify(self.run, batch)
            labels.append(index)
            if probs is not None:
                probabilities.append(probs)
        if not labels:
            return np.zeros(0, dtype=np.int64), None
        joined = np.concatenate(probabilities) if probabilities else None
        return np.concatenate(labels), joined

    def _flush(self, pending: list[_Pending]) -> Iterator[_Pending]:
        labels, probabilities = self._classify([crop for p in pending for crop in p.crops])
        names = self.classes
        k = 0
        for item in pending:
            faces = item.result.faces
            for target in item.targets:
                label = names[int(labels[k])]
                probs = None
                score = None
                if probabilities is not None:
                    probs = dict(zip(names, map(float, probabilities[k]), strict=True))
                    score = probs[label]
                faces[target] = dataclasses.replace(
                    faces[target], label=label, score=score, probabilities=probs
                )
                k += 1
            yield item

    def _stream(self, items: Iterable[_Item[T]]) -> Iterator[_Pending]:
        """Results in input order, classifying the crops of several images in one batch (all
        faces of an image, and of consecutive images or frames, up to ``batch_size``)."""
        pending: list[_Pending] = []
        crops = pixels = 0
        for read, result, tag, path in items:
            pending.append(self._prepare(read, result, tag, path))
            crops += len(pending[-1].crops)
            pixels += pending[-1].image.size
            if crops >= self.batch_size or pixels >= MAX_PENDING_PIXELS:
                yield from self._flush(pending)
                pending, crops, pixels = [], 0, 0
        yield from self._flush(pending)

    # -- video ----------------------------------------------------------------------------

    def predict_video(
        self, path: str | os.PathLike[str], every: int = 1, progress: bool = False
    ) -> VideoResult:
        """The faces of frames 0, every, 2 * every... of a video, with their times in seconds.

        An unreadable video raises :class:`UnreadableInputError` with the reason.
        """
        item = InputFile(Path(path), "video", Path(Path(path).name))
        return self._video(item, _positive_int("every", every), None, [], progress)

    def _video(
        self,
        item: InputFile,
        every: int,
        writer: OutputWriter | None,
        warnings: list[Problem],
        progress: bool = False,
    ) -> VideoResult:
        with VideoFrames(item.path) as video:
            total = -(-video.declared_frames // every) if video.declared_frames else None
            bar = tqdm(total=total, desc=item.path.name, unit="frame", disable=not progress)
            results = []
            with bar:
                for done in self._stream(_frame_items(video, every)):
                    results.append(done.result)
                    bar.update()
            if not video.frames_read:
                reason = "no decodable frame (corrupt or not a video)"
                raise UnreadableInputError(Problem("corrupt-video", str(item.path), reason))
            if (truncated := video.truncation()) is not None:
                warnings.append(truncated)
            width, height = results[0].width, results[0].height  # decoded, not declared
            result = VideoResult(
                str(item.path), width, height, video.fps, every, video.frames_read, results
            )
        if writer is not None:
            timeline, annotated = writer.video_names(item)
            result.timeline = writer.write_timeline(
                timeline, results, self.classes, self.probabilities
            )
            result.annotated = writer.write_video(annotated, item.path, results, video.fps)
        return result

    # -- many inputs ----------------------------------------------------------------------

    def _read_images(
        self, items: Sequence[InputFile], report: PredictionReport, bar: tqdm
    ) -> Iterator[_Item[InputFile]]:
        for item in items:
            try:
                read = self._read(item.path)
            except UnreadableInputError as exc:
                report.errors.append(exc.problem)
                bar.update()
                continue
            if (reduced := read.reduction(item.path)) is not None:
                report.warnings.append(reduced)
            height, width = read.pixels.shape[:2]
            yield read, ImageResult(str(item.path), width, height), item, item.path

    def predict_many(
        self,
        inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        every: int = 1,
        out: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> PredictionReport:
        """Predict on files, folders (recursively) and videos; collect what cannot be read.

        Inputs that cannot be read are listed in ``report.errors`` with the reason and the
        others go on. Crops of several images are classified in one batch. With ``out``,
        writes the annotated copies, each video's timeline CSV and annotated MP4, and
        ``predictions.json`` (:mod:`ferkit.inference.outputs`). ``every`` analyses every n-th
        video frame. ``progress`` shows a bar per file (and per video, its frames).
        """
        every = _positive_int("every", every)
        if isinstance(inputs, str | os.PathLike):
            inputs = [inputs]
        writer = OutputWriter(out, self.landmarks) if out is not None else None
        found = collect_inputs(inputs, exclude=out)
        report = PredictionReport(
            self.describe(), self.options(every), errors=found.errors, skipped=found.skipped
        )
        images = [item for item in found.files if item.kind == "image"]
        videos = [item for item in found.files if item.kind == "video"]
        with tqdm(total=len(found.files), desc="predict", unit="file", disable=not progress) as bar:
            for done in self._stream(self._read_images(images, report, bar)):
                result = done.result
                if writer is not None:  # drawn on the pixels the faces were found in
                    result.annotated = writer.write_image(done.tag, done.image, result)
                report.images.append(_to_original(result, done.read))
                bar.update()
            for item in videos:
                try:
                    video = self._video(item, every, writer, report.warnings, progress)
                except UnreadableInputError as exc:
                    report.errors.append(exc.problem)
                else:
                    report.videos.append(video)
                bar.update()
        if writer is not None:
            writer.write_report(report)
        return report
