"""``ferkit evaluate``: one run on one split -> metrics JSON, confusion heatmap, gallery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ferkit import io
from ferkit.data.dataset import Dataset, Split, load_dataset
from ferkit.data.folders import SINGLE_SPLIT
from ferkit.errors import FerkitError, SplitNotFoundError
from ferkit.evaluation.mapping import map_classes
from ferkit.evaluation.metrics import classification_report_dict
from ferkit.evaluation.stats import intervals, items_digest
from ferkit.models.crops import DEFAULT_CROP_FRACTION, crop_fraction_of, crops_of, multi_crop
from ferkit.models.flip import flips_averaged
from ferkit.models.resampling import resample_via_of, resampling_backend, with_resampling
from ferkit.models.store import Run, load_run
from ferkit.records import EvalReport

FACES = ("given", "detect")  # images are face crops / photos whose largest face is scored


def evaluate_run(
    run: str | Path | Run,
    data: str | Path,
    split: str | None = None,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    faces: str = "given",
    detector: str = "auto",
    crops: int = 1,
    crop_fraction: float = DEFAULT_CROP_FRACTION,
    resample_via: int | None = None,
    **load_options: Any,
) -> EvalReport:
    """Score ``run`` on ``split`` of ``data`` (loaded in the run's size and colour).

    ``faces="given"`` takes the images as face crops, as the datasets ferkit trains on are.
    ``faces="detect"`` is for collections of photos (portraits, frames): each image is cut to
    its largest face as ``ferkit predict`` cuts it; images without a face are not scored and
    are listed with the reason (``no_face``).

    ``split=None`` means the validation split or, for a folder of class folders without
    splits (a test set dropped in as ``happy/``, ``sad/``...), all of it.

    When the classes differ, only the shared canonical emotions are scored and the mapping is
    part of the result. ``accuracy_ci`` and ``macro_f1_ci`` are 95% intervals (Wilson score;
    bootstrap percentile, see :mod:`ferkit.evaluation.stats`); ``predictions`` holds each
    item's true and predicted label and a digest of the items, for paired tests. With ``out``:
    ``metrics.json``, ``confusion_matrix.png``, ``misclassified.png``.

    ``crops=5`` scores each image as five crops of side ``crop_fraction`` averaged
    (:func:`ferkit.models.crops.multi_crop`; five times the network time); the report records
    ``crops`` and ``crop_fraction``.

    ``resample_via=224`` passes each image (each crop) through the network's resize round trip
    via 224 px (:func:`ferkit.models.resampling.with_resampling`; a run folder is then loaded
    as its torch network); the report records the network's ``resample_via``, its own or this.
    """
    if faces not in FACES:
        raise FerkitError(f"faces must be one of {', '.join(FACES)}, got {faces!r}")
    model = run if isinstance(run, Run) else load_run(run, resampling_backend(resample_via))
    model = with_resampling(model, resample_via)  # a copy (None: the run itself); crops next
    model = multi_crop(model, crops, crop_fraction)  # a copy (crops=1: the run itself)
    ds, name = _load_split(model, data, split, load_options)
    part = ds.usable_split(name)
    no_face: list[dict[str, str]] = []
    if faces == "detect":
        progress = bool(load_options.get("progress", True))
        part, no_face = _detected_faces(part, model, detector, progress)
    mapping = map_classes(ds.classes, ds.canonical, model.classes, model.canonical)
    keep, y_true = mapping.apply(part.labels)
    if len(keep) == 0:
        raise FerkitError(f"split {part.name!r} has no sample of the model's classes")
    scored = part.subset(keep)
    images = model.prepare(scored)
    start = time.perf_counter()
    y_pred = _predict(model, images, bool(load_options.get("progress", True)))
    seconds = time.perf_counter() - start
    # canonical lower-case names, as `predict` prints them (AffectNet's own are "Anger"...)
    report = classification_report_dict(y_true, y_pred, list(model.canonical))
    report.update(intervals(y_true, y_pred))
    report.update(
        {
            "run": str(model.path),
            "model": model.name,
            "data": str(ds.root),
            "split": part.name,
            "mapping": mapping.lines(),
            "dropped_classes": mapping.dropped,
            "skipped_samples": len(ds.skipped),
            # every item the reader skipped or warned about, with its file and reason
            "problems": [p.to_dict() for p in ds.problems],
            "faces": faces,
            "no_face": no_face,
            "flip_averaged": flips_averaged(model),
            # crop views averaged per image (--crops), and their side as a fraction of it
            "crops": crops_of(model),
            "crop_fraction": crop_fraction_of(model),
            # the side the network resamples each input through (its own or --resample-via)
            "resample_via": resample_via_of(model),
            "predict_seconds": round(seconds, 3),
            # per item, for `ferkit compare`'s paired test (same items: same digest)
            "predictions": {
                "items": items_digest([_relative(r, ds.root) for r in scored.refs], y_true),
                "y_true": np.asarray(y_true).tolist(),
                "y_pred": np.asarray(y_pred).tolist(),
            },
        }
    )
    if out is not None:
        _write_artifacts(Path(out), report, images, y_true, y_pred, list(model.canonical), seed)
    result = EvalReport.from_dict(report)
    result.same_classes = mapping.same_names
    return result


def _relative(ref: str, root: Path) -> str:
    """An item's reference relative to the dataset root: the same items moved elsewhere (or
    scored from another machine) still pair up in ``ferkit compare``."""
    try:
        return Path(ref).relative_to(root).as_posix()
    except ValueError:
        return ref


SCORE_CHUNK = 512  # images per progress step: small enough to move, large enough to batch


def _predict(model: Run, images: np.ndarray, progress: bool) -> np.ndarray:
    """``model.predict`` in chunks behind a progress bar: scoring a large split (an exact SVM,
    a big network on CPU) otherwise gives minutes without a sign of life."""
    from tqdm.auto import tqdm

    if not progress or len(images) <= SCORE_CHUNK:
        return model.predict(images)
    parts = []
    with tqdm(total=len(images), desc="scoring", unit="img", leave=False) as bar:
        for start in range(0, len(images), SCORE_CHUNK):
            parts.append(model.predict(images[start : start + SCORE_CHUNK]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def _detected_faces(
    part: Split, model: Run, detector: str, progress: bool
) -> tuple[Split, list[dict[str, str]]]:
    """``part`` with each image replaced by its largest face, cut from the file at full size
    (detection needs the detail the model-sized pixels lost), and the images without one."""
    from tqdm.auto import tqdm

    from ferkit.data.images import ImageProblem, decode_image
    from ferkit.faces.framing import largest_face

    boxed = next((ref for ref in part.refs if "#box" in ref), None)
    if boxed is not None:
        raise FerkitError(
            f"{boxed}: this dataset's labels box its faces already (one sample per box), so "
            "there is nothing to detect; score its crops as given"
        )
    crops, kept, missing = [], [], []
    for i, ref in enumerate(tqdm(part.refs, desc="finding faces", disable=not progress)):
        try:
            face, _ = largest_face(decode_image(ref, color="rgb"), model, detector)
        except ImageProblem as exc:  # decoded once already; changed on disk since
            missing.append({"file": ref, "reason": f"{exc.kind}: {exc.reason}"})
            continue
        if face is None:
            missing.append({"file": ref, "reason": "no face found"})
            continue
        crops.append(face.crop)
        kept.append(i)
    if not kept:
        raise FerkitError(
            f"no face found in any of the {len(part)} images of split {part.name!r}; "
            "are they face crops already? (then score them as given)"
        )
    found = part.subset(kept)
    return Split(found.name, np.stack(crops), found.labels, found.refs, found.classes,
                 found.canonical), missing  # fmt: skip


def _load_split(
    model: Run, data: str | Path, split: str | None, load_options: dict[str, Any]
) -> tuple[Dataset, str]:
    """Only the scored split is decoded; with no split named, an unsplit folder is scored
    whole rather than refused for lacking a ``val`` folder."""

    def load(name: str) -> Dataset:
        return load_dataset(
            data,
            image_size=model.image_size,
            color=model.color,
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
