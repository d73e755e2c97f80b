"""``ferkit evaluate``: one run on one split -> metrics JSON, confusion heatmap, gallery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ferkit import io
from ferkit.data.dataset import Dataset, load_dataset
from ferkit.data.folders import SINGLE_SPLIT
from ferkit.errors import SplitNotFoundError
from ferkit.evaluation.mapping import map_classes
from ferkit.evaluation.metrics import classification_report_dict
from ferkit.models.store import Run, load_run


def evaluate_run(
    run: str | Path | Run,
    data: str | Path,
    split: str | None = None,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    **load_options: Any,
) -> dict[str, Any]:
    """Score ``run`` on ``split`` of ``data`` (loaded in the run's size and colour).

    ``split=None`` means the validation split or, for a folder of class folders without
    splits (a test set dropped in as ``happy/``, ``sad/``...), all of it.

    When the classes differ, only the shared canonical emotions are scored and the mapping is
    part of the result. With ``out``: ``metrics.json``, ``confusion_matrix.png``,
    ``misclassified.png``.
    """
    model = run if isinstance(run, Run) else load_run(run)
    ds, name = _load_split(model, data, split, load_options)
    part = ds.usable_split(name)
    mapping = map_classes(ds.classes, ds.canonical, model.classes, model.canonical)
    keep, y_true = mapping.apply(part.labels)
    if len(keep) == 0:
        raise ValueError(f"split {part.name!r} has no sample of the model's classes")
    images = model.prepare(part.subset(keep))
    start = time.perf_counter()
    y_pred = model.predict(images)
    seconds = time.perf_counter() - start
    report = classification_report_dict(y_true, y_pred, model.classes)
    report.update(
        {
            "run": str(model.path),
            "model": model.name,
            "data": str(ds.root),
            "split": part.name,
            "mapping": mapping.lines(),
            "dropped_classes": mapping.dropped,
            "skipped_samples": len(ds.skipped),
            "predict_seconds": round(seconds, 3),
        }
    )
    if out is not None:
        _write_artifacts(Path(out), report, images, y_true, y_pred, model.classes, seed)
    return report


def _load_split(
    model: Run, data: str | Path, split: str | None, load_options: dict[str, Any]
) -> tuple[Dataset, str]:
    """Only the scored split is decoded; with no split named, an unsplit folder is scored
    whole rather than refused for lacking a ``val`` folder."""

    def load(name: str) -> Dataset:
        return load_dataset(
            data,
            image_size=model.image_size,
            color=model.color,  # type: ignore[arg-type]
            splits=[name],
            **load_options,
        )

    try:
        return load(split or "val"), split or "val"
    except SplitNotFoundError as first:
        if split is not None:
            raise
        try:
            return load(SINGLE_SPLIT), SINGLE_SPLIT
        except SplitNotFoundError:
            raise first from None


def _write_artifacts(
    out: Path, report: dict[str, Any], images, y_true, y_pred, classes: list[str], seed: int
) -> None:
    from ferkit.reports.evaluation_figures import confusion_heatmap, misclassification_gallery

    title = f"{report['model']} on {Path(report['data']).name}/{report['split']}"
    title += f" - accuracy {report['accuracy']:.1%}"
    figures = {
        "confusion_matrix": io.save_figure(
            confusion_heatmap(report["confusion_matrix"], classes, title),
            out / "confusion_matrix.png",
            dpi=110,
        ),
        "misclassified": io.save_figure(
            misclassification_gallery(images, y_true, y_pred, classes, seed=seed),
            out / "misclassified.png",
            dpi=110,
        ),
    }
    report["figures"] = {k: str(v) for k, v in figures.items()}
    io.write_json(out / "metrics.json", report)
