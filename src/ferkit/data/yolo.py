"""YOLO-format datasets: ``data.yaml`` plus ``<split>/images`` and ``<split>/labels``.

Real ``data.yaml`` files are messy (AffectNet's names a ``test`` split that is not shipped and an
unrelated ``data:`` path), so unknown keys are ignored and missing splits become warnings.
Each line of the label file with an image's stem is one face: its class id, and its box
(``cx cy w h``, or a polygon) is cropped out, squared; a box covering the image (AffectNet's)
or no box at all means the whole image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ferkit.data.images import Box, is_image_name
from ferkit.data.problems import Problem
from ferkit.data.scan import (
    Entry,
    Scan,
    ScannedSplit,
    entry_kind,
    non_image_problem,
    path_kind,
    read_folder,
)
from ferkit.errors import DatasetError

SPLIT_KEYS = ("train", "val", "test")
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")
_DEFAULT_FOLDERS = (("train", "train"), ("val", "valid"), ("val", "val"), ("test", "test"))
FULL_IMAGE = 0.98  # a box at least this wide and tall is the whole image: nothing is cropped
MAX_LABEL_BYTES = 1 << 20  # a label file is a few lines; a larger one is refused, not cut
MAX_FACES_PER_IMAGE = 64  # more labelled faces than this in one image: the file is refused
MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few hundred bytes
MAX_YAML_DEPTH = 32  # nesting of lists/mappings in data.yaml


class _DataYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``: a billion-laughs file expands a few
    lines into billions of items) and nesting deeper than MAX_YAML_DEPTH (a 5000-deep
    ``[[[...]]]`` would exhaust Python's recursion limit); no data.yaml needs either."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted in data.yaml", mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def find_yaml(root: Path) -> Path | None:
    """The dataset's yaml file in ``root``, if any."""
    for name in YAML_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    """The yaml's mapping; a file that is too large, not regular, uses aliases or nests too
    deeply is a DatasetError naming it and the reason, never a MemoryError or RecursionError."""
    kind, reason = path_kind(path)
    if kind != "file":
        raise DatasetError(f"{path}: unreadable data.yaml: {reason}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise DatasetError(
                f"{path}: unreadable data.yaml: larger than {MAX_YAML_BYTES:,} bytes "
                "(a data.yaml names a few folders and classes)"
            )
        doc = yaml.load(raw.decode("utf-8"), Loader=_DataYamlLoader)  # a SafeLoader
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable data.yaml: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(exc, "problem", None)
        detail = f": {why}" if why else ""
        raise DatasetError(f"{path}: unreadable data.yaml, invalid YAML{at}{detail}") from exc
    except (RecursionError, MemoryError) as exc:
        raise DatasetError(f"{path}: unreadable data.yaml: too deeply nested or too large") from exc
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: unreadable data.yaml, expected a mapping of keys")
    return doc


def _class_names(doc: dict[str, Any], path: Path, problems: list[Problem]) -> list[str]:
    """``names`` as a list or an {id: name} dict, checked against ``nc`` when present."""
    names = doc.get("names")
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: 'names' keys must be integer class ids") from exc
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetError(
                f"{path}: 'names' ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}"
            )
        names = [by_id[i] for i in range(len(by_id))]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: data.yaml has no 'names' list of classes")
    if not all(isinstance(n, str | int | float) and not isinstance(n, bool) for n in names):
        raise DatasetError(f"{path}: 'names' must list class names (text), not nested values")
    names = [str(n) for n in names]
    nc = doc.get("nc")
    if nc is not None and not isinstance(nc, int):
        nc = f"{type(nc).__name__} (not a number)"
    if nc is not None and nc != len(names):
        problems.append(
            Problem(
                "names-count-mismatch",
                str(path),
                f"nc is {nc} but {len(names)} names are listed; using the names",
                severity="warning",
            )
        )
    return names


def _join(base: Path, value: str) -> Path:
    """``base / value`` with ``..`` folded but symbolic links kept: splits are named by their
    folder (``_split_name``), so a ``test`` folder that links to data elsewhere must stay
    ``test``. An absolute ``value`` stays as it is."""
    return Path(os.path.normpath(base / value))


def _base_dir(doc: dict[str, Any], yaml_path: Path, problems: list[Problem]) -> Path:
    """The folder split paths are relative to: ``path:`` when it exists (relative to the yaml),
    else the yaml's folder. Exports often keep the author's ``path:`` (``/content/datasets/x``
    on Colab), which is meaningless once the folder is copied elsewhere: warned, not fatal."""
    here = yaml_path.parent
    value = doc.get("path")
    if not isinstance(value, str) or not value.strip():
        return here
    base = _join(here, value)
    if base.is_dir():
        return base
    problems.append(
        Problem(
            "missing-base-path",
            str(yaml_path),
            f"path: {value!r} does not exist here; splits are read relative to {here}",
            severity="warning",
        )
    )
    return here


def _resolve_split(
    key: str, value: object, base: Path, yaml_path: Path, problems: list[Problem]
) -> Path | None:
    """The images folder of one listed split, or None (with a warning) when it is not there.

    ``../train/images`` is retried as ``train/images``, as Ultralytics does: Roboflow exports
    write their splits so, relative to a folder above the dataset's."""
    if not isinstance(value, str):
        problems.append(
            Problem(
                "bad-split-entry",
                str(yaml_path),
                f"split '{key}' is not a path: {value!r}",
                severity="warning",
                split=key,
            )
        )
        return None
    images = _join(base, value)
    if not images.exists() and value.startswith("../"):
        images = _join(base, value[3:])
    if images.is_dir() and not (images / "images").is_dir():
        return images
    if (images / "images").is_dir():  # some exports name the split folder, not its images/
        return images / "images"
    problems.append(
        Problem(
            "missing-split",
            str(images),
            f"split '{key}' is listed in {yaml_path.name} but its folder is missing",
            severity="warning",
            split=key,
        )
    )
    return None


def _split_dirs(doc: dict[str, Any], yaml_path: Path, problems: list[Problem]) -> dict[str, Path]:
    """Split key -> images folder, resolved relative to the yaml."""
    found: dict[str, Path] = {}
    base = _base_dir(doc, yaml_path, problems)
    for key in SPLIT_KEYS:
        if doc.get(key) is not None:
            folder = _resolve_split(key, doc[key], base, yaml_path, problems)
            if folder is not None:
                found[key] = folder
    if not any(k in doc for k in SPLIT_KEYS):
        for key, name in _DEFAULT_FOLDERS:
            if key not in found and (base / name / "images").is_dir():
                found[key] = base / name / "images"
    return found


def _split_name(images_dir: Path) -> str:
    """Splits are named by their folder on disk (``valid``), which is what users see."""
    return images_dir.parent.name if images_dir.name == "images" else images_dir.name


def _class_id(token: str, n_classes: int) -> tuple[int | None, str, str]:
    """(class id, problem kind, reason) of a label line's first token."""
    try:
        value = float(token)
    except ValueError:
        return None, "bad-label", f"label does not start with a class id (found {token[:20]!r})"
    if value != int(value):
        return None, "bad-label", f"class id {token!r} is not an integer"
    cid = int(value)
    if not 0 <= cid < n_classes:
        return None, "class-out-of-range", f"class id {cid} out of range 0..{n_classes - 1}"
    return cid, "", ""


def _box(tokens: list[str]) -> tuple[Box | None, str]:
    """The face box of a label line's numbers after the class id: ``cx cy w h`` (detection)
    or ``x1 y1 x2 y2 ...`` (a segmentation polygon, boxed). None means the whole image: no
    numbers (a classification label) or a box covering it (AffectNet's ``0.499 0.499 0.999
    0.999``, so such datasets decode exactly as before). The string is why a box is unusable."""
    if not tokens:
        return None, ""
    try:
        nums = [float(t) for t in tokens]
    except ValueError:
        return None, f"box is not numeric: {' '.join(tokens)[:40]!r}"
    if len(nums) == 4:
        cx, cy, w, h = nums
    elif len(nums) >= 6 and len(nums) % 2 == 0:
        xs, ys = nums[0::2], nums[1::2]
        cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        w, h = max(xs) - min(xs), max(ys) - min(ys)
    else:
        return None, f"expected 4 box numbers (cx cy w h) or a polygon, got {len(nums)}"
    if not (0 < w <= 1.0001 and 0 < h <= 1.0001 and 0 <= cx <= 1 and 0 <= cy <= 1):
        return None, f"box {cx:g} {cy:g} {w:g} {h:g} is not inside the image (fractions 0..1)"
    if w >= FULL_IMAGE and h >= FULL_IMAGE:
        return None, ""
    return (cx, cy, min(w, 1.0), min(h, 1.0)), ""


def read_labels(
    path: str, n_classes: int
) -> tuple[list[tuple[int, Box | None, int]], list[tuple[str, str]]]:
    """The faces of one label file, one per line: (class id, box or None, line number), and
    (problem kind, reason) for each line that cannot be used. A file with one face gives one
    sample, with several (a photo of a group) one sample per face."""
    kind, reason = path_kind(path)
    if kind != "file":
        return [], [(kind, reason)]
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_LABEL_BYTES + 1)
    except OSError as exc:
        return [], [("unreadable-label", f"cannot read label file: {exc.strerror or exc}")]
    if len(raw) > MAX_LABEL_BYTES:
        reason = f"label file larger than {MAX_LABEL_BYTES:,} bytes; image skipped"
        return [], [("label-too-large", reason)]
    text = raw.decode("utf-8", errors="replace")
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return [], [("empty-label", "empty label file")]
    if len(lines) > MAX_FACES_PER_IMAGE:
        reason = (
            f"{len(lines):,} labelled faces, more than the limit of {MAX_FACES_PER_IMAGE} per "
            "image; image skipped"
        )
        return [], [("too-many-faces", reason)]
    faces: list[tuple[int, Box | None, int]] = []
    problems: list[tuple[str, str]] = []
    where = (lambda n: f"line {n}: ") if len(lines) > 1 else (lambda n: "")
    for n, tokens in lines:
        cid, kind, reason = _class_id(tokens[0], n_classes)
        if cid is None:
            problems.append((kind, where(n) + reason))
            continue
        box, why = _box(tokens[1:])
        if why:
            problems.append(("bad-box", where(n) + why))
            continue
        if box is None and any(f[1] is None for f in faces):
            problems.append(("duplicate-label", where(n) + "the whole image is labelled again"))
            continue
        faces.append((cid, box, n))
    return faces, problems


def _label_files(labels_dir: Path, split: str, problems: list[Problem]) -> dict[str, str]:
    """Stem -> label path; anything else in labels/ is reported."""
    labels: dict[str, str] = {}
    if not labels_dir.is_dir():
        problems.append(
            Problem(
                "missing-labels-folder",
                str(labels_dir),
                "labels folder is missing, so no image of this split has a label",
                split=split,
            )
        )
        return labels
    for e in read_folder(labels_dir, problems, split) or []:
        kind, reason = entry_kind(e)
        if kind not in ("file", "dir"):
            problems.append(Problem(kind, e.path, reason, split=split))
        elif kind == "file" and e.name.endswith(".txt"):
            if e.name != "classes.txt":
                labels[e.name[:-4]] = e.path
        elif kind == "dir":
            problems.append(
                Problem(
                    "unexpected-folder", e.path, "folder inside labels/ is ignored", split=split
                )
            )
        else:
            problems.append(Problem("not-a-label", e.path, "not a .txt label file", split=split))
    return labels


def _scan_split(
    images_dir: Path, split: str, n_classes: int, problems: list[Problem]
) -> list[Entry]:
    labels_dir = images_dir.parent / "labels"
    labels = _label_files(labels_dir, split, problems)
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for e in read_folder(images_dir, problems, split) or []:
        kind, reason = entry_kind(e)
        if kind not in ("file", "dir"):
            problems.append(Problem(kind, e.path, reason, split=split))
            continue
        if kind == "dir":
            problems.append(
                Problem(
                    "unexpected-folder", e.path, "folder inside images/ is ignored", split=split
                )
            )
            continue
        if not is_image_name(e.name):
            problems.append(non_image_problem(e.path, split))
            continue
        stem = e.name.rsplit(".", 1)[0]
        if stem in seen:
            problems.append(
                Problem(
                    "duplicate-stem",
                    e.path,
                    f"another image has the same stem ({Path(seen[stem]).name}) "
                    "and would share its label file",
                    split=split,
                )
            )
            continue
        seen[stem] = e.path
        label_path = labels.get(stem)
        if label_path is None:
            problems.append(
                Problem(
                    "missing-label",
                    e.path,
                    f"image has no label file ({stem}.txt not in {labels_dir})",
                    split=split,
                )
            )
            continue
        faces, bad = read_labels(label_path, n_classes)
        problems += [Problem(kind, label_path, reason, split=split) for kind, reason in bad]
        for cid, box, line in faces:
            entries.append(Entry(e.path, cid, box, None if box is None else line))
    for stem, label_path in labels.items():
        if stem not in seen:
            problems.append(
                Problem(
                    "orphan-label",
                    label_path,
                    f"label file has no image ({stem}.* not in {images_dir})",
                    split=split,
                )
            )
    return entries


def scan_yolo(yaml_path: Path) -> Scan:
    """Read a YOLO dataset described by ``yaml_path`` (labels only; pixels come later)."""
    problems: list[Problem] = []
    doc = _read_yaml(yaml_path)
    classes = _class_names(doc, yaml_path, problems)
    splits: dict[str, ScannedSplit] = {}
    for key, images_dir in _split_dirs(doc, yaml_path, problems).items():
        name = _split_name(images_dir)
        entries = _scan_split(images_dir, name, len(classes), problems)
        splits[name] = ScannedSplit(name=name, entries=entries, role=key)
    if not splits:
        raise DatasetError(
            f"{yaml_path}: none of the splits it lists (train/val/test) exists on disk", problems
        )
    return Scan("yolo", yaml_path.parent, classes, splits, problems, source=str(yaml_path))
