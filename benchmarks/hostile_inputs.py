"""The bad-input corpus against every command: kinds tried / ok / clear error / failure.

Builds tests/hostile_corpus.py's corpus in a temp folder, runs ``ferkit predict``, ``inspect``
(class folders and YOLO, plus the hostile data.yaml files), ``evaluate --faces detect`` and a
live ``ferkit serve`` on it, each under a time limit, and prints one row per command: how many
kinds were tried, how many came out right (a good input processed, a bad one reported with a
reason) and how many failed, by failure (a traceback, a hang, a silent drop, a wrong outcome).
The figures go to docs/BENCHMARKS.md.

    PYTHONPATH=src python benchmarks/hostile_inputs.py [--json] [--details] [--timeout 60]
        [--skip KIND ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostile_corpus as hc

COLUMNS = ("tried", hc.OK, hc.CLEAR, hc.TRACEBACK, hc.HANG, hc.DROP, hc.WRONG)


def markdown(table: dict[str, dict[str, int]]) -> str:
    lines = [
        "| command | " + " | ".join(COLUMNS) + " |",
        "|---" + "|---:" * len(COLUMNS) + "|",
    ]
    for command in hc.COMMANDS:
        if command in table:
            row = table[command]
            lines.append(f"| {command} | " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the table and verdicts as JSON")
    parser.add_argument("--details", action="store_true", help="list every failing verdict")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per command")
    parser.add_argument("--model", default="fer2013", help="model for evaluate")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="KIND",
        help="leave a kind out (repeatable), to see past one that stops a whole run",
    )
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ferkit-hostile-"))
    try:
        verdicts = hc.run_everything(
            folder, timeout=options.timeout, model=options.model, skip=options.skip
        )
    finally:
        hc.remove(folder)
    table = hc.tally(verdicts)
    if options.json:
        print(json.dumps({"table": table, "verdicts": [asdict(v) for v in verdicts]}, indent=2))
        return 0
    print(markdown(table))
    bad = [v for v in verdicts if not v.good]
    if options.details or bad:
        print()
        for v in bad if not options.details else verdicts:
            print(f"{v.command:16} {v.case:32} {v.outcome:14} {v.detail[:110]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
