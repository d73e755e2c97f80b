"""Class-folder datasets: ``root/<split>/<class>/*`` or ``root/<class>/*`` (Keras style).

A folder is a class when its name is an emotion (any synonym, any case); other folders are
reported and skipped unless the caller asks to keep them, so a stray ``.ipynb_checkpoints`` or
``misc`` folder never becomes a ninth emotion by accident. Classes are ordered by folder name,
as Keras' ``flow_from_directory`` orders them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ferkit.data.images import is_image_name
from ferkit.data.problems import Problem
from ferkit.data.scan import Entry, Scan, ScannedSplit, list_files, non_image_problem
from ferkit.data.vocabulary import canonical_name

SINGLE_SPLIT = "all"


def subdirs(folder: Path) -> list[Path]:
    return [Path(e.path) for e in list_files(folder) if e.is_dir()]


def _is_class(name: str, keep_unknown: bool) -> bool:
    return canonical_name(name) is not None or (keep_unknown and not name.startswith("."))


def detect(root: Path) -> str | None:
    """``classes`` for root/<class>, ``splits`` for root/<split>/<class>, else None."""
    dirs = subdirs(root)
    if any(canonical_name(d.name) for d in dirs):
        return "classes"
    if any(canonical_name(c.name) for d in dirs for c in subdirs(d)):
        return "splits"
    return None


def _walk_images(folder: Path, split: str, problems: list[Problem]) -> list[str]:
    """Every image below ``folder`` (sub-folders too, sorted); other files are reported."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if is_image_name(name):
                found.append(path)
            else:
                problems.append(non_image_problem(path, split))
    return found


def _report_strays(folder: Path, split: str | None, problems: list[Problem]) -> None:
    """Files lying beside class folders belong to no class."""
    for e in list_files(folder):
        if not e.is_dir():
            problems.append(
                Problem(
                    "outside-class-folder", e.path, "file is not inside a class folder", split=split
                )
            )


def _class_dirs(
    split_dir: Path, split: str, keep_unknown: bool, problems: list[Problem]
) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    for d in subdirs(split_dir):
        if _is_class(d.name, keep_unknown):
            dirs[d.name] = d
        else:
            n = sum(len(files) for _, _, files in os.walk(d))
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


def scan_folders(root: Path, keep_unknown: bool = False) -> Scan:
    """Read a class-folder dataset; the caller has checked :func:`detect` first."""
    problems: list[Problem] = []
    if detect(root) == "classes":
        split_dirs = {SINGLE_SPLIT: root}
    else:
        split_dirs = {}
        for d in subdirs(root):
            if any(_is_class(c.name, keep_unknown) for c in subdirs(d)):
                split_dirs[d.name] = d
            else:
                problems.append(
                    Problem(
                        "unexpected-folder",
                        str(d),
                        "folder holds no class folders and is not a split; skipped",
                    )
                )
        _report_strays(root, None, problems)
    per_split = {s: _class_dirs(d, s, keep_unknown, problems) for s, d in split_dirs.items()}
    classes = sorted({name for dirs in per_split.values() for name in dirs})
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, ScannedSplit] = {}
    for split, dirs in per_split.items():
        entries = [
            Entry(path, index[name])
            for name, folder in dirs.items()
            for path in _walk_images(folder, split, problems)
        ]
        splits[split] = ScannedSplit(name=split, entries=entries)
    return Scan("folders", root, classes, splits, problems)
