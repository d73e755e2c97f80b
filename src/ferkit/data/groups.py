"""Subject-aware hold-out: a validation split that never shares a subject with train.

Posed-expression datasets (CK+, RaFD, JAFFE, KDEF...) have several images of each person, often
near-identical frames of one sequence. A random hold-out then scores the model on the people it
trained on, and validation accuracy reads near 100% while the model has learnt little that
transfers. So wherever ferkit makes its own validation split (``ferkit train``, ``ferkit
study``), it groups the items by subject first and holds out whole subjects:

- ``group_by`` a regular expression: its first capture group (else the whole match), searched in
  each item's path, names the subject (``--group-by 'S(\\d+)_'``); every item must match.
- ``group_by=None``: the subject is read from the file names when they follow one of
  :data:`SUBJECT_PATTERNS` (CK+ ``S010_004_00000017.png`` -> ``S010``, RaFD
  ``Rafd090_01_...`` -> ``01``, ``subject12_...``, JAFFE ``KA.AN1.39.tiff`` -> ``KA``, KDEF
  ``AF01ANS.JPG`` -> ``F01``).
- ``group_by="none"``: no grouping (a random stratified hold-out, as before).

When no group is found, the hold-out is random and the result says so (``warning``): its
validation accuracy may be inflated if the data has several images of one person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.data.balance import stratified_split
from ferkit.errors import FerkitError

if TYPE_CHECKING:
    from ferkit.data.dataset import Split

HOLD_OUT = 0.1  # the share of train held out when a dataset has no validation split
NO_GROUPING = "none"
# name -> pattern over a file's name (no folders); the first capture group is the subject
SUBJECT_PATTERNS: dict[str, str] = {
    "CK+ (S010_004_00000017)": r"^(S\d{2,4})_\d+_\d+",
    "RaFD (Rafd090_01_...)": r"^Rafd\d{3}_(\d+)_",
    "subjectN (subject12_...)": r"(?i)^(?:subject|subj|sub|person|participant)[_-]?(\d+)",
    "JAFFE (KA.AN1.39)": r"^([A-Z]{2})\.[A-Z]{2}\d\.\d+",
    "KDEF (AF01ANS)": r"^[AB]([FM]\d{2})[A-Z]{2}[A-Z]{1,2}[._]",
}
MIN_MATCHED = 0.9  # an automatic pattern must name the subject of this share of the items
NO_GROUP_WARNING = (
    "no validation split and no subject found in the file names: the validation images were "
    "drawn at random from train, so if the data has several images of one person (frames of a "
    "sequence, poses) validation accuracy is inflated. Name the subject with --group-by REGEX "
    "(first capture group), or give the data its own val split made by subject."
)


def _file_name(ref: str) -> str:
    """The file name of an item reference (a path, or ``path#row`` / ``path#box``)."""
    return PurePath(ref.split("#", 1)[0]).name


def _subject(match: re.Match[str]) -> str:
    return match.group(1) if match.re.groups else match.group(0)


def groups_from_regex(refs: Sequence[str], pattern: str) -> np.ndarray:
    """The subject of each item: the first capture group of ``pattern`` searched in its path.

    Every item must match: an item left out of the grouping could sit in train and val at once.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise FerkitError(f"--group-by {pattern!r}: not a regular expression ({exc})") from None
    subjects, missed = [], []
    for ref in refs:
        match = regex.search(ref)
        if match is None or not _subject(match):
            missed.append(ref)
        else:
            subjects.append(_subject(match))
    if missed:
        raise FerkitError(
            f"--group-by {pattern!r}: {len(missed)} of {len(refs)} items name no subject "
            f"(first: {missed[0]}); every item needs one, or a subject could be in train and val"
        )
    return np.asarray(subjects, dtype=object)


def detect_groups(refs: Sequence[str]) -> tuple[str, str, np.ndarray] | None:
    """(pattern name, pattern, subject per item) of the first of :data:`SUBJECT_PATTERNS` that
    names the subject of most file names and finds several subjects with several items each;
    None when none does. Items a pattern misses become their own group (never shared)."""
    names = [_file_name(r) for r in refs]
    for label, pattern in SUBJECT_PATTERNS.items():
        regex = re.compile(pattern)
        matches = [regex.search(n) for n in names]
        found = [m for m in matches if m is not None]
        if len(found) < MIN_MATCHED * len(names):
            continue
        subjects = [_subject(m) if m else f"\0{ref}" for m, ref in zip(matches, refs, strict=True)]
        distinct = len(set(subjects))
        if 2 <= distinct < len(names):
            return label, pattern, np.asarray(subjects, dtype=object)
    return None


def group_split(
    labels: np.ndarray, groups: np.ndarray, test_size: float = HOLD_OUT, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices), no group on both sides, class proportions kept as far
    as whole groups allow (scikit-learn's ``StratifiedGroupKFold``: one fold of ~1/test_size
    is held out; with fewer groups than folds, one group per fold)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold  # sklearn: ~1 s to import

    _, codes = np.unique(groups, return_inverse=True)
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        raise FerkitError("cannot hold out by subject: every item has the same subject")
    folds = max(2, min(round(1 / test_size), n_groups))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only k members": expected
        warnings.simplefilter("ignore", UserWarning)
        keep, held = next(splitter.split(np.zeros(len(labels)), labels, codes))
    return np.asarray(keep), np.asarray(held)


def subjects(
    refs: Sequence[str], group_by: str | None = None
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(the subject of each item, or None when there is none to use; where it came from):
    ``group_by`` as in the module docstring."""
    if group_by == NO_GROUPING:
        return None, {"source": "grouping turned off (--group-by none)"}
    if group_by:
        return groups_from_regex(refs, group_by), {"source": "--group-by", "pattern": group_by}
    if detected := detect_groups(refs):
        label, pattern, groups = detected
        return groups, {"source": f"detected in the file names: {label}", "pattern": pattern}
    return None, {"source": "no subject pattern found in the file names"}


def hold_out(
    train: Split, seed: int, group_by: str | None = None, test_size: float = HOLD_OUT
) -> tuple[Split, Split, dict[str, Any]]:
    """(train, held-out validation, how it was drawn) for a dataset without a validation split.

    The record says ``method`` (``group`` or ``random``), ``source`` (``--group-by``, the
    detected pattern, or why none), the subject counts, and ``warning`` when a random hold-out
    may leak subjects; see the module docstring.
    """
    groups, found = subjects(train.refs, group_by)
    info: dict[str, Any] = {"share": test_size, "group_by": group_by, **found}
    if groups is None:
        keep, held = stratified_split(train.labels, test_size, seed=seed)
        info["method"] = "random"
        if group_by != NO_GROUPING:
            info["warning"] = NO_GROUP_WARNING
    else:
        keep, held = group_split(train.labels, groups, test_size, seed)
        info.update(
            method="group",
            subjects=len(set(groups.tolist())),
            train_subjects=len(set(groups[keep].tolist())),
            val_subjects=len(set(groups[held].tolist())),
        )
    return train.subset(keep), train.subset(held), info


def describe(info: dict[str, Any], train_name: str) -> str:
    """One line for records and reports: how the validation split was drawn."""
    share = f"{info.get('share', HOLD_OUT):.0%} of {train_name}"
    if info.get("method") == "group":
        return (
            f"~{share} held out by subject ({info['val_subjects']} of {info['subjects']} subjects; "
            f"{info['source']})"
        )
    return f"{share} at random (no validation split; {info['source']})"
