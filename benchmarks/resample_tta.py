"""What test-time resampling buys: a network's accuracy on a split scored as saved, with each
input passed through the resize round trip its training images went through
(``resample_via``), with Gaussian sharpness matching to the training median instead, and each of
those under five test-time crops.

    .venv/bin/python benchmarks/resample_tta.py --data ../shared/data/fer2013 \\
        --model fer2013 [--model RUN ...] [--split val] [--via 224] [--threads 1] [--json OUT]

Why: ``../shared/data/fer2013``'s train split was rebuilt from a copy upscaled to 224x224 and
area-downscaled back to 48x48; its val split was not (median sharpness 0.47 against 0.73).
Each ``--model`` (run folder or shipped name) is loaded as its torch network, as saved (with its
own flip averaging), and scored through ferkit's own API in five ways:

* ``saved``: as it is;
* ``resampled``: ``with_resampling(run, via)`` (:mod:`ferkit.models.nets.resample`; what
  ``--resample-via`` does);
* ``sharpness``: ``Network.match_sharpness(t)``, t the median sharpness of the ``--train-split``
  images (the Gaussian alternative, :mod:`ferkit.models.nets.sharpness`);
* ``crops5`` and ``crops5+resampled``: ``multi_crop(run, 5)`` of the first two.

Images whose class the model does not know are left out and counted. Seconds are the wall time
of scoring the split on ``--threads`` torch threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flip_tta import labelled_split, models_parser, run_models, split_record, timed_score

from ferkit.data import load_dataset
from ferkit.data.sharpness import median_sharpness
from ferkit.models import load_run
from ferkit.models.crops import DEFAULT_CROP_FRACTION, multi_crop
from ferkit.models.resampling import with_resampling

ROWS = ("saved", "resampled", "sharpness", "crops5", "crops5+resampled")


def _train_median(data: Path, run: Any, split_name: str) -> float:
    """Median sharpness of the training images, as ``ferkit train --match-sharpness`` takes it."""
    ds = load_dataset(data, image_size=run.image_size, color=run.color, splits=[split_name])
    return median_sharpness(ds.usable_split(split_name).images)


def variants(model: str, run: Any, via: int, target: float) -> dict[str, Any]:
    """The five ways of scoring ``model``, each a run of its own."""
    resampled = with_resampling(run, via)
    matched = load_run(model, backend="torch")
    matched.estimator.model.match_sharpness(target)
    return {
        "saved": run,
        "resampled": resampled,
        "sharpness": matched,
        "crops5": multi_crop(run, 5, DEFAULT_CROP_FRACTION),
        "crops5+resampled": multi_crop(resampled, 5, DEFAULT_CROP_FRACTION),
    }


def measure(model: str, data: Path, split_name: str, via: int, train_split: str) -> dict:
    run, split, images, y = labelled_split(model, data, split_name)
    target = _train_median(data, run, train_split)
    runs = variants(model, run, via, target)
    rows = {name: timed_score(runs[name].estimator, images, y, run.canonical) for name in ROWS}
    return {
        **split_record(model, data, split, images, rows),
        "resample_via": via,
        "sharpness_target": round(target, 4),
        "crop_fraction": round(DEFAULT_CROP_FRACTION, 4),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| model | images | as saved | resampled | sharpness-matched | 5 crops "
        "| 5 crops + resampled | macro-F1 saved / resampled | s saved / resampled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        row = r["result"]
        acc = " | ".join(f"{row[k]['accuracy']:.2%}" for k in ROWS)
        f1 = f"{row['saved']['macro_f1']:.3f} / {row['resampled']['macro_f1']:.3f}"
        secs = f"{row['saved']['seconds']} / {row['resampled']['seconds']}"
        lines.append(f"| {r['model']} | {r['images']:,} | {acc} | {f1} | {secs} |")
    return "\n".join(lines)


def main() -> int:
    parser = models_parser(__doc__.splitlines()[0])
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--via", type=int, default=224)
    args = parser.parse_args()

    def measure_one(model: str) -> dict:
        return measure(model, args.data, args.split, args.via, args.train_split)

    return run_models(args, measure_one, table)


if __name__ == "__main__":
    raise SystemExit(main())
