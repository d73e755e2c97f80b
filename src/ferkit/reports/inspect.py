"""``ferkit inspect`` as a function: load, summarise, and (optionally) write figures + files."""

from __future__ import annotations

import csv
import io as _stdio
from pathlib import Path
from typing import Any

from ferkit import io
from ferkit.data.dataset import Dataset, load_dataset
from ferkit.data.summary import summarize
from ferkit.reports.dataset_figures import write_inspect_figures


def problems_csv(ds: Dataset) -> str:
    """Every problem as CSV rows (severity, kind, split, path, reason) for spreadsheets and grep."""
    buf = _stdio.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["severity", "kind", "split", "path", "reason"])
    for p in ds.problems:
        writer.writerow([p.severity, p.kind, p.split or "", p.path, p.reason])
    return buf.getvalue()


def inspect_dataset(
    path: str | Path,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    embed_samples: int = 1000,
    figure_split: str | None = None,
    **load_options: Any,
) -> tuple[Dataset, dict[str, Any]]:
    """Load ``path`` and return it with its summary; with ``out``, also write there
    ``inspect.json``, ``problems.csv`` and the figures (class distribution, samples, PCA, t-SNE).
    """
    ds = load_dataset(path, **load_options)
    summary = summarize(ds)
    if out is not None:
        out = Path(out)
        figures, notes = write_inspect_figures(
            ds, out, seed=seed, embed_samples=embed_samples, split=figure_split
        )
        summary["figures"] = figures
        summary["figure_notes"] = notes
        io.write_text(out / "problems.csv", problems_csv(ds))
        io.write_json(out / "inspect.json", summary)
    return ds, summary
