"""Which model predicts, how its faces are framed, and how its outputs become labels and scores.

The default model is one constant, :data:`DEFAULT_MODEL`: the shipped FER2013 network
(``fer2013``, 48x48 gray, 7 classes). Should no model of that name be shipped (a trimmed
install), the first shipped model stands in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.models.store import Run, load_run

# DEFAULT_MODEL is defined beside the shipped models, so `ferkit models` can mark it cheaply
from ferkit.weights import DEFAULT_MODEL, shipped_models, shipped_path


def default_model_path() -> Path:
    """The shipped folder of :data:`DEFAULT_MODEL`, else of the first shipped model.

    Resolved to the shipped folder itself (not through ``load_run(name)``), so a dataset folder
    that happens to be called ``fer2013`` in the working directory is never taken for the model.
    """
    names = shipped_models()
    if DEFAULT_MODEL in names:
        return shipped_path(DEFAULT_MODEL)
    if not names:
        raise FerkitError("no model given and no model is shipped; pass a run folder (--model)")
    return shipped_path(names[0])


def resolve_model(model: str | Path | Run | None, backend: str | None = None) -> Run:
    """A loaded run: ``None`` is the default model, a ``Run`` is used as is, anything else is a
    run folder or a shipped model's name (as ``load_run`` takes them, with ``backend``)."""
    if isinstance(model, Run):
        return model
    if model is None:
        return load_run(default_model_path(), backend)
    if not isinstance(model, str | Path):
        raise FerkitError(
            f"model must be a run folder, a shipped model's name or a loaded Run, "
            f"got {type(model).__name__}"
        )
    return load_run(model, backend)


def has_probabilities(run: Run) -> bool:
    """True when the run's estimator gives class probabilities (``predict_proba``).

    scikit-learn pipelines expose ``predict_proba`` only when their last step has it, so a
    pipeline ending in an SVM without probability estimates answers False.
    """
    return hasattr(run.estimator, "predict_proba")


def quiet_features(run: Run) -> None:
    """Turn off the progress bars and the on-disk feature cache of a pipeline's extractors.

    Prediction inputs are one-off crops: caching their features would only fill the cache
    folder, and a bar per classifier call would flood the terminal.
    """
    for _, step in getattr(run.estimator, "steps", None) or []:
        params = step.get_params(deep=False) if hasattr(step, "get_params") else {}
        off = {key: False for key in ("progress", "cache") if key in params}
        if off:
            step.set_params(**off)


def classify(run: Run, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Class indices (into ``run.classes``) and, when the model has them, (N, classes)
    probabilities for a batch of crops in the run's layout.

    With probabilities the label is their argmax, so a printed label is always the class with
    the highest printed score (scikit-learn's ``predict`` may disagree with its own Platt
    probabilities). Columns follow the estimator's ``classes_`` when it has them, so a class
    missing from training gets probability 0 instead of shifting the others.
    """
    if len(crops) == 0:
        return np.zeros(0, dtype=np.int64), None
    if not has_probabilities(run):
        return run.predict(crops), None
    raw = np.asarray(run.estimator.predict_proba(crops), dtype=np.float64)
    columns = np.asarray(getattr(run.estimator, "classes_", np.arange(raw.shape[1])), dtype=int)
    if raw.shape != (len(crops), len(columns)) or columns.max(initial=-1) >= len(run.classes):
        raise FerkitError(
            f"{run.path}: the model returned probabilities of shape {raw.shape} for "
            f"{len(crops)} crops and {len(run.classes)} classes"
        )
    probabilities = np.zeros((len(crops), len(run.classes)))
    probabilities[:, columns] = raw
    return probabilities.argmax(axis=1), probabilities
