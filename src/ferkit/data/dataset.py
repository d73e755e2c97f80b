"""``load_dataset``: detect the layout, read labels, decode pixels, report every skipped item.

Every later stage (SVMs, CNNs, evaluation, the study) reads data through this function, so it
returns the good samples as plain uint8 arrays plus the full list of problems, and never stops
silently: ``strict=True`` turns any problem into an error instead.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image

from ferkit.data import folders
from ferkit.data.decode import cache_key, decode_cached, default_cache_dir
from ferkit.data.fer_csv import looks_like_fer_csv, scan_fer_csv
from ferkit.data.images import DEFAULT_MAX_PIXELS, Color, crop_box, peek_image
from ferkit.data.problems import Problem
from ferkit.data.scan import Scan, ScannedSplit, path_kind
from ferkit.data.vocabulary import canonical_name, require_canonical
from ferkit.data.yolo import YAML_NAMES, find_yaml, scan_yolo
from ferkit.errors import DatasetError, OptionError, SplitNotFoundError, did_you_mean

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "publictest", "dev"),
    "test": ("test", "testing", "privatetest"),
}
_GRAY_MODES = {"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass
class Split:
    """One split's samples: ``images`` (N, H, W, C) uint8 and ``labels`` (N,) int64.

    ``labels`` index ``classes`` (the dataset's own names and order); ``canonical`` gives the
    shared emotion name of each class; ``refs`` says where each sample came from.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    refs: list[str]
    classes: list[str]
    canonical: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, int]:
        """Samples per class, in class order (zero for classes without samples)."""
        bins = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, bins, strict=True)}

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        """The samples at ``indices`` (same classes)."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self, images=self.images[idx], labels=self.labels[idx], refs=[self.refs[i] for i in idx]
        )

    def balanced(self, margin: int, seed: int = 0) -> Split:
        """The notebook's undersampling (every class capped at largest - ``margin``).

        A split whose largest class is not above the margin (or ``margin <= 0``) stays whole,
        so small class subsets and toy sets train on everything they have.
        """
        from ferkit.data.balance import undersample

        if margin <= 0 or len(self) == 0 or margin >= max(self.counts().values()):
            return self
        return self.subset(undersample(self.labels, margin=margin, seed=seed))

    def select_classes(self, names: Sequence[str]) -> Split:
        """Keep the samples of ``names`` (any synonym) and relabel them 0..k-1 in that order.

        ``select_classes(["happiness", "sadness"])`` gives the notebook's happy-vs-sad split.
        """
        wanted = [self._class_index(n) for n in names]
        if len(set(wanted)) != len(wanted):
            raise OptionError(f"classes {list(names)} name the same class twice")
        remap = np.full(len(self.classes), -1, dtype=np.int64)
        remap[wanted] = np.arange(len(wanted))
        keep = np.flatnonzero(remap[self.labels] >= 0)
        sub = self.subset(keep)
        return replace(
            sub,
            labels=remap[sub.labels],
            classes=[self.classes[i] for i in wanted],
            canonical=[self.canonical[i] for i in wanted],
        )

    def _class_index(self, name: str) -> int:
        if name in self.classes:
            return self.classes.index(name)
        canon = require_canonical(name)
        if canon in self.canonical:
            return self.canonical.index(canon)
        raise OptionError(
            f"class {name!r} ({canon}) is not in this dataset; it has {', '.join(self.classes)}"
            + did_you_mean(name, self.classes)
        )


@dataclass
class Dataset:
    """A loaded dataset: its splits, classes (own order), and every problem met on the way."""

    root: Path
    layout: str
    classes: list[str]
    canonical: list[str]
    splits: dict[str, Split]
    image_size: int
    color: Color
    problems: list[Problem] = field(default_factory=list)
    cached: dict[str, bool] = field(default_factory=dict)
    source: str | None = None
    # per split as loaded: a digest of its files (path, size, mtime) and the decode options,
    # which caches of data derived from its pixels (duplicate hashes) are keyed by
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "skipped"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def split(self, name: str) -> Split:
        """A split by name or alias (``val`` finds ``valid``, ``train`` finds ``training``)."""
        return self.splits[resolve_split_name(name, self.splits)]

    def usable_split(self, name: str) -> Split:
        """``split(name)`` for work that needs samples: an empty split is a DatasetError that
        names the dataset and how many of the split's items were skipped, instead of a
        shape error deep inside a solver."""
        part = self.split(name)
        if len(part) == 0:
            skipped = [p for p in self.problems if p.split == part.name and p.severity == "skipped"]
            raise DatasetError(
                f"{self.root}: split {part.name!r} has no usable image "
                f"({len(skipped)} item(s) skipped)",
                skipped,
            )
        return part


def resolve_split_name(name: str, available: Iterable[str]) -> str:
    """The split in ``available`` that ``name`` means; else an error listing what exists."""
    names = list(available)
    if name in names:
        return name
    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    for aliases in SPLIT_ALIASES.values():
        if name.lower() in aliases:
            for alias in aliases:
                if alias in lowered:
                    return lowered[alias]
    if name.lower() in SPLIT_ALIASES["train"] and names == [folders.SINGLE_SPLIT]:
        return folders.SINGLE_SPLIT  # unsplit class folders: all of it is training data
    raise SplitNotFoundError(
        f"no split {name!r}; this dataset has {', '.join(names) or 'no splits'}"
        + did_you_mean(name, names)
    )


def _scan(
    path: Path, keep_unknown: bool, progress: bool, names: dict[str, str] | None = None
) -> Scan:
    """Pick the layout reader for ``path`` (a folder, a data.yaml, or a CSV file)."""
    scan = _scan_layout(path, keep_unknown, progress, names)
    if names is not None and scan.layout != "folders":
        raise DatasetError(
            f"{path}: class names map class folders to emotions; this {scan.layout} dataset "
            "names its classes itself"
        )
    return scan


def _scan_layout(
    path: Path, keep_unknown: bool, progress: bool, names: dict[str, str] | None
) -> Scan:
    if not path.exists():
        raise DatasetError(f"{path}: does not exist")
    if path.is_file():
        if path.name in YAML_NAMES or path.suffix in (".yaml", ".yml"):
            return scan_yolo(path)
        if path.suffix.lower() == ".csv":
            if not looks_like_fer_csv(path):
                raise DatasetError(f"{path}: CSV header lacks the 'emotion' and 'pixels' columns")
            return scan_fer_csv(path, progress)
        raise DatasetError(f"{path}: not a dataset (expected a folder, a data.yaml or a CSV)")
    if not path.is_dir():  # a FIFO, socket or device: never opened (a FIFO would block)
        raise DatasetError(f"{path}: {path_kind(path)[1]}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetError(f"{path}: folder is not readable")
    if yaml_path := find_yaml(path):
        return scan_yolo(yaml_path)
    if folders.detect(path, names):
        return folders.scan_folders(path, keep_unknown, names)
    csvs = [p for p in sorted(path.glob("*.csv")) if looks_like_fer_csv(p)]
    if len(csvs) == 1:
        return scan_fer_csv(csvs[0], progress)
    if any((path / d / "images").is_dir() for d in ("train", "valid", "val", "test")):
        raise DatasetError(
            f"{path}: looks like a YOLO dataset but has no data.yaml naming its classes"
        )
    raise DatasetError(
        f"{path}: cannot detect the dataset layout. Supported: a YOLO folder with data.yaml "
        "(<split>/images + <split>/labels), class folders (<split>/<emotion>/* or <emotion>/*) "
        f"named by emotion, or the FER2013 CSV (emotion,pixels,Usage).{_folders_hint(path)}"
    )


def _folders_hint(path: Path) -> str:
    """What was found instead, so the user sees why: folder names that are not emotions (and,
    for numbered ones, RAF-DB's numbering, the common dataset shipped that way)."""
    dirs = [d for d in folders.subdirs(path) if not d.name.startswith(".")]
    inner = [c.name for d in dirs for c in folders.subdirs(d) if not c.name.startswith(".")]
    names = sorted({d.name for d in dirs} | set(inner))
    if not names:
        return ""
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    hint = (
        f" Folders found: {shown}; none is an emotion name: rename them to emotions, or map "
        "them to emotions with class names (--class-names FOLDER=EMOTION,...)."
    )
    classes = set(inner or [d.name for d in dirs])
    for preset, numbering in folders.CLASS_NAME_PRESETS.items():
        if classes <= set(numbering):
            mapping = ", ".join(f"{k} {v}" for k, v in numbering.items())
            hint += (
                f" If these are {folders.PRESET_DATASETS[preset]}'s numbered folders ({mapping}), "
                f"pass class names {preset!r} (--class-names {preset})."
            )
    return hint


def _infer_format(scan: Scan, image_size: int | None, color: Color | None) -> tuple[int, Color]:
    """Defaults from the data itself: the most common size and gray when every image is gray.

    Faces cropped out of photos (YOLO boxes) have no common size: there it is the median side
    of the crops, not the photos' size (a 640 px photo of a 90 px face is a 90 px sample)."""
    if image_size is not None and color is not None:
        return image_size, color
    headers, crops = [], []
    for split in scan.splits.values():
        if split.pixels is not None:
            headers.append((split.pixels.shape[2], split.pixels.shape[1], "L"))
        for e in split.entries[:48]:
            if (h := peek_image(e.path)) is not None:
                headers.append(h)
                if e.box is not None:
                    left, top, right, bottom = crop_box(h[0], h[1], e.box)
                    crops.append(max(right - left, bottom - top))
    if not headers:
        return image_size or 96, color or "rgb"
    if crops:
        size = image_size or int(np.median(crops))
    else:
        size = image_size or Counter(max(w, h) for w, h, _ in headers).most_common(1)[0][0]
    inferred: Color = "gray" if all(m in _GRAY_MODES for _, _, m in headers) else "rgb"
    return size, color or inferred


def _convert_pixels(pixels: np.ndarray, size: int, color: Color) -> np.ndarray:
    """Resize and recolour in-memory gray pixels (the CSV layout) like decoded files."""
    if pixels.shape[1] != size:
        pixels = np.stack(
            [
                np.asarray(
                    Image.fromarray(p[..., 0]).resize((size, size), Image.Resampling.BILINEAR)
                )
                for p in pixels
            ]
        )[..., None]
    return np.repeat(pixels, 3, axis=3) if color == "rgb" else pixels


class _DecodeOptions(TypedDict):
    """What ``load_dataset`` passes on to :func:`decode_cached` for every split, typed so the
    keyword unpacking is checked."""

    max_pixels: int
    cache_dir: Path | None
    workers: int | None
    progress: bool


def _materialise(
    scanned: ScannedSplit,
    size: int,
    color: Color,
    options: _DecodeOptions,
    problems: list[Problem],
    source: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], bool, str]:
    """Pixels, labels, refs of one split, decoding (or reading the cache) when needed, whether
    they came from the cache, and the split's key (:attr:`Dataset.keys`)."""
    max_pixels = int(options["max_pixels"])
    if scanned.pixels is not None and scanned.labels is not None and scanned.refs is not None:
        key = cache_key([source or "", f"split={scanned.name}"], size, color, max_pixels)
        pixels = _convert_pixels(scanned.pixels, size, color)
        return pixels, scanned.labels, scanned.refs, False, key
    entries = scanned.entries
    paths = [e.path for e in entries]
    boxes = [e.box for e in entries]
    crops = boxes if any(b is not None for b in boxes) else None
    key = cache_key(paths, size, color, max_pixels, crops)
    decoded, hit = decode_cached(
        paths, size, color, desc=f"decoding {scanned.name}", boxes=crops, key=key, **options
    )
    for idx, kind, reason in decoded.failed:
        problems.append(Problem(kind, entries[idx].ref, reason, split=scanned.name))
    labels = np.fromiter(
        (entries[i].label for i in decoded.ok), dtype=np.int64, count=len(decoded.ok)
    )
    return decoded.images, labels, [entries[i].ref for i in decoded.ok], hit, key


def _empty_class_warnings(split: Split, unreadable: Sequence[str] = ()) -> list[Problem]:
    """A warning per class without samples; a class whose folder could not be read is already
    reported as such (``unreadable-folder``), not as empty."""
    return [
        Problem(
            "empty-class",
            f"{split.name}/{name}",
            f"class {name!r} has no usable samples in split {split.name!r}",
            severity="warning",
            split=split.name,
        )
        for name, n in split.counts().items()
        if n == 0 and name not in unreadable
    ]


def _root(path: str | os.PathLike[str]) -> Path:
    """The dataset path made absolute, links resolved; a link loop is a DatasetError (Python
    3.11's ``resolve`` raises RuntimeError on one, later versions OSError)."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as exc:
        raise DatasetError(f"{path}: cannot resolve the path: {exc}") from None


def peek_format(
    path: str | os.PathLike[str], class_names: str | Mapping[str, str] | None = None
) -> tuple[int, Color]:
    """The image size and colour :func:`load_dataset` would pick for ``path``, from file headers
    only: a caller can choose another size before paying for decoding every image."""
    root = _root(path)
    names = folders.class_names(class_names)
    return _infer_format(_scan(root, False, progress=False, names=names), None, None)


def load_dataset(
    path: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    color: Color | None = None,
    splits: Sequence[str] | None = None,
    strict: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    keep_unknown_classes: bool = False,
    class_names: str | Mapping[str, str] | None = None,
) -> Dataset:
    """Load a facial-expression dataset from a YOLO folder, class folders or the FER2013 CSV.

    Images are decoded to ``image_size`` x ``image_size`` (default: the data's most common size;
    with YOLO face boxes, the crops' median side) in ``color`` ``"rgb"`` or ``"gray"`` (default:
    gray when every image is gray). Decoded pixels are cached in ``cache_dir`` (default
    :func:`default_cache_dir`). Items that cannot be used are skipped and listed in
    ``Dataset.problems`` with their file and reason; with ``strict=True`` any problem raises
    :class:`DatasetError` instead. ``class_names`` reads class folders not named by emotion:
    a preset (``"rafdb"``: RAF-DB's ``1`` ... ``7``; ``"fer2013"``: ``0`` ... ``6``), or
    ``"1=surprise,2=fear"``, or a mapping; the classes then carry the emotion names.
    """
    root = _root(path)
    scan = _scan(root, keep_unknown_classes, progress, folders.class_names(class_names))
    if splits is not None:
        wanted = [resolve_split_name(s, scan.splits) for s in splits]
        scan.splits = {s: scan.splits[s] for s in wanted}
    size, colour = _infer_format(scan, image_size, color)
    canonical = [canonical_name(c) or c.strip().lower() for c in scan.classes]
    problems = list(scan.problems)
    options: _DecodeOptions = {
        "max_pixels": max_pixels,
        "cache_dir": (Path(cache_dir) if cache_dir else default_cache_dir()) if cache else None,
        "workers": workers,
        "progress": progress,
    }
    loaded: dict[str, Split] = {}
    cached: dict[str, bool] = {}
    keys: dict[str, str] = {}
    for name, scanned in scan.splits.items():
        images, labels, refs, hit, keys[name] = _materialise(
            scanned, size, colour, options, problems, scan.source
        )
        loaded[name] = Split(name, images, labels, refs, list(scan.classes), canonical)
        cached[name] = hit
        problems += _empty_class_warnings(loaded[name], scanned.unreadable)
    if strict and problems:
        raise DatasetError(f"{root}: {len(problems)} problem(s) found (strict mode)", problems)
    return Dataset(
        root,
        scan.layout,
        list(scan.classes),
        canonical,
        loaded,
        size,
        colour,
        problems,
        cached,
        scan.source,
        keys,
    )
