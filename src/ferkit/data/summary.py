"""A plain-dict summary of a loaded dataset: what ``ferkit inspect`` prints and writes as JSON."""

from __future__ import annotations

from typing import Any

from ferkit.data.dataset import Dataset, Split
from ferkit.data.problems import count_kinds


def imbalance_ratio(split: Split) -> float | None:
    """Largest class count over smallest non-empty one (None for an empty split)."""
    counts = [n for n in split.counts().values() if n > 0]
    return round(max(counts) / min(counts), 3) if counts else None


def summarize(ds: Dataset) -> dict[str, Any]:
    """Layout, classes (own -> canonical), per-split counts, imbalance and every problem."""
    splits = {
        name: {
            "count": len(split),
            "per_class": split.counts(),
            "imbalance_ratio": imbalance_ratio(split),
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
        "problem_counts": count_kinds(ds.problems),
        "skipped": [p.to_dict() for p in ds.skipped],
        "warnings": [p.to_dict() for p in ds.warnings],
    }
