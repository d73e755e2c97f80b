"""The FER2013 CSV (``emotion,pixels,Usage``), as Kaggle ships it.

Rows hold 48x48 gray pixels as space-separated integers and an emotion id in FER2013's own order
(angry, disgust, fear, happy, sad, surprise, neutral). ``Usage`` maps Training/PublicTest/
PrivateTest to the train/val/test splits; a CSV without it is one ``train`` split.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ferkit.data.problems import Problem
from ferkit.data.scan import Scan, ScannedSplit, path_kind
from ferkit.data.vocabulary import FER2013_CSV_ORDER
from ferkit.errors import DatasetError

USAGE_TO_SPLIT = {"training": "train", "publictest": "val", "privatetest": "test"}
REQUIRED = ("emotion", "pixels")


def looks_like_fer_csv(path: Path) -> bool:
    """True when the first line of ``path`` names the emotion and pixels columns (never for a
    FIFO or device named ``.csv``: opening one would block)."""
    if path_kind(path)[0] != "file":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
    except OSError:
        return False
    cols = {c.strip().lower() for c in header.split(",")}
    return all(c in cols for c in REQUIRED)


def _parse_pixels(text: str) -> np.ndarray | str:
    """The row's pixels as a square uint8 image, or the reason they are unusable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # older numpy warns instead of raising
            values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError:
        return "pixel values are not all integers"
    tokens = len(text.split())
    if tokens == 0:
        return "no pixel values"
    if len(values) != tokens:
        return "pixel values are not all integers"
    side = math.isqrt(len(values))
    if side * side != len(values):
        return f"{len(values)} pixel values do not form a square image"
    if values.min() < 0 or values.max() > 255:
        return "pixel values outside 0..255"
    return values.astype(np.uint8).reshape(side, side)


def _row_label(text: str) -> int | str:
    try:
        label = int(text.strip())
    except ValueError:
        return f"emotion {text.strip()[:20]!r} is not an integer"
    if not 0 <= label < len(FER2013_CSV_ORDER):
        return f"class id {label} out of range 0..{len(FER2013_CSV_ORDER) - 1}"
    return label


def _columns(header: list[str], path: Path) -> dict[str, int]:
    cols = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise DatasetError(f"{path}: CSV lacks the column(s) {', '.join(missing)}")
    return cols


def _classify_row(
    row: list[str], cols: dict[str, int], ref: str, problems: list[Problem]
) -> tuple[str, int, np.ndarray] | None:
    """(split, label, pixels) of one row, or None with the reason recorded."""
    if len(row) <= max(cols.values()):
        problems.append(Problem("bad-row", ref, f"row has {len(row)} fields, expected {len(cols)}"))
        return None
    split = "train"
    if "usage" in cols:
        usage = row[cols["usage"]].strip()
        split = USAGE_TO_SPLIT.get(usage.lower(), "")
        if not split:
            problems.append(Problem("unknown-usage", ref, f"unknown Usage {usage!r}"))
            return None
    label = _row_label(row[cols["emotion"]])
    if isinstance(label, str):
        kind = "class-out-of-range" if "out of range" in label else "bad-label"
        problems.append(Problem(kind, ref, label, split=split))
        return None
    pixels = _parse_pixels(row[cols["pixels"]])
    if isinstance(pixels, str):
        problems.append(Problem("bad-pixels", ref, pixels, split=split))
        return None
    return split, label, pixels


def scan_fer_csv(path: Path, progress: bool = True) -> Scan:
    """Parse the whole CSV (pixels included: they are in the file, nothing else to decode)."""
    problems: list[Problem] = []
    rows: dict[str, tuple[list[np.ndarray], list[int], list[str]]] = {}
    sides: set[int] = set()
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        cols = _columns(next(reader, []), path)
        for line, row in enumerate(
            tqdm(reader, desc=f"reading {path.name}", unit="row", disable=not progress or None),
            start=2,
        ):
            ref = f"{path}:{line}"
            parsed = _classify_row(row, cols, ref, problems)
            if parsed is None:
                continue
            split, label, pixels = parsed
            if sides and pixels.shape[0] not in sides:
                problems.append(
                    Problem(
                        "bad-pixels",
                        ref,
                        f"image is {pixels.shape[0]}px wide, others are {min(sides)}px",
                        split=split,
                    )
                )
                continue
            sides.add(pixels.shape[0])
            images, labels, refs = rows.setdefault(split, ([], [], []))
            images.append(pixels)
            labels.append(label)
            refs.append(ref)
    splits = {
        name: ScannedSplit(
            name=name,
            pixels=np.stack(imgs)[..., None],
            labels=np.asarray(labels, dtype=np.int64),
            refs=refs,
        )
        for name, (imgs, labels, refs) in rows.items()
    }
    if not splits:
        raise DatasetError(f"{path}: no usable row in the CSV", problems)
    return Scan(
        "fer2013-csv", path.parent, list(FER2013_CSV_ORDER), splits, problems, source=str(path)
    )
