"""Accuracy through the full photo pipeline vs on the dataset's own crops, on a validation split.

    .venv/bin/python benchmarks/pipeline_vs_crops.py --model fer2013 \\
        --data ../shared/data/fer2013 --split val [--limit N] [--json OUT]
        [--detector auto|dlib|haar|retinaface] [--landmarks]

``ferkit predict`` does not see dataset crops: it finds the face (``--detector``), puts the
eyes level, re-frames it like the model's training data and gates it on quality. This script
measures what that costs or gains on labelled faces. Every image of the split goes through

* **crops**: the image as the model's input (``Predictor(detect=False)``, the dataset's own
  framing, what ``ferkit evaluate`` measures);
* **pipeline**: ``Predictor(detect=True)``, the largest face found; its label when the face
  passed the quality gate (the default: rejected faces get no label), and separately with
  ``classify_rejected=True``.

Reported: how many images had a face found and how many passed the gate, accuracy on the crops
(all images, and the subset where a face was found / passed), and pipeline accuracy on those
subsets. Images whose class the model does not have are left out (counted). Prints JSON and a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
from _bench_env import report
from tqdm.auto import tqdm

from ferkit.data import load_dataset
from ferkit.inference import Predictor


def _largest(faces: list) -> object | None:
    return max(faces, key=lambda f: f.box.width * f.box.height) if faces else None


def measure(
    model: str,
    data: Path,
    split: str,
    limit: int | None,
    seed: int,
    detector: str = "auto",
    landmarks: bool = False,
) -> dict:
    crops = Predictor(model, detect=False)
    # classify_rejected=True labels every face; FaceResult.ok says whether it passed the gate,
    # so one pass gives both the default behaviour and the "label anyway" variant.
    # landmarks=True: dlib's 68-point fit even when the detector gives 5 points.
    pipeline = Predictor(
        model, detect=True, classify_rejected=True, detector=detector, landmarks=landmarks
    )
    part = load_dataset(data, splits=[split]).split(split)
    order = np.arange(len(part.labels))
    if limit is not None and limit < len(order):
        order = np.sort(np.random.default_rng(seed).choice(order, limit, replace=False))
    truth_names = [part.canonical[int(part.labels[i])] for i in order]
    keep = [k for k, name in enumerate(truth_names) if name in crops.classes]
    rows = []
    start = time.perf_counter()
    for k in tqdm(keep, desc="images", unit="img"):
        image = part.images[order[k]]
        pixels = image[:, :, 0] if image.shape[2] == 1 else image
        crop_label = crops.predict_image(pixels).faces[0].label
        face = _largest(pipeline.predict_image(pixels).faces)
        rows.append(
            {
                "truth": truth_names[k],
                "crop": crop_label,
                "found": face is not None,
                "passed": face is not None and face.ok,
                "pipeline": None if face is None else face.label,
            }
        )
    seconds = time.perf_counter() - start

    def acc(subset: list[dict], key: str) -> float | None:
        return None if not subset else float(np.mean([r[key] == r["truth"] for r in subset]))

    found = [r for r in rows if r["found"]]
    passed = [r for r in rows if r["passed"]]
    return {
        "model": model,
        "detector": detector,
        "landmarks": "68" if landmarks else "auto",
        "data": str(data),
        "split": part.name,
        "images": len(rows),
        "left_out_unknown_class": len(order) - len(keep),
        "face_found": len(found),
        "passed_quality": len(passed),
        "crops_accuracy_all": acc(rows, "crop"),
        "crops_accuracy_found": acc(found, "crop"),
        "pipeline_accuracy_found": acc(found, "pipeline"),
        "crops_accuracy_passed": acc(passed, "crop"),
        "pipeline_accuracy_passed": acc(passed, "pipeline"),
        "seconds": round(seconds, 1),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }


def table(r: dict) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    n = r["images"]
    return "\n".join(
        [
            "| images | subset | n | crops accuracy | pipeline accuracy |",
            "|---|---|---|---|---|",
            f"| {n} | all | {n} | {pct(r['crops_accuracy_all'])} | - |",
            f"| {n} | face found | {r['face_found']} ({r['face_found'] / n:.1%}) | "
            f"{pct(r['crops_accuracy_found'])} | {pct(r['pipeline_accuracy_found'])} |",
            f"| {n} | passed quality gate | {r['passed_quality']} "
            f"({r['passed_quality'] / n:.1%}) | {pct(r['crops_accuracy_passed'])} | "
            f"{pct(r['pipeline_accuracy_passed'])} |",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fer2013", help="run folder or shipped name")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=None, help="random sample of the split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--detector", default="auto", help="a registered face detector")
    parser.add_argument("--landmarks", action="store_true", help="always fit dlib's 68 points")
    args = parser.parse_args()
    result = measure(
        args.model, args.data, args.split, args.limit, args.seed, args.detector, args.landmarks
    )
    report(result, table(result), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
