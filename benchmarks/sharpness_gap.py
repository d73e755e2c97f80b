"""What sharpness matching does for a network trained on a blurred split: accuracy with and
without it, on val and on (unaugmented) train images.

    .venv/bin/python benchmarks/sharpness_gap.py --model fer2013 --data ../shared/data/fer2013 \\
        [--train-sample 3000] [--json OUT]

``--spectrum`` also estimates the blur: the val images blurred by Gaussians of several sigmas,
each compared with the train split's radially averaged power spectrum in 10 frequency bands
(log power ratio per band; 0 everywhere = the same spectrum).

The run is loaded twice from the same weights: as saved (with its ``sharpness_target``) and
with the prefilter replaced by the identity. Both score the whole validation split and a seeded
sample of the train split; each split's median sharpness is printed beside them. A network
whose val accuracy is far below its train accuracy without matching, and close to it with
matching, is one that only failed because its inputs were sharper than its training data.
"""

from __future__ import annotations

import argparse
import itertools
from datetime import date
from pathlib import Path

import numpy as np
from _bench_env import report
from torch import nn

from ferkit.data import load_dataset
from ferkit.data.sharpness import median_sharpness
from ferkit.models import load_run


def measure(model: str, data: Path, train_sample: int, seed: int) -> dict:
    ds = load_dataset(data, splits=["train", "val"])
    train, val = ds.split("train"), ds.split("val")
    idx = np.sort(np.random.default_rng(seed).choice(len(train), train_sample, replace=False))
    parts = {
        "train_sample": (train.images[idx], train.labels[idx]),
        "val": (val.images, val.labels),
    }
    rows: dict[str, dict] = {}
    for setting in ("matched", "not_matched"):
        run = load_run(model, backend="torch")
        net = run.estimator.model
        target = net.config["kwargs"].get("sharpness_target")
        if target is None:
            raise SystemExit(f"{model}: the network has no sharpness_target (nothing to compare)")
        if setting == "not_matched":
            net.prefilter = nn.Identity()
        rows[setting] = {
            name: round(float((run.estimator.predict(x) == y).mean()), 4)
            for name, (x, y) in parts.items()
        }
    return {
        "model": model,
        "data": str(data),
        "sharpness_target": target,
        "median_sharpness": {
            "train": round(median_sharpness(train.images, seed=seed), 6),
            "val": round(median_sharpness(val.images, seed=seed), 6),
        },
        "accuracy": rows,
        "train_sample": train_sample,
        "val_images": len(val),
        "date": date.today().isoformat(),
    }


def _band_power(images: np.ndarray, bands: int) -> np.ndarray:
    """Mean power spectrum of (N, H, W) float images in ``bands`` radial frequency bands."""
    x = images - images.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(axis=0)
    fy = np.fft.fftfreq(x.shape[1])[:, None]
    fx = np.fft.fftfreq(x.shape[2])[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    edges = np.linspace(0, 0.5, bands + 1)
    return np.array(
        [power[(radius >= lo) & (radius < hi)].mean() for lo, hi in itertools.pairwise(edges)]
    )


def spectrum(data: Path, sigmas: list[float], n: int, seed: int) -> dict[str, list[float]]:
    """Per-band log(train power / blurred-val power) for each sigma (gray, first channel mean)."""
    from scipy.ndimage import gaussian_filter

    ds = load_dataset(data, splits=["train", "val"])
    rng = np.random.default_rng(seed)

    def sample(images: np.ndarray) -> np.ndarray:
        idx = rng.choice(len(images), min(n, len(images)), replace=False)
        return images[idx].astype(np.float64).mean(axis=-1)

    train, val = sample(ds.split("train").images), sample(ds.split("val").images)
    reference = _band_power(train, 10)
    out = {}
    for sigma in sigmas:
        blurred = np.stack([gaussian_filter(v, sigma, mode="nearest") for v in val])
        out[str(sigma)] = np.round(np.log(reference / _band_power(blurred, 10)), 3).tolist()
    return out


def table(acc: dict) -> str:
    lines = ["| input | train sample | val |", "|---|---|---|"]
    for setting in ("not_matched", "matched"):
        lines.append(
            f"| {setting.replace('_', ' ')} | {acc[setting]['train_sample']:.1%} | "
            f"{acc[setting]['val']:.1%} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fer2013", help="run folder or shipped name")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train-sample", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--spectrum", type=float, nargs="*", default=None, metavar="SIGMA")
    args = parser.parse_args()
    result = measure(args.model, args.data, args.train_sample, args.seed)
    if args.spectrum is not None:
        sigmas = args.spectrum or [2.0, 2.5, 3.0, 3.5]
        result["spectrum_log_ratio"] = spectrum(args.data, sigmas, 3000, args.seed)
    report(result, table(result["accuracy"]), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
