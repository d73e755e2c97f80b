"""``ferkit compare``: several runs on the same split -> one table (markdown, CSV, bar chart).

Each accuracy and macro-F1 comes with its 95% interval, and each pair of runs scored on the same
items gets McNemar's paired test (:mod:`ferkit.evaluation.stats`): the table says "A beats B"
only when p < 0.05, "no significant difference" otherwise. The pairs are not corrected for
multiple comparisons: with many runs, read a p just under 0.05 with care."""

from __future__ import annotations

import csv
import io as _stdio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ferkit import io
from ferkit.errors import OptionError
from ferkit.evaluation.evaluate import evaluate_run
from ferkit.evaluation.stats import mcnemar, verdict

COLUMNS = ("model", "accuracy", "accuracy_low", "accuracy_high", "macro_f1", "macro_f1_low",
           "macro_f1_high", "n", "dropped_classes", "predict_seconds")  # fmt: skip
SHOWN = ("model", "accuracy", "macro_f1", "n", "dropped_classes", "predict_seconds")
NO_FACE = "no_face"  # a column only when faces were detected: images without one, not scored
CROPS = "crops"  # a column only when images were scored as several crops (--crops)
RESAMPLE = "resample_via"  # a column only when a network resampled its inputs (--resample-via)


def _row(report: Mapping[str, Any]) -> dict[str, Any]:
    row = {
        "model": report["model"],
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n": report["n"],
        "dropped_classes": ",".join(report["dropped_classes"]),
        "predict_seconds": report["predict_seconds"],
    }
    for metric in ("accuracy", "macro_f1"):
        low, high = report.get(f"{metric}_ci") or (None, None)  # reports from before intervals
        row[f"{metric}_low"], row[f"{metric}_high"] = low, high
    if report.get("faces") == "detect":
        row[NO_FACE] = len(report[NO_FACE])
    if (report.get(CROPS) or 1) > 1:
        row[CROPS] = report[CROPS]
    if report.get(RESAMPLE) is not None:
        row[RESAMPLE] = report[RESAMPLE]
    return row


def _optional(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The columns some rows have: ``no_face``, ``crops``, ``resample_via``."""
    return tuple(c for c in (NO_FACE, CROPS, RESAMPLE) if any(c in r for r in rows))


def _cell(row: dict[str, Any], column: str) -> str:
    """A markdown cell; a score with its 95% interval: ``71.2% [69.8-72.5]``."""
    if column not in ("accuracy", "macro_f1"):
        return str(row.get(column, ""))
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    interval = f" [{low:.1%}-{high:.1%}]" if low is not None and high is not None else ""
    return f"{row[column]:.1%}{interval}"


def columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The table's columns: ``no_face`` joins them when any run was scored on detected faces
    (each model cuts faces its own way, so the count can differ between rows), ``crops`` when
    any was scored as several crops, ``resample_via`` when any network resampled its inputs
    (its own step or ``--resample-via``; empty for the others)."""
    return COLUMNS + _optional(rows)


def markdown_table(rows: list[dict[str, Any]], tests: list[dict[str, Any]] | None = None) -> str:
    """The table (scores with their 95% intervals), then one line per paired test."""
    names = SHOWN + _optional(rows)
    head = [f"{n} [95% CI]" if n in ("accuracy", "macro_f1") else n for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(r, c) for c in names) + " |" for r in rows]
    if tests:
        lines += ["", "Paired tests (McNemar, same items):"]
        lines += [f"- {t['verdict']}" for t in tests]
    return "\n".join(lines) + "\n"


def _predictions(report: Mapping[str, Any]) -> dict[str, Any] | None:
    return report.get("predictions") if isinstance(report.get("predictions"), dict) else None


def paired_tests(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """McNemar's test for every pair of runs (in the order given), or why a pair is not tested:
    a paired test needs both runs' predictions on the very same items (same digest)."""
    tests = []
    for i, a in enumerate(reports):
        for b in reports[i + 1 :]:
            pa, pb = _predictions(a), _predictions(b)
            test: dict[str, Any] = {"a": a["model"], "b": b["model"]}
            if pa is None or pb is None:
                test["verdict"] = (f"{a['model']} vs {b['model']}: not tested (an evaluation "
                                   "without per-item predictions; evaluate again)")  # fmt: skip
            elif pa["items"] != pb["items"]:
                test["verdict"] = (f"{a['model']} vs {b['model']}: not tested (scored on "
                                   "different items, e.g. other classes or split)")  # fmt: skip
            else:
                truth = np.asarray(pa["y_true"])
                test.update(mcnemar(np.asarray(pa["y_pred"]) == truth,
                                    np.asarray(pb["y_pred"]) == truth))  # fmt: skip
                test["verdict"] = verdict(a["model"], b["model"], test)
            tests.append(test)
    return tests


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
    runs: Sequence[str | Path],
    data: str | Path,
    split: str | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Evaluate every run on ``split`` of ``data``: (rows sorted by accuracy, best first, and
    McNemar's test of every pair).

    ``options`` go to :func:`evaluate_run` (``faces``, ``detector``, ``crops``,
    ``resample_via``, load options)."""
    if not runs:
        raise OptionError("compare needs at least one run")
    reports = [evaluate_run(r, data, split, **options) for r in runs]
    return write_comparison(reports, Path(str(data)).name, out)


def write_comparison(
    reports: Sequence[Mapping[str, Any]], data_name: str, out: str | Path | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The comparison of ``evaluate_run`` reports already made: (rows best first, the paired
    tests of :func:`paired_tests`); with ``out``
    the markdown, CSV, bar chart and JSON. Separate from ``compare_runs`` so a caller that has
    just evaluated the runs (``ferkit study``) does not score them all a second time."""
    if not reports:
        raise OptionError("compare needs at least one report")
    order = sorted(range(len(reports)), key=lambda i: -reports[i]["accuracy"])
    rows = [_row(reports[i]) for i in order]
    tests = paired_tests([reports[i] for i in order])
    if out is not None:
        out = Path(out)
        io.write_text(out / "comparison.md", markdown_table(rows, tests))
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
        io.write_json(out / "comparison.json", {"rows": rows, "tests": tests, "reports": reports})
    return rows, tests
