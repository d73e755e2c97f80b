"""The fast prediction path (issue 19): crops reach the network in batches, a large JPEG is
decoded at the reduced scale detection needs (and again in full only for small faces), and
every shipped network answers the same under torch and onnxruntime.

The batching tests wrap a counting stand-in classifier in a :class:`ferkit.models.store.Run`, so
they measure calls, not answers. The decoding tests upscale skimage's astronaut into a JPEG
(her face lies in x 170-300, y 40-200 of the 512x512 photo) and use the shipped ``fer2013``,
which calls her happy with most of the probability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import FACE_REGION
from ferkit.data.images import decode_image
from ferkit.faces import Box
from ferkit.inference import Predictor
from ferkit.inference import predictor as predictor_module
from ferkit.models import load_run
from ferkit.models.store import Run
from ferkit.weights import shipped_models

CLASSES = ["angry", "happy", "sad"]


class CountingClassifier:
    """Answers uniform probabilities and records the size of every batch it is given."""

    backend = "fake"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        return np.full((len(images), len(CLASSES)), 1.0 / len(CLASSES))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)


class ThreeBoxes:
    """A detector that finds three faces in any image."""

    def detect(self, image: np.ndarray) -> list[Box]:
        return [Box(10 + 60 * i, 20, 50, 50) for i in range(3)]


def counting_run(tmp_path: Path) -> tuple[Run, CountingClassifier]:
    estimator = CountingClassifier()
    card = {"name": "counting", "classes": CLASSES, "canonical": CLASSES}
    return Run(tmp_path, "torch", CLASSES, CLASSES, 24, "gray", estimator, card), estimator


def noise(seed: int, size: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# -- batching ---------------------------------------------------------------------------------


def test_all_faces_of_an_image_go_to_the_network_in_one_call(tmp_path: Path) -> None:
    run, counter = counting_run(tmp_path)
    predictor = Predictor(run, detector=ThreeBoxes(), classify_rejected=True)
    result = predictor.predict_image(noise(0))
    assert len(result.faces) == 3 and all(f.label for f in result.faces)
    assert counter.batches == [3]


def test_a_folder_is_classified_across_images_in_bounded_batches(tmp_path: Path) -> None:
    for i in range(10):
        Image.fromarray(noise(i, 32)).save(tmp_path / f"{i:02d}.png")
    run, counter = counting_run(tmp_path)
    report = Predictor(run, detect=False, batch_size=4).predict_many(tmp_path)
    assert len(report.images) == 10 and all(i.faces[0].label for i in report.images)
    assert counter.batches == [4, 4, 2]


def test_video_frames_are_classified_together(tmp_path: Path) -> None:
    from test_predict import write_video

    video = write_video(tmp_path / "clip.mp4", [noise(i, 64) for i in range(6)])
    run, counter = counting_run(tmp_path)
    result = Predictor(run, detect=False).predict_video(video)
    assert len(result.frames) == 6
    assert counter.batches == [6]


# -- reduced-scale decoding -------------------------------------------------------------------


def big_jpeg(astronaut: np.ndarray, path: Path, factor: int) -> Path:
    side = 512 * factor
    Image.fromarray(astronaut).resize((side, side), Image.Resampling.BICUBIC).save(path, quality=92)
    return path


def test_decode_image_drafts_a_jpeg_down_to_the_pixels_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(noise(1, 400)[:300]).save(path)  # 400x300 = 120,000 pixels
    assert decode_image(path).shape == (300, 400, 3)
    assert decode_image(path, min_pixels=30_000).shape == (150, 200, 3)  # 1/2 keeps 30,000
    assert decode_image(path, min_pixels=30_001).shape == (300, 400, 3)  # 1/2 would not
    assert decode_image(path, min_pixels=7_500).shape == (75, 100, 3)  # 1/4
    odd = tmp_path / "odd.jpg"  # Pillow's draft divides sizes down: odd sides reduce too
    Image.fromarray(noise(1, 401)[:301]).save(odd)
    assert decode_image(odd, min_pixels=30_000).shape == (151, 201, 3)
    assert decode_image(odd, max_pixels=30_000).shape == (76, 101, 3)  # forced: 1/4 fits
    Image.fromarray(noise(1, 400)[:300]).save(tmp_path / "a.png")
    assert decode_image(tmp_path / "a.png", min_pixels=7_500).shape == (300, 400, 3)


def spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = predictor_module.read_image_scaled

    def spy(path: Any, min_pixels: int | None = None, **kwargs: Any) -> Any:
        calls.append(min_pixels)
        return real(path, min_pixels=min_pixels, **kwargs)

    monkeypatch.setattr(predictor_module, "read_image_scaled", spy)
    return calls


def in_original(box: Box, factor: int) -> bool:
    x0, y0, x1, y1 = (v * factor for v in FACE_REGION)
    return x0 <= box.left and box.right <= x1 and y0 <= box.top and box.bottom <= y1


def test_big_jpeg_is_searched_drafted_and_boxes_are_in_the_original(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2048x2048 JPEG, faces searched on 262,144 pixels: decoded at 1/4 (512x512), where the
    face's box (~90 px) is big enough to cut; never decoded in full. Same label as the full
    image gives."""
    path = big_jpeg(astronaut, tmp_path / "big.jpg", 4)
    predictor = Predictor("fer2013", max_detect_pixels=262_144)
    calls = spy_reads(monkeypatch)
    result = predictor.predict_image(path)
    assert calls == [262_144]  # the drafted read only
    assert (result.width, result.height) == (2048, 2048)
    (face,) = result.faces
    assert in_original(face.box, 4), face.box
    full = predictor.predict_image(decode_image(path))
    assert face.label == full.faces[0].label == "happy"
    # measured at 1/4, reported in the original's pixels
    assert face.quality.face_px == pytest.approx(full.faces[0].quality.face_px, rel=0.05)


def test_small_face_in_the_draft_is_cut_from_the_full_decode(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searched on 65,536 pixels the 1024x1024 photo decodes at 1/4 (256x256), where the face's
    box (~45 px) is under 1.5x the model's 48 px input: the file is decoded again in full and
    the face cut there, without searching again."""
    path = big_jpeg(astronaut, tmp_path / "big.jpg", 2)
    predictor = Predictor("fer2013", max_detect_pixels=65_536, landmarks=True)
    calls = spy_reads(monkeypatch)
    report = predictor.predict_many([path])
    assert calls == [65_536, None]
    (image,) = report.images
    assert (image.width, image.height) == (1024, 1024) and not report.warnings
    (face,) = image.faces
    assert in_original(face.box, 2), face.box
    assert face.landmarks is not None and in_original(
        Box(*face.landmarks.min(axis=0).astype(int), 1, 1), 2
    )
    full = Predictor("fer2013", max_detect_pixels=65_536).predict_image(decode_image(path))
    assert face.label == full.faces[0].label == "happy"
    # the draft (JPEG DCT scaling) and the shrunk full decode differ by resampling only: the
    # boxes agree to one draft pixel (4 px here)
    ours, theirs = face.box, full.faces[0].box
    for a, b in zip(
        (ours.left, ours.top, ours.width, ours.height),
        (theirs.left, theirs.top, theirs.width, theirs.height),
        strict=True,
    ):
        assert abs(a - b) <= 4, (ours, theirs)


def test_crops_given_as_files_are_read_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "crop.jpg"
    Image.fromarray(noise(2, 512)).save(path)
    run, _ = counting_run(tmp_path)
    calls = spy_reads(monkeypatch)
    result = Predictor(run, detect=False, max_detect_pixels=1_000).predict_image(path)
    assert calls == [None] and (result.width, result.height) == (512, 512)


# -- onnxruntime and torch agree on every shipped network -------------------------------------


NETWORKS = [n for n in shipped_models() if load_run(n, backend="torch").kind == "torch"]


@pytest.mark.parametrize("name", NETWORKS)
def test_shipped_network_answers_the_same_in_onnxruntime_and_torch(
    name: str, astronaut: np.ndarray
) -> None:
    """The float graph matches torch closely; the int8 graph, where one is shipped, gives the
    same classes on real face crops and records the accuracy that justified shipping it."""
    from ferkit.inference.predictor import whole_image_crop

    pytest.importorskip("onnxruntime")
    torch_run = load_run(name, backend="torch")
    fp32 = load_run(name, backend="onnx-fp32")
    size, color = torch_run.image_size, torch_run.color
    crops = np.stack(
        [
            whole_image_crop(astronaut[y : y + 160, x : x + 160], size, color)
            for y, x in ((40, 155), (30, 140), (50, 165), (300, 300))
        ]
    )
    expected = torch_run.estimator.predict_proba(crops)
    got = fp32.estimator.predict_proba(crops)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()
    default = load_run(name)
    assert default.backend == "onnx"
    if "onnx_int8" in default.card:
        assert default.estimator.precision == "int8"
        int8 = default.estimator.predict_proba(crops)
        assert (int8[:3].argmax(1) == expected[:3].argmax(1)).all()  # the three face crops
        assert np.abs(int8 - expected).max() < 0.15
        assert default.card["onnx_int8"]["validation"]["drop_points"] <= 0.3
