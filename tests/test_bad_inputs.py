"""Every kind of bad input is reported item by item, with the file and the reason, and the good
samples still load; ``strict=True`` turns the same problems into an error."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import make_fer_csv, make_folders, make_yolo, write_image
from ferkit.data import load_dataset
from ferkit.errors import DatasetError

GOOD_YOLO = 24  # make_yolo default: 3 classes x 4 images x 2 splits
GOOD_FOLDERS = 24


def _png_bomb(path: Path, side: int = 30_000) -> None:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * side
    idat = zlib.compress(row * 16, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# name -> (builder(root) returning the offending path, kind, reason fragment, severity, lost)
# "lost" is how many good samples the problem removes from the fixture.
Case = tuple[Callable[[Path], Path], str, str, str, int]


def yolo_cases() -> dict[str, Case]:
    imgs = "train/images"
    lbls = "train/labels"
    return {
        "zero-byte image": (
            lambda r: _touch(r / imgs / "train_0_0.png"),
            "empty-file",
            "empty file (0 bytes)",
            "skipped",
            1,
        ),
        "truncated jpeg": (
            lambda r: _jpeg_then(r, _truncate),
            "truncated-image",
            "truncated",
            "skipped",
            1,
        ),
        "corrupt bytes": (
            lambda r: _write(r / imgs / "train_0_1.png", os.urandom(300)),
            "corrupt-image",
            "not a decodable image",
            "skipped",
            1,
        ),
        "non-image file": (
            lambda r: _write(r / imgs / "notes.txt", b"hello"),
            "not-an-image",
            "not an image file (extension .txt)",
            "skipped",
            0,
        ),
        "image without label": (
            lambda r: _unlink(r / lbls / "train_1_0.txt", r / imgs / "train_1_0.png"),
            "missing-label",
            "image has no label file",
            "skipped",
            1,
        ),
        "label without image": (
            lambda r: _write(r / lbls / "ghost.txt", b"1 0.5 0.5 1 1\n"),
            "orphan-label",
            "label file has no image",
            "skipped",
            0,
        ),
        "class id out of range": (
            lambda r: _write(r / lbls / "train_2_0.txt", b"9 0.5 0.5 1 1\n"),
            "class-out-of-range",
            "class id 9 out of range 0..2",
            "skipped",
            1,
        ),
        "negative class id": (
            lambda r: _write(r / lbls / "train_2_1.txt", b"-1 0.5 0.5 1 1\n"),
            "class-out-of-range",
            "class id -1 out of range",
            "skipped",
            1,
        ),
        "empty label file": (
            lambda r: _write(r / lbls / "train_2_2.txt", b""),
            "empty-label",
            "empty label file",
            "skipped",
            1,
        ),
        "garbage label file": (
            lambda r: _write(r / lbls / "train_2_3.txt", b"\x00\xffhappy face"),
            "bad-label",
            "does not start with a class id",
            "skipped",
            1,
        ),
        "fractional class id": (
            lambda r: _write(r / lbls / "train_0_2.txt", b"1.5 0.5 0.5 1 1"),
            "bad-label",
            "is not an integer",
            "skipped",
            1,
        ),
        "decompression bomb": (
            lambda r: _bomb_with_label(r),
            "image-too-large",
            "possible decompression bomb",
            "skipped",
            0,
        ),
        "broken symlink": (
            lambda r: _symlink_with_label(r),
            "unreadable-file",
            "cannot read file",
            "skipped",
            0,
        ),
        "duplicate stem": (
            lambda r: _duplicate(r / imgs / "train_0_0"),
            "duplicate-stem",
            "same stem",
            "skipped",
            0,
        ),
        "listed split missing": (
            lambda r: _append(r / "data.yaml", 'test: "./test/images"\n') or r / "test/images",
            "missing-split",
            "split 'test' is listed in data.yaml but its folder is missing",
            "warning",
            0,
        ),
        "nc disagrees with names": (
            lambda r: _append(r / "data.yaml", "nc: 8\n") or r / "data.yaml",
            "names-count-mismatch",
            "nc is 8 but 3 names",
            "warning",
            0,
        ),
        "folder inside images": (
            lambda r: _mkdir(r / imgs / "extra"),
            "unexpected-folder",
            "folder inside images/",
            "skipped",
            0,
        ),
        "empty class": (
            lambda r: _empty_class(r),
            "empty-class",
            "class 'Sad' has no usable samples",
            "warning",
            4,
        ),
        "missing labels folder": (
            lambda r: _rmtree_labels(r),
            "missing-labels-folder",
            "labels folder is missing",
            "skipped",
            12,
        ),
    }


def _touch(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _unlink(p: Path, ret: Path) -> Path:
    p.unlink()
    return ret


def _duplicate(stem: Path) -> Path:
    """A .jpg beside the existing .png: the .jpg sorts first and keeps the label."""
    write_image(stem.with_suffix(".jpg"), 0, 1)
    return stem.with_suffix(".png")


def _append(p: Path, text: str) -> None:
    with open(p, "a") as fh:
        fh.write(text)


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _jpeg_then(root: Path, damage: Callable[[Path], None]) -> Path:
    (root / "train/images/train_1_1.png").unlink()
    path = write_image(root / "train/images/train_1_1.jpg", 1, 5, size=64)
    damage(path)
    return path


def _bomb_with_label(root: Path) -> Path:
    path = root / "train/images/bomb.png"
    _png_bomb(path)
    (root / "train/labels/bomb.txt").write_text("0 0.5 0.5 1 1\n")
    return path


def _symlink_with_label(root: Path) -> Path:
    path = root / "train/images/link.png"
    path.symlink_to(root / "does-not-exist.png")
    (root / "train/labels/link.txt").write_text("0 0.5 0.5 1 1\n")
    return path


def _empty_class(root: Path) -> Path:
    for split in ("train",):
        for i in range(4):
            (root / split / "images" / f"{split}_2_{i}.png").unlink()
            (root / split / "labels" / f"{split}_2_{i}.txt").unlink()
    return Path("train/Sad")


def _rmtree_labels(root: Path) -> Path:
    import shutil

    shutil.rmtree(root / "train/labels")
    return root / "train/labels"


@pytest.mark.parametrize("case", list(yolo_cases()), ids=list(yolo_cases()))
def test_yolo_bad_input_reported(tmp_path: Path, case: str) -> None:
    build, kind, reason, severity, lost = yolo_cases()[case]
    root = make_yolo(tmp_path / "d")
    offending = build(root)
    ds = load_dataset(root)
    matches = [p for p in ds.problems if p.kind == kind]
    assert matches, f"no {kind} problem in {ds.problems}"
    problem = matches[0]
    assert reason in problem.reason
    assert problem.severity == severity
    assert str(problem.path).endswith(str(offending).split(str(root))[-1].lstrip("/"))
    total = sum(len(s) for s in ds.splits.values())
    assert total == GOOD_YOLO - lost
    with pytest.raises(DatasetError, match=kind):
        load_dataset(root, strict=True)


def test_mixed_problems_each_reported_and_good_samples_load(tmp_path: Path) -> None:
    """The acceptance case: a corrupt image, an orphan label and an out-of-range class id."""
    root = make_yolo(tmp_path / "d")
    (root / "valid/images/valid_0_0.png").write_bytes(b"definitely not a png")
    (root / "valid/labels/lonely.txt").write_text("2 0.5 0.5 1 1\n")
    (root / "valid/labels/valid_1_0.txt").write_text("7 0.5 0.5 1 1\n")
    ds = load_dataset(root)
    by_kind = {p.kind: p for p in ds.problems}
    assert set(by_kind) == {"corrupt-image", "orphan-label", "class-out-of-range"}
    assert by_kind["corrupt-image"].path.endswith("valid/images/valid_0_0.png")
    assert by_kind["orphan-label"].path.endswith("valid/labels/lonely.txt")
    assert by_kind["class-out-of-range"].path.endswith("valid/labels/valid_1_0.txt")
    assert all(p.split == "valid" for p in ds.problems)
    assert len(ds.split("train")) == 12 and len(ds.split("valid")) == 10
    assert not any(r.endswith(("valid_0_0.png", "valid_1_0.png")) for r in ds.split("valid").refs)


def test_problems_come_back_from_the_cache(tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "d")
    (root / "train/images/train_0_0.png").write_bytes(b"junk")
    first = load_dataset(root)
    second = load_dataset(root)
    assert second.cached == {"train": True, "valid": True}
    assert [p.kind for p in second.problems] == [p.kind for p in first.problems]


def test_unknown_class_folder(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "f")
    write_image(root / "train" / "misc" / "a.jpg", 0, 1)
    ds = load_dataset(root)
    (problem,) = [p for p in ds.problems if p.kind == "unknown-class-folder"]
    assert problem.path.endswith("train/misc") and "not an emotion name" in problem.reason
    assert "its 1 files are skipped" in problem.reason
    assert sum(len(s) for s in ds.splits.values()) == GOOD_FOLDERS
    kept = load_dataset(root, keep_unknown_classes=True)
    assert "misc" in kept.classes and kept.canonical[kept.classes.index("misc")] == "misc"


def test_file_outside_class_folder(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "f")
    (root / "train" / "README.md").write_text("hi")
    ds = load_dataset(root)
    (problem,) = ds.problems
    assert problem.kind == "outside-class-folder" and problem.path.endswith("train/README.md")


def test_empty_class_folder(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "f")
    (root / "val" / "fear").mkdir()
    ds = load_dataset(root)
    kinds = {(p.kind, p.split) for p in ds.problems}
    assert ("empty-class", "val") in kinds and ("empty-class", "train") in kinds
    assert ds.classes == ["angry", "fear", "happy", "sad"]


def test_non_image_in_class_folder(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "f")
    (root / "val" / "happy" / ".DS_Store").write_bytes(b"\x00\x01")
    ds = load_dataset(root)
    (problem,) = ds.problems
    assert problem.kind == "not-an-image" and problem.path.endswith(".DS_Store")


@pytest.mark.parametrize(
    ("row", "kind", "reason"),
    [
        ("3,1 2 3,Training", "bad-pixels", "3 pixel values do not form a square image"),
        ("3,{px},Someday", "unknown-usage", "unknown Usage 'Someday'"),
        ("happy,{px},Training", "bad-label", "is not an integer"),
        ("12,{px},Training", "class-out-of-range", "class id 12 out of range 0..6"),
        ("3,1 2 x 4,Training", "bad-pixels", "not all integers"),
        ("3,300 0 0 0,Training", "bad-pixels", "outside 0..255"),
        ("3", "bad-row", "row has 1 fields"),
    ],
)
def test_fer_csv_bad_rows(tmp_path: Path, row: str, kind: str, reason: str) -> None:
    path = make_fer_csv(tmp_path / "fer.csv")
    px = " ".join(["7"] * 48 * 48)
    with open(path, "a") as fh:
        fh.write(row.format(px=px) + "\n")
    ds = load_dataset(path)
    (problem,) = ds.skipped
    assert problem.kind == kind and reason in problem.reason
    assert problem.path == f"{path}:11"
    assert sum(len(s) for s in ds.splits.values()) == 9


def test_csv_without_needed_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("label,image\n1,2\n")
    with pytest.raises(DatasetError, match="lacks the 'emotion' and 'pixels' columns"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: r / "nope", "does not exist"),
        (lambda r: _mkdir(r / "empty"), "cannot detect the dataset layout"),
        (lambda r: _yaml(r, "names: [Anger, Happy\ntrain: x: y\n"), "unreadable data.yaml"),
        (lambda r: _yaml(r, "- just\n- a list\n"), "expected a mapping"),
        (lambda r: _yaml(r, 'train: "./train/images"\n'), "no 'names' list"),
        (lambda r: _yaml(r, 'train: "./gone"\nnames: [Anger]\n'), "none of the splits"),
        (lambda r: _write(r / "notes.txt", b"hi"), "not a dataset"),
        (lambda r: _yolo_without_yaml(r), "has no data.yaml"),
    ],
    ids=[
        "missing path",
        "undetectable",
        "invalid yaml",
        "yaml not a mapping",
        "yaml no names",
        "yaml splits all missing",
        "plain file",
        "yolo without yaml",
    ],
)
def test_dataset_level_errors_name_the_file(tmp_path: Path, setup, message: str) -> None:
    target = setup(tmp_path)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(target)
    assert str(target) in str(err.value)


def _yaml(root: Path, text: str) -> Path:
    (root / "data.yaml").write_text(text)
    return root


def _yolo_without_yaml(root: Path) -> Path:
    make_yolo(root / "y")
    (root / "y" / "data.yaml").unlink()
    return root / "y"


def test_numbered_class_folders_get_rafdb_numbering_in_the_error(tmp_path: Path) -> None:
    """Kaggle's RAF-DB ships DATASET/train/1..7: ferkit cannot guess what 1 means, but the
    error says what it found and how RAF-DB numbers its emotions."""
    for split in ("train", "test"):
        for k in range(1, 8):
            (tmp_path / "DATASET" / split / str(k)).mkdir(parents=True)
    (tmp_path / "DATASET" / "train" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path / "DATASET")
    text = str(err.value)
    assert "Folders found: 1, 2, 3, 4, 5, 6, 7, test, train" in text
    assert "RAF-DB's numbered folders (1 surprise, 2 fear, 3 disgust," in text
    assert "7 neutral), pass class names 'rafdb' (--class-names rafdb)" in text
    assert "FER2013's numbered" not in text  # 7 is not one of FER2013's 0 ... 6


def test_numbered_class_folders_read_through_class_names(tmp_path: Path) -> None:
    """RAF-DB's numbered folders read with the ``rafdb`` preset or explicit pairs; the classes
    carry emotion names, a folder the map lacks is reported, and bad maps fail up front."""
    from PIL import Image

    root = tmp_path / "DATASET"
    for split in ("train", "test"):
        for k in (1, 4, 5, 8):
            folder = root / split / str(k)
            folder.mkdir(parents=True)
            Image.fromarray(np.full((20, 20), 30 * k, np.uint8)).save(folder / f"{split}_{k}.jpg")
    ds = load_dataset(root, class_names="rafdb", cache=False)
    assert ds.classes == ["surprise", "happy", "sad"] and ds.canonical == ds.classes
    test = ds.split("test")
    assert test.counts() == {"surprise": 1, "happy": 1, "sad": 1}
    assert test.refs[test.labels.tolist().index(1)].endswith("test/4/test_4.jpg")
    unknown = [p for p in ds.problems if p.kind == "unknown-class-folder"]
    assert sorted(Path(p.path).name for p in unknown) == ["8", "8"]
    ds = load_dataset(root, class_names="1=surprised, 4=Happiness", cache=False)
    assert ds.classes == ["surprise", "happy"]
    for bad, why in [
        ("1=grumpy", "folder '1': unknown emotion name 'grumpy'"),
        ("surprise", "expected a preset \\(rafdb, fer2013\\) or FOLDER=EMOTION pairs"),
    ]:
        with pytest.raises(DatasetError, match=why):
            load_dataset(root, class_names=bad)
    with pytest.raises(DatasetError, match="this yolo dataset names its classes itself"):
        load_dataset(make_yolo(tmp_path / "y"), class_names="rafdb")
    from typer.testing import CliRunner

    from ferkit.cli import app
    from ferkit.training.config import TrainConfig
    from ferkit.training.deep import prepare_data

    shown = CliRunner().invoke(app, ["inspect", str(root), "--class-names", "rafdb", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [c["name"] for c in json.loads(shown.stdout)["classes"]] == ["surprise", "happy", "sad"]
    cfg = TrainConfig(class_names="rafdb", val_split="test", balance="none", batch_size=2)
    assert prepare_data(root, cfg, progress=False).classes == ["surprise", "happy", "sad"]


def test_folders_not_named_by_emotion_are_listed(tmp_path: Path) -> None:
    for name in ("cats", "dogs"):
        (tmp_path / "pets" / name).mkdir(parents=True)
    with pytest.raises(DatasetError, match="Folders found: cats, dogs; none is an emotion") as err:
        load_dataset(tmp_path / "pets")
    assert "RAF-DB" not in str(err.value)
