"""The BENCHMARKS table of a ``ferkit study`` folder, read from its records (runs nothing).

    .venv/bin/python benchmarks/study_summary.py runs/study-fer2013 [--json]

A full study runs for many hours over several invocations (kills included), so its cost is not
one wall-clock figure: this prints, per run, the validation figures of its evaluation stage and
the training time summed over every attempt (``train_seconds_total`` of a resumed network), then
each invocation's wall time and the total, all as ``study.json`` and the ``stage.json`` files
recorded them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ferkit.study.report import accuracy_text, comparison_rows


def _epochs(stage: dict[str, Any]) -> str:
    result = stage.get("result") or {}
    if "epochs_run" not in result:
        return "-"
    stop = ", stopped early" if result.get("stopped_early") else ""
    return f"{result['best_epoch']:.0f} / {result['epochs_run']:.0f}{stop}"


def summary(out: Path) -> dict[str, Any]:
    """Rows (one per run) and invocations of the study in ``out``."""
    study = json.loads((out / "study.json").read_text())
    rows = []
    for row in comparison_rows(study, out):
        stage = study["stages"].get(row["run"], {})
        params = (stage.get("result") or {}).get("best_params")
        rows.append({**row, "epochs": _epochs(stage), "best_params": params})
    invocations = study.get("invocations", [])
    return {
        "study": str(out),
        "config": study["config"],
        "in_progress": study.get("in_progress", False),
        "rows": rows,
        "invocations": invocations,
        "wall_seconds_recorded": round(sum(i.get("seconds", 0) for i in invocations), 1),
        "stage_seconds": {n: s.get("seconds") for n, s in study["stages"].items()},
    }


def table(s: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    lines = [
        "| run | status | val accuracy | macro-F1 | n | train s | best / run epochs "
        "| SVM params | seed's figure (test split) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        seed = f"{pct(r['seed_accuracy'])} ({r['seed_label']})" if r["seed_accuracy"] else "-"
        lines.append(
            f"| {r['run']} | {r['status']} | {accuracy_text(r)} | {pct(r['macro_f1'])} "
            f"| {r['n'] or '-'} | {r['train_seconds'] or '-'} | {r['epochs']} "
            f"| {r['best_params'] or '-'} | {seed} |"
        )
    lines.append("")
    lines.append("| invocation started | finished | status | wall s | stages run |")
    lines.append("|---|---|---|---|---|")
    for i in s["invocations"]:
        ran = ", ".join(i.get("stages_run", [])) or "none"
        lines.append(
            f"| {i.get('started', '-')} | {i.get('finished') or '-'} "
            f"| {i.get('status', 'finished')} | {i.get('seconds')} | {ran} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the study folder (ferkit study --out)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    s = summary(args.out)
    print(json.dumps(s, indent=2) if args.json else table(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
