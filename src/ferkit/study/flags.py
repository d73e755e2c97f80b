"""What an expert reading a study would flag, each with what to do: shown in report.html and
report.md, and kept in ``study.json`` (``warnings``).

A report that says 100.0% on a posed dataset split at random, or 41% for a two-class model on
29 images, without a word, loses its reader's trust. These checks read the stage records only
(no data is loaded again), so they cost nothing and hold for resumed studies too.
"""

from __future__ import annotations

from typing import Any

TOO_GOOD = 0.99  # a score at or above this on a held-out split is more often a leak than a feat
SMALL_VAL = 100  # validation images below which a score's interval spans many points
IMBALANCE = 10.0  # largest / smallest train class at or above this


def _warning(kind: str, message: str, advice: str) -> dict[str, str]:
    return {"kind": kind, "message": message, "advice": advice}


def _evaluations(study: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(run, evaluation result) of every run evaluated so far, in the study's order."""
    found = []
    for run in study.get("runs", []):
        record = study["stages"].get(f"eval-{run}") or {}
        if record.get("status") == "done" and isinstance(record.get("result"), dict):
            found.append((run, record["result"]))
    return found


def _classes_scored(result: dict[str, Any], data: dict[str, Any]) -> int:
    """Classes the run was scored on (older records: the data's classes less those dropped)."""
    if result.get("classes_scored"):
        return int(result["classes_scored"])
    return len(data.get("source_classes") or []) - len(result.get("dropped_classes") or [])


def _score_warnings(study: dict[str, Any], data: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    for run, result in _evaluations(study):
        acc, k = result.get("accuracy"), _classes_scored(result, data)
        if not isinstance(acc, int | float):
            continue
        if acc >= TOO_GOOD:
            found.append(_warning(
                "too-good",
                f"{run}: {acc:.1%} validation accuracy. Scores this high on facial expressions "
                "usually mean the validation images are (near) copies of training images: "
                "frames of the same sequence, the same person, or duplicates.",
                "Check that no subject is in both train and val (--group-by REGEX, or a val "
                "split made by subject) and that the dataset inspection finds no duplicates "
                "across splits; then evaluate on a test set of unseen people.",
            ))  # fmt: skip
        if k >= 2 and acc < 1 / k:
            high = (result.get("accuracy_ci") or [None, None])[1]
            sure = (
                f" (its 95% interval ends at {high:.1%}, below chance too)"
                if isinstance(high, int | float) and high < 1 / k
                else " (within noise of chance on this many images)"
            )
            found.append(_warning(
                "below-chance",
                f"{run}: {acc:.1%} validation accuracy on {result.get('n')} images is below "
                f"chance for {k} classes ({1 / k:.1%}){sure}: the model learnt nothing usable.",
                "Train longer or on more images, check the labels and the class mapping, and "
                "read its confusion matrix (it may predict one class for everything).",
            ))  # fmt: skip
    return found


def _val_size(study: dict[str, Any], data: dict[str, Any]) -> int | None:
    counts = data.get("val_counts")
    if isinstance(counts, dict) and counts:
        return int(sum(counts.values()))
    sizes = [r["n"] for _, r in _evaluations(study) if isinstance(r.get("n"), int)]
    return max(sizes) if sizes else None


def _data_warnings(
    study: dict[str, Any], data: dict[str, Any], duplicates: int | None
) -> list[dict[str, str]]:
    found = []
    n = _val_size(study, data)
    if n is not None and n < SMALL_VAL:
        found.append(_warning(
            "small-validation",
            f"the validation split has {n} images: an accuracy on so few moves by several "
            "points from one sample to another (see each score's 95% interval).",
            "Use a larger validation split (--max-val, or more data) before ranking models; "
            "read differences through the paired tests, not the raw scores.",
        ))  # fmt: skip
    if duplicates:
        found.append(_warning(
            "duplicates-across-splits",
            f"{duplicates} training images duplicate (or nearly) validation or test images: "
            "those are scored on images the model has seen.",
            "Drop them from train (--dedupe) or rebuild the splits; inspect/problems.csv "
            "lists the pairs.",
        ))  # fmt: skip
    counts = [c for c in (data.get("train_counts") or {}).values() if isinstance(c, int)]
    if counts and max(counts) > 0:
        smallest = min(counts)
        ratio = max(counts) / smallest if smallest else float("inf")
        if ratio >= IMBALANCE:
            found.append(_warning(
                "imbalance",
                f"the training classes are heavily imbalanced (largest {max(counts)}, smallest "
                f"{smallest} images): accuracy then rewards predicting the large classes.",
                "Read macro-F1 and the per-class recall, not accuracy alone; balance the "
                "training data (undersampling, class weights) or gather more of the small "
                "classes.",
            ))  # fmt: skip
    grouping = data.get("grouping")
    random_hold_out = str(data.get("val_source", "")).startswith("10% of")  # older records
    if (grouping or {}).get("warning") or (grouping is None and random_hold_out):
        found.append(_warning(
            "possible-leakage",
            "the data has no validation split and no subject could be read from the file "
            "names, so the validation images were drawn at random from train: with several "
            "images per person (frames, poses) the same people are in both, and validation "
            "accuracy is inflated.",
            "Re-run with --group-by REGEX (its first capture group names the subject, e.g. "
            "'S(\\d+)_'), or give the data a val split made by subject.",
        ))  # fmt: skip
    return found


def study_warnings(study: dict[str, Any], duplicates: int | None = None) -> list[dict[str, str]]:
    """Every warning for ``study`` (its ``study.json`` content) as {kind, message, advice}.

    ``duplicates``: training images that duplicate a validation or test image, as the dataset
    inspection counted them (None when it did not look)."""
    data = (study["stages"].get("data") or {}).get("result") or {}
    return _data_warnings(study, data, duplicates) + _score_warnings(study, data)


def cross_split_duplicates(study: dict[str, Any]) -> int | None:
    """Train images duplicating val/test images that the study trained on: the data stage's
    count (``duplicates.dropped``, what ``--dedupe`` would drop), 0 once ``--dedupe`` dropped
    them; None when the stage did not count (older records)."""
    data = (study["stages"].get("data") or {}).get("result") or {}
    if "deduped" in data:
        return 0
    value = (data.get("duplicates") or {}).get("dropped")
    return int(value) if isinstance(value, int | float) else None
