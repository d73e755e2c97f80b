"""``ferkit inspect`` as a function: load, summarise, and (optionally) write figures + files."""

from __future__ import annotations

import csv
import io as _stdio
from pathlib import Path
from typing import Any

from ferkit import io
from ferkit.data.dataset import Dataset, load_dataset
from ferkit.data.duplicates import (
    NEAR_SIMILARITY,
    NEAR_THRESHOLD,
    Duplicates,
    dataset_duplicates,
    pair_problems,
)
from ferkit.data.problems import Problem, count_kinds
from ferkit.data.summary import summarize
from ferkit.reports.dataset_figures import write_inspect_figures


def problems_csv(ds: Dataset, extra: list[Problem] | None = None) -> str:
    """Every problem (the load's, then ``extra``: duplicate pairs) as CSV rows (severity, kind,
    split, path, reason) for spreadsheets and grep."""
    buf = _stdio.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["severity", "kind", "split", "path", "reason"])
    for p in [*ds.problems, *(extra or [])]:
        writer.writerow([p.severity, p.kind, p.split or "", p.path, p.reason])
    return buf.getvalue()


def _unlisted(counts: dict[str, Any], ds: Dataset) -> list[Problem]:
    """A warning when there are more duplicate pairs than are listed, so a count and a listing
    that differ are never a silent truncation."""
    missing = counts["pairs"] - counts["listed"]
    if missing <= 0:
        return []
    reason = (
        f"{missing:,} of {counts['pairs']:,} duplicate pairs are counted but not listed (the "
        f"first {counts['listed']:,} are): large groups of identical images make many pairs"
    )
    return [Problem("duplicates-not-listed", str(ds.root), reason, "warning")]


def inspect_dataset(
    path: str | Path,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    embed_samples: int = 1000,
    figure_split: str | None = None,
    duplicates: bool = True,
    near_threshold: int | None = None,
    **load_options: Any,
) -> tuple[Dataset, dict[str, Any]]:
    """Load ``path`` and return it with its summary; with ``out``, also write there
    ``inspect.json``, ``problems.csv`` and the figures (class distribution, samples, PCA, t-SNE,
    duplicate pairs). ``duplicates`` looks for exact and near-duplicate images within and across
    splits (:mod:`ferkit.data.duplicates`): counts in ``summary["duplicates"]``, each pair a
    warning (listed like the load's problems, and in ``problems.csv``); ``near_threshold`` None
    is :data:`~ferkit.data.duplicates.NEAR_THRESHOLD`.
    """
    ds = load_dataset(path, **load_options)
    summary = summarize(ds)
    found: Duplicates | None = None
    pair_warnings: list[Problem] = []
    if duplicates:
        found = dataset_duplicates(
            ds,
            NEAR_THRESHOLD if near_threshold is None else near_threshold,
            NEAR_SIMILARITY,
            load_options.get("cache_dir"),
            load_options.get("cache", True),
        )
        summary["duplicates"] = found.summary()
        pair_warnings = pair_problems(found.pairs) + _unlisted(summary["duplicates"], ds)
        summary["warnings"] += [p.to_dict() for p in pair_warnings]
        summary["problem_counts"] = dict(
            sorted(
                {**summary["problem_counts"], **count_kinds(pair_warnings)}.items(),
                key=lambda kv: -kv[1],
            )
        )
    if out is not None:
        out = Path(out)
        figures, notes = write_inspect_figures(
            ds,
            out,
            seed=seed,
            embed_samples=embed_samples,
            split=figure_split,
            pairs=found.pairs if found else None,
        )
        summary["figures"] = figures
        summary["figure_notes"] = notes
        io.write_text(out / "problems.csv", problems_csv(ds, pair_warnings))
        io.write_json(out / "inspect.json", summary)
    return ds, summary
