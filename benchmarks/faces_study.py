"""The measurements behind ferkit.faces' defaults, and its speed.

    nice -n 19 .venv/bin/python benchmarks/faces_study.py [--data ../shared/data] [--n 800]
        [--json OUT] [--skip-speed]

On ``--n`` random validation images of each dataset (seed 0), for the faces dlib finds
(upsample 1, threshold 0, the highest-scoring box):
- framing: where the 68 landmarks sit in the dataset's own crops, as ``margin`` and ``lift`` of
  ferkit.faces.align (plus how well each candidate face size predicts the crop side);
- detector scores and rates: dlib's score distribution, Haar's detection rate, and how far the
  68 points move when the shape predictor starts from Haar's box instead of dlib's;
- quality: percentiles of every value ferkit.faces.assess_face measures.
Then what each detector reports on skimage's face-free images, noise and a blank image, and
detection and pipeline times on skimage's astronaut (512x512), noise and a 2x upscale.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from _bench_env import median_ms
from PIL import Image
from skimage import data
from skimage.transform import rescale

from ferkit.faces import (
    DlibDetector,
    HaarDetector,
    align_face,
    assess_face,
    create_detector,
    find_faces,
    landmarks_68,
)
from ferkit.faces.align import eye_centres, face_size, levelled, roll_degrees
from ferkit.faces.quality import measure

DATASETS = (
    ("affectnet", "affectnet_yolo/valid/images", "rgb"),
    ("fer2013", "fer2013/val", "gray"),
)
PERCENTILES = (0.5, 1, 5, 10, 50, 90, 95, 99, 99.5)


def images(root: Path, n: int, color: str) -> Iterator[np.ndarray]:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".webp", ".png"))
    random.Random(0).shuffle(files)
    for path in files[:n]:
        with Image.open(path) as img:
            yield np.asarray(img.convert("L" if color == "gray" else "RGB"))


def framing(points: np.ndarray, side: int) -> dict[str, float]:
    """Where the crop sits relative to the landmarks, in units of the face size s."""
    s = face_size(points)
    right, left = eye_centres(points)
    mid = (right + left) / 2
    theta = np.radians(-roll_degrees(points))
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = (np.array([side / 2 - 0.5] * 2) - mid) @ turn.T
    q = levelled(points)
    mouth = q[48:68].mean(0)
    return {
        "margin": (side / s - 1) / 2,
        "lift": centre[1] / s,
        "centre_x": centre[0] / s,
        "s/side": s / side,
        "iod/side": float(np.hypot(*(left - right))) / side,
        "eye_mouth/side": float(np.hypot(*mouth)) / side,
        "landmark_top": q[:, 1].min() / s,
        "landmark_bottom": q[:, 1].max() / s,
    }


def summary(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    out = {f"p{p:g}": round(float(np.percentile(v, p)), 3) for p in PERCENTILES}
    out["cv"] = round(float(v.std() / abs(v.mean())), 3) if v.mean() else float("nan")
    return out


def study(root: Path, n: int, color: str) -> dict[str, Any]:
    dlib0, haar = DlibDetector(threshold=0.0), HaarDetector()
    rows: dict[str, list[float]] = {}
    counts = {"images": 0, "dlib": 0, "haar": 0, "both": 0}
    for image in images(root, n, color):
        counts["images"] += 1
        boxes, haar_boxes = dlib0.detect(image), haar.detect(image)
        counts["haar"] += bool(haar_boxes)
        if not boxes:
            continue
        counts["dlib"] += 1
        box = max(boxes, key=lambda b: b.score)
        points = landmarks_68(image, box)
        values = {"dlib_score": box.score, **framing(points, image.shape[1])}
        values.update(measure(image, points))
        if haar_boxes:
            counts["both"] += 1
            from_haar = landmarks_68(image, max(haar_boxes, key=lambda b: b.area))
            iod = np.hypot(*np.subtract(*eye_centres(points)))
            values["haar_vs_dlib_landmarks/iod"] = float(
                np.linalg.norm(from_haar - points, axis=1).mean() / iod
            )
        for key, value in values.items():
            rows.setdefault(key, []).append(float(value))
    scores = np.asarray(rows["dlib_score"])
    return {
        "counts": counts,
        "dlib_score_below": {t: round(float((scores < t).mean()), 3) for t in (0.1, 0.2, 0.3)},
        "values": {key: summary(v) for key, v in rows.items()},
    }


FACE_FREE = (
    "chelsea",
    "coffee",
    "rocket",
    "coins",
    "moon",
    "page",
    "text",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "cell",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
    "logo",
)


def negatives() -> dict[str, dict[str, int]]:
    """Boxes each detector reports on skimage's face-free images, noise and a blank image."""
    rng = np.random.default_rng(0)
    pictures = {name: getattr(data, name)() for name in FACE_FREE}
    pictures["noise"] = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    pictures["blank"] = np.full((512, 512, 3), 128, np.uint8)
    detectors = {
        "dlib threshold 0": DlibDetector(threshold=0.0),
        "dlib (default)": DlibDetector(),
        "haar (default)": HaarDetector(),
    }
    out: dict[str, dict[str, int]] = {}
    for name, picture in pictures.items():
        if picture.dtype == bool:
            picture = picture.astype(np.uint8) * 255
        if picture.ndim == 3 and picture.shape[2] == 4:
            picture = picture[:, :, :3]
        picture = np.ascontiguousarray(picture)
        found = {label: len(d.detect(picture)) for label, d in detectors.items()}
        if any(found.values()):
            out[name] = found
    out["(images tried)"] = {"count": len(pictures)}
    return out


def speed() -> dict[str, float]:
    img = data.astronaut()
    big = np.clip(np.rint(rescale(img, 2, channel_axis=-1) * 255), 0, 255).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, img.shape, dtype=np.uint8)
    detectors = {
        "dlib upsample 0": DlibDetector(upsample=0),
        "dlib upsample 1": DlibDetector(),
        "haar": HaarDetector(),
        "dlib-haar (auto before issue 19)": create_detector("dlib-haar"),
        "auto (RetinaFace)": create_detector("auto"),
    }
    out = {}
    for name, detector in detectors.items():
        out[f"{name}, 512x512 astronaut"] = median_ms(lambda d=detector: d.detect(img), 15)
        out[f"{name}, 512x512 noise"] = median_ms(lambda d=detector: d.detect(noise), 9)
        out[f"{name}, 1024x1024 astronaut"] = median_ms(lambda d=detector: d.detect(big), 7)
    box = DlibDetector().detect(img)[0]
    points = landmarks_68(img, box)
    out["landmarks_68, one face"] = median_ms(lambda: landmarks_68(img, box), 50)
    out["align_face 48 gray"] = median_ms(lambda: align_face(img, points, 48), 50)
    out["align_face 96 rgb"] = median_ms(lambda: align_face(img, points, 96, color="rgb"), 50)
    out["assess_face"] = median_ms(lambda: assess_face(img, box, points), 50)
    out["find_faces auto, 512x512 astronaut"] = median_ms(lambda: find_faces(img), 15)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"date": date.today().isoformat(), "n": args.n}
    for name, sub, color in DATASETS:
        if (args.data / sub).is_dir():
            report[name] = study(args.data / sub, args.n, color)
        else:
            print(f"skipping {name}: {args.data / sub} not found")
    report["negatives"] = negatives()
    if not args.skip_speed:
        report["loadavg_before_speed"] = os.getloadavg()
        report["speed_ms"] = speed()
        report["loadavg_after_speed"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
