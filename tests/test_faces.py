"""The face pipeline on a real photo: skimage's astronaut (512x512 RGB, one smiling face).

Her face spans about x 179-272, y 87-178 (dlib's 68 landmarks), inside the box x 170-300,
y 40-200 that the assertions below allow. Every check runs on real dlib/OpenCV models; only the
registry and fallback tests add stub detectors.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from skimage.filters import gaussian
from skimage.transform import rescale, rotate

from conftest import FACE_REGION
from ferkit.errors import FerkitError
from ferkit.faces import (
    FRAMINGS,
    Box,
    DlibDetector,
    HaarDetector,
    align_face,
    assess_face,
    create_detector,
    detector_names,
    face_size,
    face_transform,
    find_faces,
    landmarks_68,
    register_detector,
    roll_degrees,
    transform_points,
    unregister_detector,
    yaw_degrees,
)
from ferkit.faces import detectors as detectors_module
from ferkit.features.dlib_models import MissingModelError


def to_uint8(image: np.ndarray) -> np.ndarray:
    """skimage's float output (0-1) back to uint8."""
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut_box(astronaut: np.ndarray) -> Box:
    boxes = DlibDetector().detect(astronaut)
    assert len(boxes) == 1
    return boxes[0]


@pytest.fixture(scope="module")
def astronaut_points(astronaut: np.ndarray, astronaut_box: Box) -> np.ndarray:
    return landmarks_68(astronaut, astronaut_box)


def inside_face_region(box: Box) -> bool:
    x0, y0, x1, y1 = FACE_REGION
    return box.left >= x0 and box.top >= y0 and box.right <= x1 and box.bottom <= y1


def iou(a: Box, b: Box) -> float:
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = width * height
    return inter / (a.area + b.area - inter)


class FixedDetector:
    """Returns the boxes it was given, whatever the image; counts its calls."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        self.calls += 1
        return list(self.boxes)


# --- detection -----------------------------------------------------------------------------


def test_dlib_finds_exactly_the_astronauts_face(
    astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    assert inside_face_region(astronaut_box), astronaut_box
    assert 70 <= astronaut_box.width <= 120 and 70 <= astronaut_box.height <= 120
    assert astronaut_box.score >= 0.2
    x0, y0, x1, y1 = FACE_REGION
    assert astronaut_points.shape == (68, 2)
    assert (astronaut_points[:, 0] >= x0).all() and (astronaut_points[:, 0] <= x1).all()
    assert (astronaut_points[:, 1] >= y0).all() and (astronaut_points[:, 1] <= y1).all()
    right_eye, left_eye = astronaut_points[36:42].mean(0), astronaut_points[42:48].mean(0)
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert astronaut_points[8, 1] > astronaut_points[30, 1] > right_eye[1]  # chin, nose, eyes


def test_dlib_threshold_drops_the_weak_false_positive(astronaut: np.ndarray) -> None:
    # At upsample 1 dlib also fires on the suit (score ~0.12); the 0.2 default drops it.
    scores = sorted(b.score for b in DlibDetector(threshold=0.0).detect(astronaut))
    assert len(scores) == 2 and scores[0] < 0.2 < scores[1]


def test_haar_finds_the_astronauts_face(astronaut: np.ndarray, astronaut_box: Box) -> None:
    boxes = HaarDetector().detect(astronaut)
    assert len(boxes) == 1
    assert inside_face_region(boxes[0]), boxes[0]
    assert iou(boxes[0], astronaut_box) > 0.6


@pytest.mark.parametrize("name", ["dlib", "haar", "auto"])
def test_no_face_in_blank_or_noise(name: str) -> None:
    rng = np.random.default_rng(0)
    blank = np.full((256, 256, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (256, 256), dtype=np.uint8)
    detector = create_detector(name)
    assert detector.detect(blank) == []
    assert detector.detect(noise) == []
    assert find_faces(noise, detector=detector) == []


def test_dlib_haar_falls_back_to_haar_only_when_dlib_finds_nothing(
    astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    haar_box = Box(1, 2, 30, 30, 5.0)
    haar = FixedDetector([haar_box])
    monkeypatch.setattr(detectors_module, "HaarDetector", lambda **_: haar)
    monkeypatch.setattr(DlibDetector, "detect", lambda self, image: [])
    assert create_detector("dlib-haar").detect(astronaut) == [haar_box]
    assert haar.calls == 1
    monkeypatch.undo()

    haar = FixedDetector([haar_box])
    monkeypatch.setattr(detectors_module, "HaarDetector", lambda **_: haar)
    boxes = create_detector("dlib-haar").detect(astronaut)
    assert len(boxes) == 1 and inside_face_region(boxes[0])  # dlib's own box
    assert haar.calls == 0  # never consulted when dlib succeeds


def test_dlib_haar_falls_back_to_haar_on_a_real_small_face(astronaut: np.ndarray) -> None:
    # At 30% scale the face is ~27 px: below dlib's ~40 px limit at upsample 1, not Haar's 24.
    small = to_uint8(rescale(astronaut, 0.3, channel_axis=-1, anti_aliasing=True))
    assert DlibDetector().detect(small) == []
    haar = HaarDetector().detect(small)
    assert len(haar) == 1
    assert create_detector("dlib-haar").detect(small) == haar
    faces = find_faces(small, "dlib-haar")
    assert len(faces) == 1
    assert not faces[0].quality.ok
    assert any("small" in reason for reason in faces[0].quality.reasons)


def test_boxes_are_clipped_to_the_image() -> None:
    box = Box(-10, 5, 50, 200, 1.0).clip((100, 30))
    assert box == Box(0, 5, 30, 95, 1.0)
    assert Box(40, 0, 10, 10).clip((100, 30)) is None


# --- registry ------------------------------------------------------------------------------


def test_unknown_detector_lists_the_known_ones() -> None:
    with pytest.raises(FerkitError) as excinfo:
        create_detector("mtcnn")
    message = str(excinfo.value)
    assert "mtcnn" in message
    for name in ("auto", "dlib", "haar"):
        assert name in message
    assert {"auto", "dlib", "haar"} <= set(detector_names())


def test_dlib_haar_passes_options_to_each_detector() -> None:
    auto = create_detector("dlib-haar", dlib={"upsample": 0}, haar={"min_neighbors": 3})
    dlib_detector, haar_detector = auto.detectors  # type: ignore[attr-defined]
    assert dlib_detector.upsample == 0 and haar_detector.min_neighbors == 3


def test_bad_detector_options_are_a_ferkit_error() -> None:
    with pytest.raises(FerkitError, match="haar"):
        create_detector("haar", upsample=1)
    with pytest.raises(FerkitError, match="upsample"):
        create_detector("dlib", upsample=-1)


def test_registered_detector_is_used_by_find_faces(
    astronaut: np.ndarray, astronaut_box: Box
) -> None:
    fixed = FixedDetector([astronaut_box])
    register_detector("fixed-test", lambda: fixed)
    try:
        with pytest.raises(FerkitError, match="already registered"):
            register_detector("fixed-test", lambda: fixed)
        faces = find_faces(astronaut, detector="fixed-test")
    finally:
        unregister_detector("fixed-test")
    assert fixed.calls == 1
    assert [f.box for f in faces] == [astronaut_box]
    assert "fixed-test" not in detector_names()


def test_find_faces_takes_a_detector_instance_and_sorts_left_to_right(
    astronaut: np.ndarray, astronaut_box: Box
) -> None:
    twice = np.ascontiguousarray(np.hstack([astronaut, astronaut]))
    shifted = Box(
        astronaut_box.left + 512,
        astronaut_box.top,
        astronaut_box.width,
        astronaut_box.height,
        astronaut_box.score,
    )
    faces = find_faces(twice, detector=FixedDetector([shifted, astronaut_box]))
    assert [f.box.left for f in faces] == [astronaut_box.left, astronaut_box.left + 512]
    np.testing.assert_allclose(faces[1].landmarks - faces[0].landmarks, [[512, 0]] * 68)
    assert np.array_equal(faces[0].crop, faces[1].crop)


def test_find_faces_rejects_what_is_not_a_detector(astronaut: np.ndarray) -> None:
    with pytest.raises(FerkitError, match="detect"):
        find_faces(astronaut, detector=object())  # type: ignore[arg-type]


# --- alignment -----------------------------------------------------------------------------


def test_alignment_levels_a_rotated_face(astronaut: np.ndarray) -> None:
    tilted = to_uint8(rotate(astronaut, 15, mode="edge"))
    faces = find_faces(tilted, detector="dlib", size=160, color="rgb")
    assert len(faces) == 1
    face = faces[0]
    assert abs(roll_degrees(face.landmarks)) > 10  # the input really is tilted
    assert face.crop.shape == (160, 160, 3) and face.crop.dtype == np.uint8
    # The transform maps the landmarks onto a level eye line...
    assert abs(roll_degrees(transform_points(face.transform, face.landmarks))) < 0.5
    # ...and dlib, run again on the crop itself, agrees.
    boxes = DlibDetector().detect(face.crop)
    assert len(boxes) == 1
    assert abs(roll_degrees(landmarks_68(face.crop, boxes[0]))) < 3


@pytest.mark.parametrize(("color", "channels"), [("gray", 1), ("rgb", 3)])
def test_crop_layout(astronaut: np.ndarray, color: str, channels: int) -> None:
    faces = find_faces(astronaut, detector="dlib", size=48, color=color)  # type: ignore[arg-type]
    assert len(faces) == 1
    crop = faces[0].crop
    assert crop.shape == (48, 48, channels) and crop.dtype == np.uint8
    assert 40 < crop.mean() < 220 and crop.std() > 20  # a face, not an edge or a fill colour


def test_gray_crop_is_the_rgb_crop_converted_like_ferkit_datasets(
    astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    from PIL import Image

    rgb = align_face(astronaut, astronaut_points, 64, color="rgb")
    gray = align_face(astronaut, astronaut_points, 64, color="gray")
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(gray[:, :, 0], expected)


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_framings_scale_the_face_as_measured(astronaut_points: np.ndarray, framing: str) -> None:
    size = 96
    matrix = face_transform(astronaut_points, size, **FRAMINGS[framing])
    inner = transform_points(matrix, astronaut_points)
    margin = FRAMINGS[framing]["margin"]
    assert face_size(inner) == pytest.approx(size / (1 + 2 * margin), rel=1e-6)
    if framing != "fer2013":  # FER2013's tight crops cut the chin and jaw, by design
        assert (inner >= 0).all() and (inner <= size - 1).all()


def test_default_crop_contains_all_68_points(astronaut_points: np.ndarray) -> None:
    inner = transform_points(face_transform(astronaut_points, 48), astronaut_points)
    assert (inner >= 0.5).all() and (inner <= 46.5).all()
    eyes_y = inner[36:48, 1].mean()
    assert 12 < eyes_y < 24  # eyes in the upper half, room for the forehead


def test_align_without_rotation_keeps_the_roll(astronaut: np.ndarray) -> None:
    tilted = to_uint8(rotate(astronaut, 15, mode="edge"))
    level, upright = (
        find_faces(tilted, detector="dlib", align=a, size=64)[0] for a in (True, False)
    )
    roll = roll_degrees(upright.landmarks)
    assert roll_degrees(transform_points(upright.transform, upright.landmarks)) == pytest.approx(
        roll
    )
    assert not np.array_equal(level.crop, upright.crop)


# --- quality -------------------------------------------------------------------------------


def test_astronaut_passes_the_quality_gate(
    astronaut: np.ndarray, astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    quality = assess_face(astronaut, astronaut_box, astronaut_points)
    assert quality.ok and quality.reasons == []
    assert 80 < quality.face_px < 110
    assert abs(quality.roll) < 10 and abs(quality.yaw) < 10
    assert 100 < quality.brightness < 200


def test_blurred_face_is_rejected_as_blurred(
    astronaut: np.ndarray, astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    blurred = to_uint8(gaussian(astronaut, 4, channel_axis=-1))
    quality = assess_face(blurred, astronaut_box, astronaut_points)
    assert not quality.ok
    assert any("blur" in reason for reason in quality.reasons), quality.reasons
    assert not any("dark" in reason for reason in quality.reasons)


def test_dark_face_is_rejected_as_dark_not_blurred(
    astronaut: np.ndarray, astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    dark = (astronaut * 0.2).astype(np.uint8)
    quality = assess_face(dark, astronaut_box, astronaut_points)
    assert not quality.ok
    assert any("dark" in reason for reason in quality.reasons), quality.reasons
    assert not any("blur" in reason for reason in quality.reasons)  # exposure-independent


def test_small_face_is_rejected_as_small(
    astronaut: np.ndarray, astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    factor = 20 / face_size(astronaut_points)  # a face of about 20 px
    small = to_uint8(rescale(astronaut, factor, channel_axis=-1, anti_aliasing=True))
    quality = assess_face(small, None, astronaut_points * factor)
    assert not quality.ok
    assert quality.face_px == pytest.approx(20, abs=1)
    assert any("small" in reason for reason in quality.reasons), quality.reasons
    assert find_faces(small, detector="dlib") == []  # too small to detect at all, as noted


def test_turned_head_is_rejected_for_pose(
    astronaut: np.ndarray, astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    turned = astronaut_points.copy()
    jaw_edge = astronaut_points[16]
    turned[27:36] += jaw_edge - astronaut_points[30]  # the whole nose at the jaw edge
    assert yaw_degrees(turned) > 45
    quality = assess_face(astronaut, astronaut_box, turned)
    assert any("pose" in reason and "yaw" in reason for reason in quality.reasons)


def test_rolled_landmarks_are_rejected_for_pose(
    astronaut: np.ndarray, astronaut_box: Box, astronaut_points: np.ndarray
) -> None:
    theta = np.radians(40)
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = astronaut_points.mean(0)
    rolled = (astronaut_points - centre) @ turn.T + centre
    assert roll_degrees(rolled) == pytest.approx(roll_degrees(astronaut_points) + 40)
    quality = assess_face(astronaut, astronaut_box, rolled)
    assert any("pose" in reason and "roll" in reason for reason in quality.reasons)
    assert abs(quality.yaw) < 10  # yaw is measured in the levelled frame: roll leaves it alone


def test_quality_thresholds_are_parameters(
    astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    strict = assess_face(astronaut, None, astronaut_points, min_face_px=200)
    assert not strict.ok and strict.reasons[0].startswith("small")
    faces = find_faces(astronaut, detector="dlib", min_size=200, quality={"max_yaw": 1.0})
    reasons = faces[0].quality.reasons
    assert any("small" in r for r in reasons) and any("yaw" in r for r in reasons)
    with pytest.raises(FerkitError, match="max_yaw"):
        find_faces(astronaut, detector="dlib", quality={"max_jaw": 1.0})


# --- inputs --------------------------------------------------------------------------------


def test_bad_images_are_ferkit_errors(astronaut: np.ndarray) -> None:
    with pytest.raises(FerkitError, match="uint8"):
        find_faces(astronaut.astype(np.float64))
    with pytest.raises(FerkitError, match="shape"):
        find_faces(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(FerkitError, match="color"):
        find_faces(astronaut, color="bgr")  # type: ignore[arg-type]


def test_gray_and_dataset_layout_inputs_are_accepted(astronaut: np.ndarray) -> None:
    from PIL import Image

    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    for image in (gray, gray[:, :, None]):
        faces = find_faces(image, detector="dlib", color="rgb")
        assert len(faces) == 1 and inside_face_region(faces[0].box)
        assert faces[0].crop.shape == (48, 48, 3)


def test_haar_without_opencv_says_what_to_install(
    astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    monkeypatch.setattr(detectors_module._local, "cascades", {}, raising=False)
    with pytest.raises(MissingModelError, match="opencv-python-headless"):
        HaarDetector().detect(astronaut)


def test_large_photos_are_scanned_small_and_boxed_in_their_own_pixels(
    astronaut: np.ndarray,
) -> None:
    """find_faces scans at most max_detect_pixels (what bounds a 48 MP photo's cost), yet the
    box, landmarks and crop are those of the full-resolution photo."""
    from ferkit.faces import find_faces
    from ferkit.faces.scale import detect_scaled

    big = np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1)  # 1536x1536
    scanned: list[tuple[int, ...]] = []

    class Spy:
        def detect(self, image: np.ndarray) -> list[Box]:
            scanned.append(image.shape)
            return create_detector("dlib").detect(image)

    (face,) = find_faces(big, Spy(), max_detect_pixels=512 * 512)
    assert scanned == [(512, 512, 3)]
    (small,) = create_detector("dlib").detect(astronaut)
    for got, want in zip(
        (face.box.left, face.box.top, face.box.right, face.box.bottom),
        (small.left, small.top, small.right, small.bottom),
        strict=True,
    ):
        assert abs(got - 3 * want) <= 3
    # the landmarks were fitted on the full image: they lie inside the scaled-back box
    assert (face.landmarks[:, 0] > face.box.left - 30).all()
    assert (face.landmarks[:, 0] < face.box.right + 30).all()
    # no bound: the detector sees the full image
    scanned.clear()
    detect_scaled(Spy(), big, None)
    assert scanned == [(1536, 1536, 3)]
    with pytest.raises(ValueError, match="max_pixels"):
        detect_scaled(Spy(), big, 0)
