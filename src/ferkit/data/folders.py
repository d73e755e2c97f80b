"""Class-folder datasets: ``root/<split>/<class>/*`` or ``root/<class>/*`` (Keras style).

A folder is a class when its name is an emotion (any synonym, any case); other folders are
reported and skipped unless the caller asks to keep them, so a stray ``.ipynb_checkpoints`` or
``misc`` folder never becomes a ninth emotion by accident. Classes are ordered by folder name,
as Keras' ``flow_from_directory`` orders them.

Folders named otherwise (RAF-DB's ``1`` ... ``7``) are read through ``names``, a map from
folder name to emotion given by the caller (:data:`CLASS_NAME_PRESETS` has the common ones);
the classes then carry the emotion names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ferkit.data.images import is_image_name
from ferkit.data.problems import Problem
from ferkit.data.scan import (
    Entry,
    Scan,
    ScannedSplit,
    entry_kind,
    non_image_problem,
    read_folder,
    safe_subdirs,
    walk_files,
)
from ferkit.data.vocabulary import FER2013_CSV_ORDER, canonical_name, require_canonical
from ferkit.errors import DatasetError

SINGLE_SPLIT = "all"
RAFDB_ORDER = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")  # 1 ... 7
# Numbered class folders as common datasets ship them: folder name -> emotion
CLASS_NAME_PRESETS: dict[str, dict[str, str]] = {
    # RAF-DB's published labels (its Kaggle copy has train/1 ... test/7)
    "rafdb": {str(i): name for i, name in enumerate(RAFDB_ORDER, start=1)},
    # FER2013's integer labels (0 angry ... 6 neutral), as folder exports of the CSV name them
    "fer2013": {str(i): name for i, name in enumerate(FER2013_CSV_ORDER)},
}
PRESET_DATASETS = {"rafdb": "RAF-DB", "fer2013": "FER2013"}  # each preset's dataset, for hints


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` (none when it cannot be listed; link loops are not folders)."""
    return safe_subdirs(folder)


def class_names(spec: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """Folder name -> emotion from a preset name (``rafdb``), ``"1=surprise,2=fear"`` text or a
    mapping; every emotion is checked here, so a typo fails before anything is read."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.lower() in CLASS_NAME_PRESETS:
            return dict(CLASS_NAME_PRESETS[spec.lower()])
        pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
        if not pairs or any(len(p) != 2 or not p[0].strip() for p in pairs):
            presets = ", ".join(CLASS_NAME_PRESETS)
            raise DatasetError(
                f"class names {spec!r}: expected a preset ({presets}) or FOLDER=EMOTION pairs "
                "separated by commas, e.g. 1=surprise,2=fear"
            )
        spec = {folder.strip(): emotion.strip() for folder, emotion in pairs}
    names: dict[str, str] = {}
    for folder, emotion in spec.items():
        try:
            names[str(folder)] = require_canonical(emotion)
        except ValueError as exc:
            raise DatasetError(f"class names: folder {folder!r}: {exc}") from None
    return names


def _class_name(folder: str, names: Mapping[str, str] | None) -> str:
    return names.get(folder, folder) if names else folder


def _folder_order(folder: str) -> tuple[int, int, str]:
    """Numbered folders in numeric order, before named ones in name order."""
    return (0, int(folder), folder) if folder.isdigit() else (1, 0, folder)


def _is_class(name: str, keep_unknown: bool, names: Mapping[str, str] | None = None) -> bool:
    if names and name in names:
        return True
    return canonical_name(name) is not None or (keep_unknown and not name.startswith("."))


def detect(root: Path, names: Mapping[str, str] | None = None) -> str | None:
    """``classes`` for root/<class>, ``splits`` for root/<split>/<class>, else None."""
    dirs = subdirs(root)
    if any(_is_class(d.name, False, names) for d in dirs):
        return "classes"
    if any(_is_class(c.name, False, names) for d in dirs for c in subdirs(d)):
        return "splits"
    return None


def _walk_images(folder: Path, split: str, problems: list[Problem]) -> list[str]:
    """Every image below ``folder`` (sub-folders too, sorted); other files are reported."""
    found: list[str] = []
    for path in walk_files(folder, problems, split):  # links followed, loops reported
        if is_image_name(path):
            found.append(path)
        else:
            problems.append(non_image_problem(path, split))
    return found


def _report_strays(folder: Path, split: str | None, problems: list[Problem]) -> None:
    """Files lying beside class folders belong to no class (links that lead nowhere, FIFOs and
    an unreadable folder are reported as what they are)."""
    for e in read_folder(folder, problems, split) or []:
        kind, reason = entry_kind(e)
        if kind == "file":
            reason, kind = "file is not inside a class folder", "outside-class-folder"
        if kind != "dir":
            problems.append(Problem(kind, e.path, reason, split=split))


def _class_dirs(
    split_dir: Path,
    split: str,
    keep_unknown: bool,
    problems: list[Problem],
    names: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    for d in subdirs(split_dir):
        if _is_class(d.name, keep_unknown, names):
            dirs[_class_name(d.name, names)] = d
        else:
            n = sum(len(files) for _, _, files in os.walk(d))  # links not followed: ends
            problems.append(
                Problem(
                    "unknown-class-folder",
                    str(d),
                    f"unknown class folder {d.name!r} (not an emotion name); its {n} files "
                    "are skipped",
                    split=split,
                )
            )
    _report_strays(split_dir, split, problems)
    return dirs


def scan_folders(
    root: Path, keep_unknown: bool = False, names: Mapping[str, str] | None = None
) -> Scan:
    """Read a class-folder dataset; the caller has checked :func:`detect` first. ``names``
    maps folder names to emotions (see :func:`class_names`)."""
    problems: list[Problem] = []
    if detect(root, names) == "classes":
        split_dirs = {SINGLE_SPLIT: root}
    else:
        split_dirs = {}
        for d in subdirs(root):
            if any(_is_class(c.name, keep_unknown, names) for c in subdirs(d)):
                split_dirs[d.name] = d
            elif read_folder(d, problems) is None:
                continue  # reported as unreadable, not as a folder without classes
            else:
                problems.append(
                    Problem(
                        "unexpected-folder",
                        str(d),
                        "folder holds no class folders and is not a split; skipped",
                    )
                )
        _report_strays(root, None, problems)
    per_split = {s: _class_dirs(d, s, keep_unknown, problems, names) for s, d in split_dirs.items()}
    # by folder name, as Keras orders them (mapped folders keep their numbering: 1, 2, ... 10)
    folder_of = {name: d.name for dirs in per_split.values() for name, d in dirs.items()}
    classes = sorted(folder_of, key=lambda c: _folder_order(folder_of[c]))
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, ScannedSplit] = {}
    for split, dirs in per_split.items():
        entries: list[Entry] = []
        unread: list[str] = []
        for name, folder in dirs.items():
            before = len(problems)
            entries += [Entry(p, index[name]) for p in _walk_images(folder, split, problems)]
            if any(
                p.kind == "unreadable-folder" and p.path == str(folder) for p in problems[before:]
            ):
                unread.append(name)  # its folder could not be read: not an empty class
        splits[split] = ScannedSplit(name=split, entries=entries, unreadable=unread)
    return Scan("folders", root, classes, splits, problems)
