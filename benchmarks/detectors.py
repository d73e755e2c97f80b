"""Face detectors side by side: recall, false positives and time on synthetic scenes.

    nice -n 19 .venv/bin/python benchmarks/detectors.py [--data ../shared/data] [--n 200]
        [--max-sides 320,480,640] [--threads 1] [--json OUT]

Scenes come from benchmarks/_scenes.py: ``--n`` 640x480 scenes (seed 0) with 1-3 validation
faces each from FER2013 and AffectNet, widths 24-200 px drawn log-uniformly, 30% rotated by
20-30 degrees either way, on skimage's face-free images and noise; plus those face-free images
on their own. A face counts as found when a box's centre lies inside its ground-truth box and
the box is 0.3-1.6 times as wide as the pasted face (centre in box, not IoU: see _scenes.py);
every other box is a false positive. Reported per detector: recall overall, by face width
(24-40, 40-80, 80-200 px) and for rotated faces; false positives per scene and per face-free
image; milliseconds per image (scenes and face-free images together, one thread).

``--crops N`` instead counts, for N random validation images of each dataset as they are
(seed 1), how many each detector finds a face in (RetinaFace with and without enlarging tiny
images to its ``min_side``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_env import machine_note
from _scenes import SOURCES, build_scenes, face_free_images, load_faces, matches

from ferkit.faces import DlibDetector, FallbackDetector, HaarDetector, create_detector

BUCKETS = ((24, 40), (40, 80), (80, 201))
# RetinaFace settings besides max_side alone: (max_side, upscale, score).
VARIANTS = ((640, 1.0, 0.5), (640, 1.0, 0.8), (960, 1.5, 0.6), (1280, 2.0, 0.6))


def detectors(max_sides: list[int], threads: int) -> dict[str, Any]:
    found = {
        "dlib (upsample 1)": DlibDetector(),
        "haar": HaarDetector(),
        "dlib, then haar (old auto)": FallbackDetector(DlibDetector(), HaarDetector()),
    }
    for side in max_sides:
        found[f"retinaface max_side {side}"] = create_detector(
            "retinaface", max_side=side, threads=threads
        )
    for side, upscale, score in VARIANTS:
        found[f"retinaface max_side {side}, upscale {upscale}, score {score}"] = create_detector(
            "retinaface", max_side=side, upscale=upscale, score=score, threads=threads
        )
    found["auto (now)"] = create_detector("auto", threads=threads)
    return found


def evaluate(detector: Any, scenes: list, free: list) -> dict[str, Any]:
    hits: list[tuple[int, float, bool]] = []
    scene_fp = free_fp = 0
    start = time.perf_counter()
    for scene in scenes:
        found, fp = matches(scene.faces, detector.detect(scene.image))
        hits += [(f.width, f.angle, ok) for f, ok in zip(scene.faces, found, strict=True)]
        scene_fp += fp
    for scene in free:
        free_fp += len(detector.detect(scene.image))
    elapsed = time.perf_counter() - start

    def recall(rows: list) -> float:
        return round(sum(ok for *_, ok in rows) / max(len(rows), 1), 3)

    row = {
        "recall": recall(hits),
        **{
            f"recall {lo}-{hi - 1}px": recall([h for h in hits if lo <= h[0] < hi])
            for lo, hi in BUCKETS
        },
        "recall rotated": recall([h for h in hits if h[1]]),
        "fp/scene": round(scene_fp / len(scenes), 3),
        "fp/face-free image": round(free_fp / len(free), 3),
        "ms/image": round(1000 * elapsed / (len(scenes) + len(free)), 1),
    }
    return row


def crop_rates(data: Path, n: int, threads: int) -> dict[str, dict[str, int]]:
    """How many of ``n`` random validation images (seed 1) of each dataset, as they are (the
    face filling the frame), each detector finds a face in; RetinaFace also without enlarging
    tiny images (``min_side`` = the image side)."""
    rows: dict[str, dict[str, int]] = {}
    for name, sub in SOURCES:
        faces = load_faces_one(data / sub, n)
        side = max(faces[0].shape[:2])
        chosen = {
            "dlib (upsample 1)": DlibDetector(),
            "haar": HaarDetector(),
            "retinaface (auto)": create_detector("retinaface", threads=threads),
            "retinaface, not enlarged": create_detector(
                "retinaface", min_side=side, threads=threads
            ),
        }
        for detector_name, detector in chosen.items():
            found = sum(bool(detector.detect(face)) for face in faces)
            rows.setdefault(detector_name, {})[f"{name} ({len(faces)})"] = found
    return rows


def load_faces_one(folder: Path, n: int) -> list:
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png", ".webp"))
    random.Random(1).shuffle(files)
    out = []
    for path in files[:n]:
        with Image.open(path) as img:
            out.append(np.asarray(img.convert("RGB")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-sides", default="320,480,640")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", help="detector names separated by ; (default: all)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--crops", type=int, default=0, help="only count faces found in N dataset images each"
    )
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)
    if args.crops:
        rates = crop_rates(args.data, args.crops, args.threads)
        columns = list(next(iter(rates.values())))
        print("| detector | " + " | ".join(columns) + " |")
        print("|---|" + "---:|" * len(columns))
        for name, row in rates.items():
            print(f"| {name} | " + " | ".join(str(row[c]) for c in columns) + " |")
        return
    before = machine_note()
    scenes = build_scenes(load_faces(args.data, 300), args.n, seed=0)
    free = face_free_images()
    faces = sum(len(s.faces) for s in scenes)
    rows = {}
    chosen = detectors([int(s) for s in args.max_sides.split(",")], args.threads)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(";")}
    for name, detector in chosen.items():
        detector.detect(scenes[0].image)  # load models, warm caches
        rows[name] = evaluate(detector, scenes, free)
        print(name, rows[name], file=sys.stderr)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "scenes": len(scenes),
        "faces": faces,
        "face_free_images": len(free),
        "machine_before": before,
        "machine_after": machine_note(),
        "rows": rows,
    }
    columns = list(next(iter(rows.values())))
    print("| detector | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(str(row[c]) for c in columns) + " |")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
