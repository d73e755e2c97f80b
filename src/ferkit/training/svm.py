"""``ferkit svm``: features -> grid search -> SVM fitted on the balanced train split -> run.

As in the notebook, the search runs by default on a stratified subset of the validation split
(~2000 images, 5-fold CV) and the final model is fitted on the train split undersampled by
750; ``search_on="train"`` searches by plain CV on a subset of train instead, which keeps the
validation split untouched for reporting (the benchmarks use that). The folds are
subject-disjoint when the subjects are known (``group_by``, or detected in the file names).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from ferkit import io
from ferkit.data.balance import NOTEBOOK_MARGIN, stratified_subset
from ferkit.data.dataset import Dataset, Split, load_dataset
from ferkit.data.groups import subjects
from ferkit.data.sharpness import matching_target
from ferkit.errors import DatasetError, FerkitError, SplitNotFoundError
from ferkit.models.card import ModelCard
from ferkit.models.store import save_sklearn_run
from ferkit.models.svm import NOTEBOOK_GRID, SVMClassifier
from ferkit.records import SVMSummary
from ferkit.training.config import Features, Kernel, Method, SVMConfig

__all__ = ["Features", "Kernel", "Method", "SVMConfig", "search_svm", "train_svm"]


def search_svm(
    features: np.ndarray,
    labels: np.ndarray,
    method: str = "exact",
    grid: list[dict[str, list[Any]]] | None = None,
    cv: int = 5,
    seed: int = 0,
    n_jobs: int = -1,
    pca_components: int | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """GridSearchCV over the notebook's grid; returns best params, score and the ranked table.

    ``pca_components`` is fixed during the search (it is a speed/accuracy dial of the ``pca``
    and ``fast`` methods, not one of the notebook's hyper-parameters). ``groups`` (a subject per
    sample) makes the folds subject-disjoint (``StratifiedGroupKFold``): with frames of one
    person in several folds, every setting that memorises scores ~100% and the search picks
    among them blindly.
    """
    counts = np.bincount(labels)
    folds = min(cv, int(counts[counts > 0].min()))
    if folds < 2:
        raise FerkitError("grid search needs at least 2 samples of every class")
    splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=seed)
    codes = None
    if groups is not None:
        _, codes = np.unique(groups, return_inverse=True)
        folds = min(cv, int(codes.max()) + 1)
        if folds < 2:
            raise FerkitError("grid search by subject needs at least 2 subjects")
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        SVMClassifier(method=method, random_state=seed, pca_components=pca_components),
        grid or NOTEBOOK_GRID,
        cv=splitter,
        n_jobs=n_jobs,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():  # a subject fold short of a class: expected, not news
        warnings.simplefilter("ignore", UserWarning)
        search.fit(features, labels, groups=codes)
    res = search.cv_results_
    table: list[dict[str, Any]] = sorted(
        (
            {
                "params": {k: _plain(v) for k, v in p.items()},
                "mean_accuracy": float(m),
                "std": float(s),
            }
            for p, m, s in zip(
                res["params"], res["mean_test_score"], res["std_test_score"], strict=True
            )
        ),
        key=lambda r: -r["mean_accuracy"],
    )
    return {
        "best_params": table[0]["params"],
        "best_cv_accuracy": float(search.best_score_),
        "folds": folds,
        "grouped": groups is not None,
        "samples": len(labels),
        "seconds": round(time.perf_counter() - start, 2),
        "table": table,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _search_split(ds: Dataset, search_on: str, train: Split) -> Split:
    """The split to search on; the default ``val`` falls back to train when there is none."""
    if search_on == "train":
        return train
    try:
        return ds.usable_split(search_on)
    except SplitNotFoundError:
        if search_on == "val":
            return train
        raise


def _validation_images(ds: Dataset) -> np.ndarray | None:
    """The val split's images, None when there is no usable one (nothing to compare with)."""
    try:
        return ds.usable_split("val").images
    except (SplitNotFoundError, DatasetError):
        return None


def _dedupe(ds: Dataset, train: Split) -> tuple[Split, dict[str, Any]]:
    """``train`` without its duplicates of the other splits (val, test), and the record; the
    count is said on stderr at once, as ``ferkit train`` does, whatever ``log`` is."""
    from ferkit.data.duplicates import dedupe_message, dedupe_train

    kept, record = dedupe_train(ds, train)
    print(f"{ds.root}: {dedupe_message(record)}", file=sys.stderr, flush=True)
    return kept, record


def train_svm(
    data: str | Path,
    out: str | Path,
    *,
    features: str = "hog",
    method: str = "pca",
    search: bool = True,
    search_on: str = "val",
    search_size: int = 2000,
    params: dict[str, Any] | None = None,
    margin: int = NOTEBOOK_MARGIN,
    train_split: str = "train",
    seed: int = 0,
    image_size: int | None = None,
    color: str | None = None,
    progress: bool = True,
    feature_params: dict[str, Any] | None = None,
    pca_components: int | None = None,
    match_sharpness: str = "auto",
    log: Callable[[str], None] | None = None,
    validate: bool = True,
    dedupe: bool = False,
    group_by: str | None = None,
) -> SVMSummary:
    """Fit and save an SVM run; returns the summary written to ``out/train.json``.

    ``method`` defaults to ``pca``, the recommended path (the exact SVC's accuracy at a fraction
    of its time). ``validate`` scores the fitted pipeline on the val split when there is one
    (``summary["validation"]``: split, n, accuracy), so a fit never ends without its number.

    ``log`` gets a line as each step (search, features, fit) ends: with ``progress`` off, as in
    a study, an exact fit on a large split is otherwise hours without a word.

    HOG runs at the data's own image size unless ``feature_params`` says otherwise (the notebook's
    96x96 on AffectNet; FER2013's 48x48 is not upsampled). ``match_sharpness`` ("auto", "on",
    "off") puts :class:`~ferkit.features.sharpness.MatchSharpness` before the extractor, as
    ``ferkit train`` does for networks: "auto" when train is much blurrier than val.
    ``dedupe`` drops the train images that duplicate a val or test image first
    (:func:`ferkit.data.duplicates.dedupe_train`; ``summary["dedupe"]``, and a line on stderr).

    The search's folds keep each subject in one fold when ``group_by`` or the file names name
    the subjects (:func:`ferkit.data.groups.subjects`); ``summary["search"]["grouping"]`` says.
    """
    from ferkit.features import create_extractor  # features pull in skimage and dlib
    from ferkit.features.sharpness import MatchSharpness

    ds = load_dataset(data, image_size=image_size, color=color, progress=progress)  # type: ignore[arg-type]
    train = ds.usable_split(train_split)
    deduped = _dedupe(ds, train) if dedupe else None
    if deduped is not None:
        train = deduped[0]
    defaults = {"size": ds.image_size} if features == "hog" else {}
    extractor = create_extractor(
        features, progress=progress, **{**defaults, **(feature_params or {})}
    )
    summary: dict[str, Any] = {
        "data": str(ds.root),
        "features": features,
        "method": method,
        "seed": seed,
        "image_size": ds.image_size,
        "color": ds.color,
        **({"dedupe": deduped[1]} if deduped is not None else {}),
    }
    target, summary["sharpness"] = matching_target(
        match_sharpness, train.images, _validation_images(ds), seed
    )
    steps: list[tuple[str, Any]] = [("features", extractor)]
    if target is not None:
        steps.insert(0, ("match", MatchSharpness(target)))
    prep = Pipeline(steps)
    chosen = dict(params or {})
    say = log or (lambda _: None)
    if search:
        pool = _search_split(ds, search_on, train)
        idx = stratified_subset(pool.labels, search_size, seed=seed)
        x_search = prep.fit_transform(pool.images[idx])
        groups, grouping = subjects([pool.refs[i] for i in idx], group_by)
        result = search_svm(x_search, pool.labels[idx], method, seed=seed,
                            pca_components=pca_components, groups=groups)  # fmt: skip
        result["split"] = pool.name
        result["grouping"] = grouping
        summary["search"] = result
        chosen = {**result["best_params"], **chosen}
        say(f"search on {len(idx)} {pool.name} images: {result['best_params']}"
            f" (CV accuracy {result['best_cv_accuracy']:.3f})")  # fmt: skip
    balanced = train.balanced(margin, seed)
    start = time.perf_counter()
    x_train = prep.fit_transform(balanced.images)
    feature_seconds = time.perf_counter() - start
    say(f"{features} features of {len(balanced)} train images in {feature_seconds:.0f} s; fitting")
    clf = SVMClassifier(method=method, random_state=seed, pca_components=pca_components, **chosen)
    start = time.perf_counter()
    clf.fit(x_train, balanced.labels)
    fit_seconds = time.perf_counter() - start
    say(f"fitted in {fit_seconds:.0f} s")
    pipeline = Pipeline([*steps, ("svm", clf)])
    report = getattr(extractor, "report", None)
    if callable(report):
        summary["feature_report"] = report()
    summary.update(
        {
            "params": clf.get_params(),
            "train_samples": len(balanced),
            "train_counts": balanced.counts(),
            "feature_seconds": round(feature_seconds, 2),
            "fit_seconds": round(fit_seconds, 2),
        }
    )
    card = ModelCard.from_dict(
        {
            "kind": "sklearn",
            "name": Path(out).name,
            "classes": ds.classes,
            "canonical": ds.canonical,
            "image_size": ds.image_size,
            "color": ds.color,
            "features": features,
            "feature_params": extractor.cache_params(),
            "sharpness_target": target,
            "svm_params": clf.get_params(),
            "trained_on": str(ds.root),
            "train_split": train.name,
            **({"dedupe": deduped[1]} if deduped is not None else {}),
        }
    )
    if validate:
        summary["validation"] = _validation_score(pipeline, ds)
        if summary["validation"]:
            say(f"validation accuracy {summary['validation']['accuracy']:.3f}")
    save_sklearn_run(out, pipeline, card)
    io.write_json(Path(out) / "train.json", summary)
    return SVMSummary.from_dict(summary, Path(out) / "train.json")


def _validation_score(pipeline: Pipeline, ds: Dataset) -> dict[str, Any] | None:
    """Accuracy of the fitted ``pipeline`` on the val split; None when there is none."""
    try:
        val = ds.usable_split("val")
    except (SplitNotFoundError, DatasetError):
        return None
    start = time.perf_counter()
    predicted = pipeline.predict(val.images)
    return {
        "split": val.name,
        "n": len(val),
        "accuracy": round(float(np.mean(predicted == val.labels)), 4),
        "seconds": round(time.perf_counter() - start, 2),
    }
