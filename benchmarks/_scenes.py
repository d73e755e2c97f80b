"""Synthetic photos with known faces: dataset faces pasted into larger face-free scenes.

Used by benchmarks/detectors.py (recall and false positives of each face detector) and meant
for any benchmark that needs photos with ground truth (e.g. "group photos" with several faces
each). The faces are whole validation images of FER2013 (48 px, gray) and AffectNet (96 px,
RGB) from ../shared/data; the scenes are skimage's face-free sample images (checked by eye
and by every detector at its default threshold: none holds a human face) and noise. Each face is
scaled to a width drawn from ``widths``, optionally rotated, and blended in with a feathered
edge (a hard square edge would be an artefact no real photo has).

Ground truth: each pasted face's box is the central ``FACE_SHARE`` of its (unrotated) square,
centred where it was pasted: the dataset crops frame the face with a margin, so their centre
region is the face. :func:`matches` scores detections against it by *centre in box* (a
detection counts when its centre lies inside the face's box and its width is 0.3-1.6 times the
pasted width), not IoU, because each detector frames a face differently (dlib's box is tight
around brows to chin, Haar's wider, RetinaFace's forehead to chin).

    python benchmarks/_scenes.py OUT [--data ../shared/data] [--n 100] [--faces 3-6]
        [--widths 24-200] [--rotate 0.3] [--seed 0]

writes OUT/scene_0000.jpg ... and OUT/boxes.json ({file: [{"box": [x, y, w, h], ...}]}).
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from skimage import data

FACE_SHARE = 0.7
SOURCES = (("fer2013", "fer2013/val"), ("affectnet", "affectnet_yolo/valid/images"))
# skimage sample images without a human face (camera, astronaut and the like are left out).
FACE_FREE = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "brick",
    "grass",
    "gravel",
    "moon",
    "page",
    "horse",
)


@dataclass
class Face:
    """One pasted face: its ground-truth ``box`` (x, y, w, h), pasted ``width``, ``angle``."""

    box: tuple[int, int, int, int]
    width: int
    angle: float
    source: str


@dataclass
class Scene:
    """An RGB uint8 image and the faces pasted into it (none for a face-free image)."""

    name: str
    image: np.ndarray
    faces: list[Face] = field(default_factory=list)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = np.clip(image * (255 if image.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


@functools.cache
def face_free_images() -> list[Scene]:
    """skimage's face-free sample images as they are, plus two noise images (made once; do
    not modify them)."""
    scenes = [Scene(name, _rgb(getattr(data, name)())) for name in FACE_FREE]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4)
    smooth = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX)
    return [*scenes, Scene("noise", noise), Scene("smooth_noise", smooth)]


def load_faces(root: Path, n: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """``n`` random validation images from each dataset under ``root``, RGB, with their path."""
    faces = []
    for _, sub in SOURCES:
        folder = root / sub
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png", ".webp"))
        if not files:
            raise SystemExit(f"no images under {folder}")
        random.Random(seed).shuffle(files)
        for path in files[:n]:
            with Image.open(path) as img:
                faces.append((np.asarray(img.convert("RGB")), str(path.relative_to(root))))
    return faces


def background(size: tuple[int, int], rng: random.Random) -> np.ndarray:
    """A ``size`` (width, height) scene: a face-free image cropped and resized, or noise."""
    width, height = size
    pool = face_free_images()
    base = rng.choice(pool).image
    h, w = base.shape[:2]
    aspect = width / height
    cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return cv2.resize(base[y : y + ch, x : x + cw], size, interpolation=cv2.INTER_AREA)


def _feather(side: int) -> np.ndarray:
    """An alpha mask for a ``side`` square: 1 inside, falling to 0 over the outer 12%."""
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / (0.12 * side), 0, 1)
    return np.minimum.outer(ramp, ramp)[:, :, None]


def paste(scene: np.ndarray, face: np.ndarray, centre: tuple[int, int], width: int, angle: float):
    """Blend ``face`` scaled to ``width`` and rotated by ``angle`` degrees into ``scene``."""
    interpolation = cv2.INTER_AREA if width < face.shape[1] else cv2.INTER_CUBIC
    face = cv2.resize(face, (width, width), interpolation=interpolation).astype(np.float64)
    alpha = _feather(width)
    if angle:
        diag = int(np.ceil(width * 1.5))
        pad = (diag - width) // 2
        face = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT)[:, :, None]
        side = face.shape[0]
        matrix = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), angle, 1.0)
        face = cv2.warpAffine(face, matrix, (side, side), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(alpha, matrix, (side, side), flags=cv2.INTER_LINEAR)[:, :, None]
    side = face.shape[0]
    x0, y0 = centre[0] - side // 2, centre[1] - side // 2
    region = scene[y0 : y0 + side, x0 : x0 + side].astype(np.float64)
    scene[y0 : y0 + side, x0 : x0 + side] = np.rint(alpha * face + (1 - alpha) * region).astype(
        np.uint8
    )


def _place(
    width: int, taken: list[tuple[int, int, int]], size: tuple[int, int], rng: random.Random
) -> tuple[int, int] | None:
    """A centre where a ``width`` face (with room to rotate) overlaps no other; None if none."""
    reach = int(np.ceil(width * 0.75)) + 1
    for _ in range(50):
        cx = rng.randint(reach, size[0] - reach - 1)
        cy = rng.randint(reach, size[1] - reach - 1)
        if all(abs(cx - x) > (reach + r) or abs(cy - y) > (reach + r) for x, y, r in taken):
            taken.append((cx, cy, reach))
            return cx, cy
    return None


def build_scenes(
    faces: Sequence[tuple[np.ndarray, str]],
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    per_scene: tuple[int, int] = (1, 3),
    widths: tuple[int, int] = (24, 200),
    rotate: float = 0.3,
    angles: tuple[float, float] = (20.0, 30.0),
) -> list[Scene]:
    """``n`` scenes of ``size`` with ``per_scene`` (min, max) faces each.

    Widths are drawn log-uniformly from ``widths`` (as many small faces as large ones, by
    ratio); a share ``rotate`` of faces is rotated by +-``angles`` degrees.
    """
    rng = random.Random(seed)
    scenes = []
    for index in range(n):
        image = background(size, rng)
        placed: list[Face] = []
        taken: list[tuple[int, int, int]] = []
        for _ in range(rng.randint(*per_scene)):
            face, source = faces[rng.randrange(len(faces))]
            width = round(np.exp(rng.uniform(np.log(widths[0]), np.log(widths[1]))))
            angle = rng.choice((-1, 1)) * rng.uniform(*angles) if rng.random() < rotate else 0.0
            centre = _place(width, taken, size, rng)
            if centre is None:
                continue
            paste(image, face, centre, width, angle)
            side = round(width * FACE_SHARE)
            box = (centre[0] - side // 2, centre[1] - side // 2, side, side)
            placed.append(Face(box, width, round(angle, 1), source))
        scenes.append(Scene(f"scene_{index:04d}", image, placed))
    return scenes


def matches(faces: Sequence[Face], boxes: Sequence[Any]) -> tuple[list[bool], int]:
    """Which ``faces`` were found by ``boxes`` (Box objects, best first), and how many boxes
    found no face (false positives). Centre in box, width 0.3-1.6x the pasted width, each
    face and each box matched at most once."""
    found = [False] * len(faces)
    false_positives = 0
    for box in sorted(boxes, key=lambda b: -b.score):
        cx, cy = box.left + box.width / 2, box.top + box.height / 2
        for i, face in enumerate(faces):
            x, y, w, h = face.box
            inside = x <= cx <= x + w and y <= cy <= y + h
            if not found[i] and inside and 0.3 <= box.width / face.width <= 1.6:
                found[i] = True
                break
        else:
            false_positives += 1
    return found, false_positives


def write_scenes(scenes: Sequence[Scene], out: Path) -> None:
    """JPEGs (quality 92) and boxes.json into ``out`` (files written atomically)."""
    from ferkit import io

    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, list[dict[str, Any]]] = {}
    for scene in scenes:
        name = f"{scene.name}.jpg"
        with io.atomic_path(out / name) as tmp:
            Image.fromarray(scene.image).save(tmp, format="JPEG", quality=92)
        index[name] = [
            {"box": list(f.box), "width": f.width, "angle": f.angle, "source": f.source}
            for f in scene.faces
        ]
    io.write_json(out / "boxes.json", index)


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=100, help="scenes to write")
    parser.add_argument("--faces", type=_range, default=(3, 6), help="faces per scene, MIN-MAX")
    parser.add_argument("--widths", type=_range, default=(24, 200), help="face widths, px")
    parser.add_argument("--rotate", type=float, default=0.3, help="share of rotated faces")
    parser.add_argument("--size", type=_range, default=(640, 480), help="scene WIDTH-HEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faces = load_faces(args.data, max(50, args.n * args.faces[1]), args.seed)
    scenes = build_scenes(faces, args.n, args.seed, args.size, args.faces, args.widths, args.rotate)
    write_scenes(scenes, args.out)
    total = sum(len(s.faces) for s in scenes)
    print(f"{len(scenes)} scenes, {total} faces -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
