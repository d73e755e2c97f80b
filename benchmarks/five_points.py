"""How RetinaFace's 5 points relate to dlib's 68: the constants of 5-point alignment.

    nice -n 19 .venv/bin/python benchmarks/five_points.py [--data ../shared/data] [--n 300]

On ``--n`` random validation images of each dataset (seed 0; upscaled to 192 px and padded
with their edge pixels to 384 px, so both detectors see the face with some context), for the
faces both dlib (upsample 1, its 68-point fit) and RetinaFace find: how well candidate 5-point
measures predict the 68-point face size ``s`` of :mod:`ferkit.faces.align` (median ratio and
its coefficient of variation), where RetinaFace's eye midpoint sits relative to dlib's (in
units of ``s``, eye-levelled frame), where the centre of the 68-point box sits below the eye
midpoint (the quality patch's centre), the gain between the nose offset and dlib's yaw; and,
for ``--landmarks`` (68 points from a RetinaFace face), where dlib's box lies in the 5-point
frame (side and centre in units of the 5-point size) and how far the 68 points move (mean, in
units of ``s``) when the shape predictor starts from RetinaFace's box instead of dlib's.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ferkit.faces import DlibDetector, create_detector, landmarks_68
from ferkit.faces.align import FIVE_SIZE, eye_centres, face_size, levelled, roll_degrees
from ferkit.faces.quality import yaw_degrees

DATASETS = (("affectnet", "affectnet_yolo/valid/images"), ("fer2013", "fer2013/val"))


def padded(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        face = np.asarray(img.convert("RGB"))
    face = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(face, 96, 96, 96, 96, cv2.BORDER_REPLICATE)


def five_point_measures(five: np.ndarray) -> dict[str, float]:
    """Candidate face sizes from the 5 points, in the frame levelled by the eyes."""
    right, left = five[0], five[1]
    angle = np.arctan2(*(left - right)[::-1])
    c, s = np.cos(-angle), np.sin(-angle)
    q = (five - (right + left) / 2) @ np.array([[c, -s], [s, c]]).T
    iod = q[1, 0] - q[0, 0]
    eye_mouth = (q[3, 1] + q[4, 1]) / 2
    return {
        "iod": iod,
        "eye_mouth": eye_mouth,
        "sqrt_iod_eye_mouth": float(np.sqrt(max(iod, 1e-6) * max(eye_mouth, 1e-6))),
        "mean_iod_eye_mouth": (iod + eye_mouth) / 2,
        "nose_t": q[2, 0] / (iod / 2),
    }


def study(root: Path, n: int) -> dict[str, object]:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".webp", ".png"))
    random.Random(0).shuffle(files)
    dlib, retina = DlibDetector(upsample=1, threshold=0.0), create_detector("retinaface")
    rows = []
    for path in files[:n]:
        image = padded(path)
        a, b = dlib.detect(image), retina.detect(image)
        if not a or not b:
            continue
        box68 = max(a, key=lambda x: x.score)
        five = max(b, key=lambda x: x.score).points()
        points = landmarks_68(image, box68)
        s = face_size(points)
        mid68 = sum(eye_centres(points)) / 2
        rot = np.radians(-roll_degrees(points))
        rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
        mid5 = (five[0] + five[1]) / 2
        offset = rotation @ (mid5 - mid68) / s
        q = levelled(points)
        box_centre_y = (q[:, 1].min() + q[:, 1].max()) / 2 - offset[1] * s
        m = five_point_measures(five)
        s5 = FIVE_SIZE * m["sqrt_iod_eye_mouth"]
        # dlib's box in the 5-point frame: its side and its centre below the eye midpoint
        centre = np.array([box68.left + box68.width / 2, box68.top + box68.height / 2])
        below = rotation @ (centre - mid5)
        # the 68 points fitted from RetinaFace's own box vs from dlib's: mean distance / s
        retina_box = max(b, key=lambda x: x.score)
        moved = float(np.linalg.norm(landmarks_68(image, retina_box) - points, axis=1).mean())
        rows.append(
            {
                "s": s,
                **{k: s / v for k, v in m.items() if k != "nose_t"},
                "nose_t": m["nose_t"],
                "tan_yaw68": float(np.tan(np.radians(yaw_degrees(points)))),
                "dx": offset[0],
                "dy": offset[1],
                "patch_centre": box_centre_y / s,
                "dlib_side": box68.width / s5,
                "dlib_dx": below[0] / s5,
                "dlib_dy": below[1] / s5,
                "fit_moved_from_retina_box": moved / s,
                "roll_diff": float(
                    np.degrees(np.arctan2(*(five[1] - five[0])[::-1])) - roll_degrees(points)
                ),
            }
        )
    out: dict[str, object] = {"faces": len(rows), "images": min(n, len(files))}
    for key in ("iod", "eye_mouth", "sqrt_iod_eye_mouth", "mean_iod_eye_mouth"):
        ratio = np.array([r[key] for r in rows])
        out[f"s_over_{key}"] = {
            "median": round(float(np.median(ratio)), 4),
            "cv": round(float(ratio.std() / ratio.mean()), 4),
        }
    for key in (
        "dx",
        "dy",
        "patch_centre",
        "roll_diff",
        "dlib_side",
        "dlib_dx",
        "dlib_dy",
        "fit_moved_from_retina_box",
    ):
        v = np.array([r[key] for r in rows])
        out[key] = {p: round(float(np.percentile(v, p)), 4) for p in (10, 50, 90)}
    t, y = np.array([r["nose_t"] for r in rows]), np.array([r["tan_yaw68"] for r in rows])
    gain = float((t @ y) / (y @ y))  # t = gain * tan(yaw), least squares through 0
    out["nose_gain"] = round(gain, 4)
    out["yaw_fit_r"] = round(float(np.corrcoef(t, y)[0, 1]), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    result = {name: study(args.data / sub, args.n) for name, sub in DATASETS}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
