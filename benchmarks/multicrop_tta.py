"""What multi-crop test-time augmentation buys: a network's accuracy on a split scored as one
view, with its mirror (flip), and as five crops (x the mirror), and what each costs.

    .venv/bin/python benchmarks/multicrop_tta.py --data ../shared/data/fer2013 \\
        --model fer2013 [--model RUN ...] [--split val] [--threads 1] [--crop-fraction F] \\
        [--json OUT]

Each ``--model`` (run folder or shipped name) is loaded once, as its torch network, and scored
through ferkit's own API: ``single_view(run)`` (one view), ``run`` (each face averaged with its
mirror when the network was trained with ``--tta flip``; otherwise the same as single) and
``multi_crop(run, 5, F)`` (the four corners and the centre of side F, resized back, each scored
as ``run`` scores it: ten views per face with the flip). Images whose class the model does not
know are left out and counted. Seconds are the wall time of scoring the whole split on
``--threads`` torch threads; the load average before and after is recorded (other work on the
machine slows every row alike only if it stays the same).
"""

from __future__ import annotations

from pathlib import Path

from flip_tta import labelled_split, models_parser, run_models, split_record, timed_score

from ferkit.models.crops import DEFAULT_CROP_FRACTION, multi_crop
from ferkit.models.flip import flips_averaged, single_view

ROWS = ("single", "flip", "crops5")


def measure(model: str, data: Path, split_name: str, fraction: float) -> dict:
    run, split, images, y = labelled_split(model, data, split_name)
    variants = {"single": single_view(run), "flip": run, "crops5": multi_crop(run, 5, fraction)}
    rows = {name: timed_score(variants[name].estimator, images, y, run.canonical) for name in ROWS}
    return {
        **split_record(model, data, split, images, rows),
        "flip_averaged": flips_averaged(run),
        "crop_fraction": round(fraction, 4),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| model | images | single view | flip | 5 crops (x flip) | macro-F1 single / flip / "
        "crops | s single / flip / crops |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, f, c = (r["result"][k] for k in ROWS)
        lines.append(
            f"| {r['model']} | {r['images']:,} | {s['accuracy']:.2%} | {f['accuracy']:.2%} | "
            f"{c['accuracy']:.2%} | {s['macro_f1']:.3f} / {f['macro_f1']:.3f} / "
            f"{c['macro_f1']:.3f} | {s['seconds']} / {f['seconds']} / {c['seconds']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = models_parser(__doc__.splitlines()[0])
    parser.add_argument("--crop-fraction", type=float, default=DEFAULT_CROP_FRACTION)
    args = parser.parse_args()
    fraction = args.crop_fraction
    return run_models(args, lambda model: measure(model, args.data, args.split, fraction), table)


if __name__ == "__main__":
    raise SystemExit(main())
