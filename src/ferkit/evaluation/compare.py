"""``ferkit compare``: several runs on the same split -> one table (markdown, CSV, bar chart)."""

from __future__ import annotations

import csv
import io as _stdio
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ferkit import io
from ferkit.evaluation.evaluate import evaluate_run

COLUMNS = ("model", "accuracy", "macro_f1", "n", "dropped_classes", "predict_seconds")
NO_FACE = "no_face"  # a column only when faces were detected: images without one, not scored


def _row(report: dict[str, Any]) -> dict[str, Any]:
    row = {
        "model": report["model"],
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n": report["n"],
        "dropped_classes": ",".join(report["dropped_classes"]),
        "predict_seconds": report["predict_seconds"],
    }
    if report.get("faces") == "detect":
        row[NO_FACE] = len(report[NO_FACE])
    return row


def columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The table's columns: ``no_face`` joins them when any run was scored on detected faces
    (each model cuts faces its own way, so the count can differ between rows)."""
    return COLUMNS + ((NO_FACE,) if any(NO_FACE in r for r in rows) else ())


def markdown_table(rows: list[dict[str, Any]]) -> str:
    names = columns(rows)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for r in rows:
        cells = [
            f"{r[c]:.1%}" if c in ("accuracy", "macro_f1") else str(r.get(c, "")) for c in names
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bar_chart(rows: list[dict[str, Any]], title: str) -> Figure:
    fig = Figure(figsize=(max(5.0, 1.3 * len(rows) + 2), 4), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(rows))
    acc = ax.bar([i - 0.2 for i in x], [r["accuracy"] for r in rows], 0.4, label="accuracy")
    f1 = ax.bar([i + 0.2 for i in x], [r["macro_f1"] for r in rows], 0.4, label="macro-F1")
    ax.bar_label(acc, fmt="%.3f", fontsize=7)
    ax.bar_label(f1, fmt="%.3f", fontsize=7)
    ax.set_xticks(list(x), [r["model"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    return fig


def compare_runs(
    runs: list[str | Path],
    data: str | Path,
    split: str | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Evaluate every run on ``split`` of ``data``; rows sorted by accuracy, best first.

    ``options`` go to :func:`evaluate_run` (``faces``, ``detector``, load options)."""
    if not runs:
        raise ValueError("compare needs at least one run")
    reports = [evaluate_run(r, data, split, **options) for r in runs]
    return write_comparison(reports, Path(str(data)).name, out)


def write_comparison(
    reports: list[dict[str, Any]], data_name: str, out: str | Path | None = None
) -> list[dict[str, Any]]:
    """The comparison of ``evaluate_run`` reports already made (rows best first); with ``out``
    the markdown, CSV, bar chart and JSON. Separate from ``compare_runs`` so a caller that has
    just evaluated the runs (``ferkit study``) does not score them all a second time."""
    if not reports:
        raise ValueError("compare needs at least one report")
    rows = sorted((_row(r) for r in reports), key=lambda r: -r["accuracy"])
    if out is not None:
        out = Path(out)
        io.write_text(out / "comparison.md", markdown_table(rows))
        buf = _stdio.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)
        io.write_text(out / "comparison.csv", buf.getvalue())
        io.save_figure(
            _bar_chart(rows, f"{data_name} / {reports[0]['split']}"),
            out / "comparison.png",
            dpi=110,
        )
        io.write_json(out / "comparison.json", {"rows": rows, "reports": reports})
    return rows
