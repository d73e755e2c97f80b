"""What a layout reader returns before any pixel is decoded: samples, classes, problems.

Readers only walk the tree and parse labels; decoding (slow, cached, parallel) happens once,
in one place, for every file-based layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.data.images import Box, is_image_name
from ferkit.data.problems import Problem


@dataclass(frozen=True)
class Entry:
    """One sample to decode: an image file and its label index in the dataset's class list;
    ``box`` crops one face out of it (a YOLO detection label, ``part`` its line in the label
    file), None takes the whole image."""

    path: str
    label: int
    box: Box | None = None
    part: int | None = None

    @property
    def ref(self) -> str:
        """Where the sample came from: the file, or ``file#boxN`` for the face on line N."""
        return self.path if self.part is None else f"{self.path}#box{self.part}"


@dataclass
class ScannedSplit:
    """A split found on disk: files to decode (file layouts) or decoded pixels (CSV)."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    pixels: np.ndarray | None = None
    labels: np.ndarray | None = None
    refs: list[str] | None = None
    role: str | None = None


@dataclass
class Scan:
    """The result of reading a layout: its classes in dataset order, splits and problems."""

    layout: str
    root: Path
    classes: list[str]
    splits: dict[str, ScannedSplit]
    problems: list[Problem] = field(default_factory=list)
    source: str | None = None


def list_files(folder: Path) -> list[os.DirEntry[str]]:
    """Directory entries sorted by name (the seed sorts too, so order is reproducible)."""
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def non_image_problem(path: str, split: str | None) -> Problem:
    """The problem recorded for a file that sits among images but is not one."""
    suffix = Path(path).suffix or "(none)"
    return Problem("not-an-image", path, f"not an image file (extension {suffix})", split=split)


def partition_files(
    folder: Path, split: str | None, problems: list[Problem]
) -> tuple[list[str], list[str]]:
    """Split a folder's entries into image files and subfolders; record everything else."""
    images: list[str] = []
    dirs: list[str] = []
    for entry in list_files(folder):
        if entry.is_dir():
            dirs.append(entry.path)
        elif is_image_name(entry.name):
            images.append(entry.path)
        else:
            problems.append(non_image_problem(entry.path, split))
    return images, dirs
