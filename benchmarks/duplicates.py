"""Near-duplicate detection: how far planted copies fall from their originals, and what the real
datasets hold, cold (hashes computed) and warm (hashes read from the cache).

    .venv/bin/python benchmarks/duplicates.py [--data ../shared/data/fer2013 ...] \\
        [--planted 1000] [--json OUT]

Planted copies are made of the first dataset's val images, each one way (resized through 96 and
through 32 px, JPEG at quality 70, brightness +-25, shifted by 1 and 2 px, and mirrored, which
should *not* count): the table gives the Hamming distance of each copy's pHash from its
original's (quantiles), the share within each distance, the median thumbnail correlation, and
the share found (distance <= NEAR_THRESHOLD and correlation >= NEAR_SIMILARITY). "nearest
other" is each original's nearest other image of the sample (by pHash): mostly unrelated
faces, so its "found" share bounds the false positives (FER2013's val split also holds real
copies of its own images, so it is an upper bound).
For each dataset: exact and near pairs within and across splits at the default threshold,
the time to hash and search with an empty hash cache, and again with it filled.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from _bench_env import machine_note, report
from PIL import Image

from ferkit.data import load_dataset
from ferkit.data.duplicates import (
    NEAR_SIMILARITY,
    NEAR_THRESHOLD,
    compute_hashes,
    dataset_duplicates,
    similarity,
)

THRESHOLDS = (4, 6, 8, 10)


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    h = image.shape[0]
    small = Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(small.resize((h, h), Image.Resampling.BILINEAR))


def _jpeg(image: np.ndarray, quality: int = 70) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert(Image.fromarray(image).mode))


def _shift(image: np.ndarray, px: int) -> np.ndarray:
    padded = np.pad(image, ((px, 0), (px, 0)) + ((0, 0),) * (image.ndim - 2), mode="edge")
    return padded[: image.shape[0], : image.shape[1]]


VARIANTS = {
    "resized via 96 px": lambda im: _resized(im, 96),
    "resized via 32 px": lambda im: _resized(im, 32),
    "JPEG q70": _jpeg,
    "brightness +25": lambda im: np.clip(im.astype(int) + 25, 0, 255).astype(np.uint8),
    "brightness -25": lambda im: np.clip(im.astype(int) - 25, 0, 255).astype(np.uint8),
    "shift 1 px": lambda im: _shift(im, 1),
    "shift 2 px": lambda im: _shift(im, 2),
    "mirrored (not a duplicate)": lambda im: im[:, ::-1],
}


def planted(images: np.ndarray) -> dict[str, dict[str, float]]:
    """Distance quantiles, share within each distance, correlation and share found, per kind
    of planted copy (and for each image's nearest other image)."""
    squeeze = images.shape[-1] == 1
    plain = images[..., 0] if squeeze else images
    base = compute_hashes(images)
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, make in VARIANTS.items():
        copies = np.stack([make(im) for im in plain])
        hashed = compute_hashes(copies[..., None] if squeeze else copies)
        rows[name] = (
            np.bitwise_count(hashed.phash ^ base.phash),
            similarity(hashed.thumb, base.thumb),
        )
    dist = np.bitwise_count(base.phash[:, None] ^ base.phash[None, :]).astype(np.int64)
    np.fill_diagonal(dist, 64)
    nearest = dist.argmin(axis=1)
    rows["nearest other"] = (dist.min(axis=1), similarity(base.thumb, base.thumb[nearest]))
    return {
        name: {
            "median": float(np.median(d)),
            "p90": float(np.quantile(d, 0.9)),
            "max": int(d.max()),
            **{f"<={t}": round(float(np.mean(d <= t)), 3) for t in THRESHOLDS},
            "similarity_median": round(float(np.median(c)), 3),
            "found": round(float(np.mean((d <= NEAR_THRESHOLD) & (c >= NEAR_SIMILARITY))), 3),
        }
        for name, (d, c) in rows.items()
    }


def real(path: Path) -> dict:
    started = time.perf_counter()
    ds = load_dataset(path, progress=False)
    load_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as cache:
        cold = dataset_duplicates(ds, cache_dir=cache)
        warm = dataset_duplicates(ds, cache_dir=cache)
    return {
        "splits": {name: len(s) for name, s in ds.splits.items()},
        **{k: v for k, v in cold.summary().items() if k not in ("seconds", "from_cache")},
        "load_seconds": round(load_seconds, 2),
        "load_from_cache": ds.cached,
        "cold_seconds": round(cold.seconds, 2),
        "warm_seconds": round(warm.seconds, 2),
        "warm_from_cache": warm.from_cache,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/fer2013")])
    parser.add_argument("--planted", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    before = machine_note()
    first = load_dataset(args.data[0], splits=["val"], progress=False).split("val").images
    started = time.perf_counter()
    result = {
        "date": str(date.today()),
        "machine_before": before,
        "threshold": NEAR_THRESHOLD,
        "similarity": NEAR_SIMILARITY,
        "planted": planted(first[: args.planted]),
        "datasets": {str(p): real(p) for p in args.data},
        "seconds": round(time.perf_counter() - started, 1),
        "machine_after": machine_note(),
    }
    head = " | ".join(f"<= {t}" for t in THRESHOLDS)
    lines = [f"| copy | median | p90 | max | {head} | correlation | found |"]
    lines.append("|---" * (6 + len(THRESHOLDS)) + "|")
    for name, row in result["planted"].items():
        shares = " | ".join(f"{row[f'<={t}']:.1%}" for t in THRESHOLDS)
        lines.append(
            f"| {name} | {row['median']:g} | {row['p90']:g} | {row['max']} | {shares} | "
            f"{row['similarity_median']:.3f} | {row['found']:.1%} |"
        )
    lines += ["", "| dataset | splits | exact within | near within | exact across | near across "
              "| label conflicts | load s | cold s | warm s |", "|---" * 10 + "|"]  # fmt: skip
    for name, r in result["datasets"].items():
        splits = ", ".join(f"{k} {v:,}" for k, v in r["splits"].items())
        lines.append(
            f"| {Path(name).name} | {splits} | {r['exact_within']} | {r['near_within']} | "
            f"{r['exact_across']} | {r['near_across']} | {r['label_conflicts']} | "
            f"{r['load_seconds']} | {r['cold_seconds']} | {r['warm_seconds']} |"
        )
    report(result, "\n".join(lines), args.json)


if __name__ == "__main__":
    main()
