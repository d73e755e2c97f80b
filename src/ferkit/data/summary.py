"""A plain-dict summary of a loaded dataset: what ``ferkit inspect`` prints and writes as JSON."""

from __future__ import annotations

from typing import Any

from ferkit.data.dataset import Dataset, Split
from ferkit.data.problems import Problem, count_kinds
from ferkit.data.sharpness import SAMPLE, median_sharpness, much_blurrier


def imbalance_ratio(split: Split) -> float | None:
    """Largest class count over smallest non-empty one (None for an empty split)."""
    counts = [n for n in split.counts().values() if n > 0]
    return round(max(counts) / min(counts), 3) if counts else None


def sharpness_gaps(ds: Dataset, medians: dict[str, float]) -> list[Problem]:
    """A warning for each split much blurrier than the sharpest one: a network trained on it
    will not see sharp faces as it saw its training faces (``ferkit train`` then matches)."""
    usable = {name: m for name, m in medians.items() if len(ds.splits[name])}
    if len(usable) < 2:
        return []
    sharpest = max(usable, key=usable.__getitem__)
    return [
        Problem(
            "sharpness-gap",
            str(ds.root),
            f"{name} images are much blurrier than {sharpest} images (median sharpness "
            f"{m:.4g} vs {usable[sharpest]:.4g}); `ferkit train` blurs test inputs to match",
            "warning",
            name,
        )
        for name, m in usable.items()
        if much_blurrier(m, usable[sharpest])
    ]


def summarize(ds: Dataset) -> dict[str, Any]:
    """Layout, classes (own -> canonical), per-split counts, imbalance, sharpness (median of a
    sample of up to 2,000 images) and every problem."""
    medians = {name: median_sharpness(split.images) for name, split in ds.splits.items()}
    gaps = sharpness_gaps(ds, medians)
    splits = {
        name: {
            "count": len(split),
            "per_class": split.counts(),
            "imbalance_ratio": imbalance_ratio(split),
            "median_sharpness": round(medians[name], 6),
            "from_cache": ds.cached.get(name, False),
        }
        for name, split in ds.splits.items()
    }
    return {
        "path": str(ds.root),
        "source": ds.source,
        "layout": ds.layout,
        "image_size": ds.image_size,
        "color": ds.color,
        "num_classes": len(ds.classes),
        "classes": [
            {"index": i, "name": name, "canonical": canon}
            for i, (name, canon) in enumerate(zip(ds.classes, ds.canonical, strict=True))
        ],
        "splits": splits,
        "total": sum(s["count"] for s in splits.values()),
        "problem_counts": count_kinds([*ds.problems, *gaps]),
        "skipped": [p.to_dict() for p in ds.skipped],
        "warnings": [p.to_dict() for p in [*ds.warnings, *gaps]],
        "sharpness_sample": SAMPLE,
    }
