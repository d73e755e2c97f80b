"""Which layer should ``ferkit explain`` show by default? Grad-CAM of each stage of a network,
scored on real faces by whether its heatmap points at the eyes and mouth and by whether the
pixels it points at are the ones the prediction depends on.

    .venv/bin/python benchmarks/explain_layers.py --model fer2013 --data ../shared/data/fer2013 \\
        --model affectnet --data ../shared/data/affectnet_yolo [--images 50] [--json OUT]

Each ``--model`` (run folder or shipped name) is paired with the ``--data`` at the same
position; ``--split`` (default: ``val``, else ``valid``) is sampled (``--images`` files, seed
``--seed``). Every model also explains the astronaut of ``skimage.data``, cut as ``ferkit
explain`` cuts a photo. Candidate layers are the network's top-level blocks with a spatial
output (for FerNet: stem, stage1..stage4, at 24/24/12/6/3 px); the row marked ``*`` is the one
``ferkit explain`` now picks by default. The class explained is the predicted one.

Scores, averaged over the faces (dlib's 68 landmarks find the eyes, brows and mouth):

* ``mass``: fraction of the heatmap's mass inside the eye+brow and mouth boxes. ``area`` is
  those boxes' share of the image (what a uniform map scores) and ``blob`` what a centred
  Gaussian (sigma = side / 4) scores: a layer that only beats ``blob`` by a little is drawing a
  face-shaped blob, not pointing at features.
* ``peak``: share of faces whose heatmap maximum is inside one of the boxes (pointing game).
* ``agree``: share of faces where the map is denser (mean heat) in the box, eyes+brows or
  mouth, whose deletion (set to the training mean) lowers the explained class's probability
  more: whether the map points at the feature the prediction rests on *for this face*. The
  ``blob`` always makes the same pick, so its score is the base rate of that feature.
* ``del`` / ``ins``: deletion and insertion AUC (Petsiuk et al. 2018) of the explained class's
  probability over the first half of the pixels in heatmap order: deleting (setting to the
  training mean) the most-highlighted pixels should drop it fast (lower is better); inserting
  them into a blurred face should raise it fast (higher is better). The ``blob`` row orders
  pixels by the centred Gaussian instead.

Faces where dlib finds no face (on the crop upscaled 4x) are left out of ``mass`` and
``peak`` and listed (count and files); they still count in ``del`` / ``ins``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from _bench_env import machine_note, report, torch_threads
from PIL import Image
from scipy.ndimage import gaussian_filter

from ferkit.data.images import decode_image
from ferkit.evaluation.explain import default_layer, grad_cam, layer_shapes
from ferkit.faces import create_detector, landmarks_68, transform_points
from ferkit.models import load_run

UPSCALE = 4  # dlib's detector needs faces of ~80 px; dataset crops are 48 or 96
FRACTIONS = np.linspace(0.0, 0.5, 11)  # share of pixels deleted / inserted
EYES = list(range(17, 27)) + list(range(36, 48))  # brows and eyes
MOUTH = list(range(48, 68))


def sample_files(data: Path, split: str | None, n: int, seed: int) -> tuple[str, list[Path]]:
    """``n`` image files of the split, drawn reproducibly (image-folder or YOLO layout)."""
    for name in [split] if split else ["val", "valid"]:
        root = data / name
        if root.is_dir():
            exts = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts)
            rng = np.random.default_rng(seed)
            picked = rng.choice(len(files), size=min(n, len(files)), replace=False)
            return name, [files[i] for i in sorted(picked)]
    sys.exit(f"{data}: no {split or 'val/valid'} split")


def crop_landmarks(crop: np.ndarray, detector) -> np.ndarray | None:
    """68 landmarks in crop pixels, from the crop upscaled ``UPSCALE`` times; None without a
    face (the largest one when dlib finds several)."""
    rgb = np.repeat(crop, 3, axis=2) if crop.shape[2] == 1 else crop
    side = crop.shape[0] * UPSCALE
    big = np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.BICUBIC))
    boxes = detector.detect(big)
    if not boxes:
        return None
    box = max(boxes, key=lambda b: b.area)
    return (landmarks_68(big, box) + 0.5) / UPSCALE - 0.5


def region_masks(points: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Eye+brow box and mouth box, each padded by 5% of the face width, as (side, side) masks."""
    pad = 0.05 * (points[16, 0] - points[0, 0])
    yy, xx = np.mgrid[0:side, 0:side]
    masks = []
    for part in (EYES, MOUTH):
        x0, y0 = points[part].min(0) - pad
        x1, y1 = points[part].max(0) + pad
        masks.append((xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1))
    return masks[0], masks[1]


@torch.no_grad()
def region_drops(model, x: torch.Tensor, masks: tuple[np.ndarray, np.ndarray], target: int):
    """How much the target's probability falls when the eye box, or the mouth box, is set to
    the training mean: which of the two the prediction depends on more, for this face."""
    batch = [x]
    for mask in masks:
        img = x.clone()
        img[:, :, torch.from_numpy(mask)] = 0.0
        batch.append(img)
    probs = torch.softmax(model(torch.cat(batch)).float(), dim=1)[:, target]
    return float(probs[0] - probs[1]), float(probs[0] - probs[2])


def centred_blob(side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    c, s = (side - 1) / 2, side / 4
    return np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * s * s)).astype(np.float32)


@torch.no_grad()
def curve(model, x: torch.Tensor, order: np.ndarray, target: int, insert: bool) -> float:
    """AUC (mean over FRACTIONS) of the target's probability while pixels are deleted from
    ``x`` (or inserted into its blurred copy) in ``order`` (flat indices, first = first)."""
    side = x.shape[-1]
    start = x.clone()
    if insert:
        blurred = gaussian_filter(x[0].numpy(), sigma=(0, side / 8, side / 8))
        start = torch.from_numpy(blurred)[None]
    batch = []
    for frac in FRACTIONS:
        k = round(float(frac) * side * side)
        img = start.clone().reshape(1, x.shape[1], -1)
        if k:
            idx = torch.from_numpy(order[:k])
            img[:, :, idx] = x.reshape(1, x.shape[1], -1)[:, :, idx] if insert else 0.0
        batch.append(img.reshape_as(x))
    probs = torch.softmax(model(torch.cat(batch)).float(), dim=1)[:, target]
    return float(probs.mean())


def score(model, x: torch.Tensor, heat: np.ndarray, target: int, masks, drops):
    order = np.argsort(-heat.ravel(), kind="stable")
    row = {
        "del": curve(model, x, order, target, insert=False),
        "ins": curve(model, x, order, target, insert=True),
    }
    if masks is not None:
        eyes, mouth = masks
        both = eyes | mouth
        total = float(heat.sum())
        row["mass"] = float(heat[both].sum()) / total if total > 0 else 0.0
        row["peak"] = float(both.ravel()[int(np.argmax(heat))])
        row["area"] = float(both.mean())
        # the map's pick (denser box) against the box whose deletion costs the class more
        row["agree"] = float((heat[eyes].mean() > heat[mouth].mean()) == (drops[0] > drops[1]))
    return row


def faces_for(run, data: Path | None, split: str | None, n: int, seed: int):
    """(label, uint8 crop, landmarks or None) for the astronaut and the sampled files."""
    from skimage.data import astronaut

    from ferkit.faces import largest_face

    face, _ = largest_face(astronaut(), run)
    if face is None:
        sys.exit("no face found in the astronaut")
    yield "astronaut", face.crop, transform_points(face.transform, face.landmarks)
    if data is None:
        return
    detector = create_detector("dlib")
    _, files = sample_files(data, split, n, seed)
    for path in files:
        crop = np.asarray(decode_image(path, size=run.image_size, color=run.color))
        if crop.ndim == 2:
            crop = crop[..., None]
        yield str(path), crop, crop_landmarks(crop, detector)


def measure(model_name: str, data: Path | None, split: str | None, n: int, seed: int) -> dict:
    run = load_run(model_name, backend="torch")
    net = run.estimator.model.eval()
    side = run.image_size
    shapes = layer_shapes(net)
    layers = [name for name in shapes if "." not in name]
    chosen = default_layer(net)
    blob = centred_blob(side)
    rows: dict[str, list[dict]] = {name: [] for name in [*layers, "blob"]}
    no_face: list[str] = []
    sources = {"astronaut": 0, "dataset": 0}
    start = time.perf_counter()
    for label, crop, points in faces_for(run, data, split, n, seed):
        sources["astronaut" if label == "astronaut" else "dataset"] += 1
        masks = None if points is None else region_masks(points, side)
        if masks is None:
            no_face.append(label)
        x = run.estimator.to_tensor(crop[None]).cpu().float()
        target, drops = None, None
        for name in layers:
            heat, target, _ = grad_cam(net, x, name, target)  # same class for every layer
            if masks is not None and drops is None:
                drops = region_drops(net, x, masks, target)
            rows[name].append(score(net, x, heat, target, masks, drops))
        rows["blob"].append(score(net, x, blob, target, masks, drops))
    split_name = sample_files(data, split, n, seed)[0] if data is not None else None
    return {
        "model": model_name,
        "data": str(data) if data is not None else None,
        "split": split_name,
        "faces": sources,
        "no_landmarks": no_face,
        "default_layer": chosen,
        "seconds": round(time.perf_counter() - start, 1),
        "layers": {
            name: {
                "side": shapes[name][1] if name in shapes else None,
                **{
                    key: round(float(np.mean([r[key] for r in rs if key in r])), 4)
                    for key in ("mass", "area", "peak", "agree", "del", "ins")
                    if any(key in r for r in rs)
                },
            }
            for name, rs in rows.items()
        },
    }


def table(results: list[dict]) -> str:
    lines = [
        "| model | faces (landmarked) | layer | side | mass (area) | peak | agree | del (lower) "
        "| ins |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        faces = sum(r["faces"].values())
        marked = faces - len(r["no_landmarks"])
        for name, s in r["layers"].items():
            star = "*" if name == r["default_layer"] else ""
            side = f"{s['side']}" if s["side"] else "-"
            lines.append(
                f"| {r['model']} | {faces} ({marked}) | {name}{star} | {side} | "
                f"{s['mass']:.3f} ({s['area']:.3f}) | {s['peak']:.0%} | {s['agree']:.0%} | "
                f"{s['del']:.3f} | "
                f"{s['ins']:.3f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="run folder or name")
    parser.add_argument("--data", action="append", type=Path, default=[], help="per --model")
    parser.add_argument("--split", default=None, help="default: val, else valid")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.data and len(args.data) != len(args.model):
        parser.error("give one --data per --model, or none (astronaut only)")
    torch_threads(args.threads)
    before = machine_note()
    datas = args.data or [None] * len(args.model)
    results = [
        measure(m, d, args.split, args.images, args.seed)
        for m, d in zip(args.model, datas, strict=True)
    ]
    for r in results:
        if r["no_landmarks"]:
            print(f"{r['model']}: no dlib face, left out of mass/peak: {r['no_landmarks']}")
    out = {"date": date.today().isoformat(), "machine": before, "results": results}
    report(out, table(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
