"""RetinaFace, the shipped CNN detector, and alignment from its 5 points (issue 19).

Real model, real photo: skimage's astronaut (one face inside conftest's FACE_REGION) and
skimage's face-free images. The vendored graph is checked against its sha256 before use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data
from skimage.filters import gaussian
from skimage.transform import rescale, rotate

from conftest import FACE_REGION
from ferkit.errors import FerkitError
from ferkit.faces import (
    Box,
    DlibDetector,
    assess_face,
    create_detector,
    find_faces,
    landmarks_68,
    roll_degrees,
    transform_points,
)
from ferkit.faces import pipeline as pipeline_module
from ferkit.faces import retinaface as retinaface_module
from ferkit.faces.align import eye_centres, face_size
from ferkit.faces.images import to_gray
from ferkit.faces.retinaface import RetinaFaceDetector


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector(threads=1)


@pytest.fixture(scope="module")
def astronaut_face(astronaut: np.ndarray, detector: RetinaFaceDetector) -> Box:
    boxes = detector.detect(astronaut)
    assert len(boxes) == 1
    return boxes[0]


def inside(box: Box, region: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = region
    return box.left >= x0 and box.top >= y0 and box.right <= x1 and box.bottom <= y1


def test_finds_the_astronauts_face_with_five_points(astronaut_face: Box) -> None:
    assert inside(astronaut_face, FACE_REGION)
    assert astronaut_face.score > 0.99
    points = astronaut_face.points()
    assert points is not None and points.shape == (5, 2)
    x, y = points.T
    assert (x > astronaut_face.left).all() and (x < astronaut_face.right).all()
    assert (y > astronaut_face.top).all() and (y < astronaut_face.bottom).all()
    right_eye, left_eye, nose, mouth_right, mouth_left = points
    assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image left
    assert mouth_right[0] < mouth_left[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "hubble_deep_field"])
def test_no_face_in_face_free_images(detector: RetinaFaceDetector, name: str) -> None:
    # chelsea is a cat: it scores 0.31, under the default 0.8.
    assert detector.detect(getattr(data, name)()) == []


def test_no_face_in_noise_or_blank(detector: RetinaFaceDetector) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert detector.detect(noise) == []
    assert detector.detect(np.zeros((40, 30), np.uint8)) == []


def test_gray_input(astronaut: np.ndarray, detector: RetinaFaceDetector) -> None:
    gray = to_gray(astronaut)
    for image in (gray, gray[:, :, None]):
        boxes = detector.detect(image)
        assert len(boxes) == 1 and inside(boxes[0], FACE_REGION)


def test_tiny_crop_is_enlarged_before_detection(astronaut: np.ndarray) -> None:
    # A 48-px crop filled by the face, as in FER2013, goes to the network at 128 px (on
    # FER2013 that finds 196 faces in 200 images instead of 95) and is boxed in its own pixels.
    crop = to_uint8(rescale(astronaut[70:185, 170:285], 48 / 115, channel_axis=-1))
    tensor, scale = retinaface_module.network_input(crop, max_side=640, min_side=128)
    assert tensor.shape == (1, 3, 128, 128) and scale == pytest.approx(128 / 48)
    boxes = RetinaFaceDetector().detect(crop)
    assert len(boxes) == 1 and boxes[0].right <= 48 and boxes[0].width > 24


def test_boxes_and_points_come_back_in_the_photos_pixels(astronaut: np.ndarray) -> None:
    small = RetinaFaceDetector(max_side=256).detect(astronaut)  # network sees it at half size
    full = RetinaFaceDetector().detect(astronaut)
    assert len(small) == len(full) == 1
    assert np.abs(small[0].points() - full[0].points()).max() < 0.1 * full[0].width
    big = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)
    faces = find_faces(big, "retinaface", max_detect_pixels=512 * 512)  # scanned at 512x512
    assert len(faces) == 1
    assert np.abs(faces[0].landmarks - 2 * full[0].points()).max() < 0.2 * full[0].width


def test_tampered_or_missing_model_is_refused(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = tmp_path / "retinaface_mnet025.onnx"
    raw = bytearray(retinaface_module.MODEL_FILE.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    tampered.write_bytes(bytes(raw))
    monkeypatch.setattr(retinaface_module, "MODEL_FILE", tampered)
    with pytest.raises(FerkitError, match=r"retinaface_mnet025\.onnx.*sha256.*refused"):
        RetinaFaceDetector().detect(astronaut)
    tampered.unlink()
    with pytest.raises(FerkitError, match="cannot read the RetinaFace model"):
        RetinaFaceDetector().detect(astronaut)


def test_registered_with_options_checked() -> None:
    detector = create_detector("retinaface", score=0.5, max_side=320)
    assert isinstance(detector, RetinaFaceDetector)
    assert (detector.score, detector.max_side) == (0.5, 320)
    with pytest.raises(FerkitError, match="retinaface"):
        create_detector("retinaface", upsample=1)
    for bad in ({"score": 1.5}, {"max_side": 0}, {"min_side": 700}, {"threads": 0}):
        with pytest.raises(FerkitError):
            RetinaFaceDetector(**bad)


def test_auto_is_retinaface() -> None:
    assert isinstance(create_detector("auto"), RetinaFaceDetector)


# --- alignment and quality from 5 points ---------------------------------------------------


@pytest.mark.parametrize("angle", [-20, 20])
def test_five_point_alignment_levels_a_rotated_face(
    astronaut: np.ndarray, astronaut_face: Box, detector: RetinaFaceDetector, angle: float
) -> None:
    tilted = to_uint8(rotate(astronaut, angle, mode="edge"))
    faces = find_faces(tilted, detector, size=160, color="rgb")
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (5, 2)  # no 68-point fit
    upright = roll_degrees(astronaut_face.points())  # about +3 degrees
    assert abs(roll_degrees(face.landmarks) - (upright - angle)) < 5  # the input is tilted
    # dlib's 68 points, fitted on the crop itself, find the eyes level (RetinaFace's own eye
    # points are good to about +-3 degrees, benchmarks/five_points.py).
    boxes = DlibDetector().detect(face.crop)
    assert len(boxes) == 1
    assert abs(roll_degrees(landmarks_68(face.crop, boxes[0]))) < 5


def test_five_point_crop_frames_the_face_like_the_68_point_crop(astronaut: np.ndarray) -> None:
    five = find_faces(astronaut, "retinaface")[0]
    full = find_faces(astronaut, "dlib")[0]
    eyes5 = transform_points(five.transform, np.array(eye_centres(five.landmarks)))
    eyes68 = transform_points(full.transform, np.array(eye_centres(full.landmarks)))
    assert np.abs(eyes5 - eyes68).max() < 1.5  # px in the 48-px crop
    assert abs(face_size(five.landmarks) / face_size(full.landmarks) - 1) < 0.1


def test_landmarks_68_fits_dlibs_points_from_the_same_boxes(astronaut: np.ndarray) -> None:
    faces = find_faces(astronaut, "retinaface", landmarks="68")
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    with pytest.raises(FerkitError, match="landmarks must be one of"):
        find_faces(astronaut, "retinaface", landmarks="5")


def test_quality_gate_works_without_68_points(
    astronaut: np.ndarray, astronaut_face: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dlib(*_: object) -> None:
        raise AssertionError("the 5-point path fitted 68 points")

    monkeypatch.setattr(pipeline_module, "landmarks_68", no_dlib)
    faces = find_faces(astronaut, "retinaface")
    assert len(faces) == 1 and faces[0].quality.ok, faces[0].quality.reasons
    assert abs(faces[0].quality.yaw) < 10 and abs(faces[0].quality.roll) < 10

    points = astronaut_face.points()
    blurred = to_uint8(gaussian(astronaut, 4, channel_axis=-1))
    verdict = assess_face(blurred, astronaut_face, points)
    assert any(r.startswith("blurred") for r in verdict.reasons)
    assert any(r.startswith("small") for r in assess_face(astronaut, None, points / 4).reasons)
    turned = points.copy()
    turned[2, 0] = points[1, 0]  # nose tip under the left eye: a head turned far to one side
    assert any(r.startswith("pose: yaw") for r in assess_face(astronaut, None, turned).reasons)


class FivePointDetector:
    """One fixed box carrying the given 5 points."""

    def __init__(self, marks: tuple[tuple[float, float], ...]) -> None:
        self.marks = marks

    def detect(self, image: np.ndarray) -> list[Box]:
        return [Box(170, 60, 110, 130, 0.9, self.marks)]


def test_implausible_five_points_fall_back_to_the_68_point_fit(astronaut: np.ndarray) -> None:
    # The mouth on the eye line: no face size to frame from (this crashed find_faces once).
    flat = ((205.0, 101.0), (247.0, 103.0), (224.0, 102.0), (203.0, 101.0), (244.0, 103.0))
    faces = find_faces(astronaut, FivePointDetector(flat))
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    good = ((205.0, 101.0), (247.0, 103.0), (224.0, 129.0), (203.0, 138.0), (244.0, 140.0))
    assert find_faces(astronaut, FivePointDetector(good))[0].landmarks.shape == (5, 2)
