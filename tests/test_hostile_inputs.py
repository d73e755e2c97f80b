"""Hostile inputs to the readers and commands: link loops, FIFOs, unreadable files and folders,
a PNG whose text chunk inflates to 50 MB, photos over the pixel limit, huge YOLO label files,
billion-laughs and deeply nested data.yaml files, and an --out that cannot be written.

Every case must end without a traceback or a hang, report each bad input with its file and
reason, and still process the good inputs. Permissions do not block root (CI runs as root), so
unreadable files and folders are simulated by patching ``os.scandir`` / ``open``.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from conftest import FACE_REGION, make_folders, make_yolo, write_image
from ferkit import io
from ferkit.cli import app
from ferkit.data import images as images_module
from ferkit.data import load_dataset
from ferkit.data.images import DEFAULT_MAX_PIXELS, ImageProblem, decode_image, peek_image
from ferkit.data.yolo import MAX_FACES_PER_IMAGE, MAX_LABEL_BYTES
from ferkit.errors import DatasetError, FerkitError
from ferkit.inference import Predictor

SRC = Path(__file__).resolve().parents[1] / "src"


@contextmanager
def no_hang(seconds: int = 30) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block blocks, e.g. in open() on a FIFO."""

    def alarm(*_: object) -> None:
        raise TimeoutError(f"hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def ztxt_png(path: Path, megabytes: int = 50) -> Path:
    """A valid 8x8 PNG with a zTXt chunk that inflates to ``megabytes`` MB (50 kB on disk)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (megabytes * 1_000_000), zip=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def kinds(problems) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        out.setdefault(p.kind, []).append(Path(p.path).name)
    return out


def deny(monkeypatch: pytest.MonkeyPatch, target: Path, scandir: bool = True) -> None:
    """Make ``target`` unreadable even for root: listing it (a folder) or opening it (a file)
    raises PermissionError, as chmod 000 would for a normal user."""
    target = str(target)
    if scandir:
        real_scandir = os.scandir

        def fake_scandir(path=".", *args, **kwargs):
            if os.fspath(path) == target:
                raise PermissionError(errno.EACCES, "Permission denied", target)
            return real_scandir(path, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", fake_scandir)
    else:
        real_open = builtins.open

        def fake_open(file, *args, **kwargs):
            if isinstance(file, str | os.PathLike) and os.fspath(file) == target:
                raise PermissionError(errno.EACCES, "Permission denied", target)
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)


# -- link loops --------------------------------------------------------------------------------


def test_link_loops_in_class_folders_are_reported_not_followed(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "d", splits=None, per_class=4)  # 12 images
    os.symlink("..", root / "angry" / "up")  # back to the dataset root: 810 samples before
    os.symlink("self.jpg", root / "happy" / "self.jpg")  # a file link to itself
    os.symlink("..", root / "sad" / "again")
    os.symlink("loop", root / "loop")  # a link loop beside the class folders
    with no_hang():
        ds = load_dataset(root, progress=False)
    assert len(ds.split("all")) == 12
    found = kinds(ds.problems)
    assert sorted(found["symlink-loop"]) == ["again", "loop", "self.jpg", "up"]
    assert all("loop" in p.reason for p in ds.problems if p.kind == "symlink-loop")


def test_a_linked_folder_is_still_read_once(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "d", splits=None, per_class=2)
    write_image(tmp_path / "more" / "x.jpg", 1, 5, 24, "L")
    os.symlink(tmp_path / "more", root / "happy" / "more")  # a real folder elsewhere: followed
    os.symlink(tmp_path / "more", root / "happy" / "twice")  # the same folder again: once
    ds = load_dataset(root, progress=False)
    assert ds.split("all").counts()["happy"] == 3
    assert kinds(ds.problems) == {"duplicate-folder": ["twice"]}


def test_predict_reports_link_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferkit.inference.inputs import collect_inputs

    folder = tmp_path / "in"
    write_image(folder / "a.png", 0, 1)
    os.symlink("self.jpg", folder / "self.jpg")
    os.symlink("..", folder / "up")
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    found = collect_inputs([folder, tmp_path / "loop.jpg", folder / "a.png"])
    assert [f.path.name for f in found.files] == ["a.png"]  # given twice: predicted once
    assert {(p.kind, Path(p.path).name) for p in found.skipped} == {
        ("symlink-loop", "self.jpg"),
        ("folder-link", "up"),
    }
    assert [(p.kind, Path(p.path).name) for p in found.errors] == [("symlink-loop", "loop.jpg")]


def test_dataset_path_that_is_a_link_loop(tmp_path: Path) -> None:
    os.symlink("d", tmp_path / "d")
    with pytest.raises(DatasetError, match="d"):
        load_dataset(tmp_path / "d", progress=False)


# -- FIFOs and other non-regular files ---------------------------------------------------------


def test_fifo_in_class_folder_is_reported_without_opening(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "d", splits=None, per_class=3)
    os.mkfifo(root / "sad" / "pipe.jpg")
    os.mkfifo(root / "pipe.png")  # beside the class folders
    with no_hang():
        ds = load_dataset(root, progress=False)
    assert len(ds.split("all")) == 9
    assert sorted(kinds(ds.problems)["not-a-regular-file"]) == ["pipe.jpg", "pipe.png"]
    assert "named pipe" in next(p.reason for p in ds.problems if p.kind == "not-a-regular-file")


def test_fifo_in_yolo_images_and_labels(tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "y", per_class=2)
    os.mkfifo(root / "train" / "images" / "pipe.jpg")
    os.mkfifo(root / "train" / "labels" / "other.txt")
    with no_hang():
        ds = load_dataset(root, progress=False)
    assert len(ds.split("train")) == 6
    assert sorted(kinds(ds.problems)["not-a-regular-file"]) == ["other.txt", "pipe.jpg"]


@pytest.mark.parametrize("name", ["fer.csv", "data.yaml", "plain"])
def test_a_fifo_given_as_the_dataset_is_refused(tmp_path: Path, name: str) -> None:
    os.mkfifo(tmp_path / name)
    with no_hang(), pytest.raises(DatasetError, match="named pipe"):
        load_dataset(tmp_path / name, progress=False)


def test_a_fifo_csv_in_the_dataset_folder_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fer2013.csv")
    with no_hang(), pytest.raises(DatasetError, match="cannot detect the dataset layout"):
        load_dataset(tmp_path, progress=False)


def test_decoders_never_open_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with no_hang():
        assert peek_image(fifo) is None
        with pytest.raises(ImageProblem) as err:
            decode_image(fifo)
    assert err.value.kind == "not-a-regular-file" and "named pipe" in err.value.reason


# -- Pillow errors beyond OSError --------------------------------------------------------------


def test_png_with_a_huge_text_chunk_is_one_skipped_file(tmp_path: Path) -> None:
    bad = ztxt_png(tmp_path / "z.png")
    with pytest.raises(ImageProblem) as err:
        decode_image(bad)
    assert err.value.kind == "corrupt-image" and "too large" in err.value.reason
    root = make_folders(tmp_path / "d", splits=None, per_class=2, ext=".png")
    ztxt_png(root / "happy" / "bomb.png")
    ds = load_dataset(root, progress=False)
    assert len(ds.split("all")) == 6
    assert kinds(ds.problems)["corrupt-image"] == ["bomb.png"]


# -- unreadable files and folders --------------------------------------------------------------


def test_unreadable_class_folder_is_not_an_empty_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_folders(tmp_path / "d", per_class=2)
    deny(monkeypatch, root / "train" / "sad")
    ds = load_dataset(root, progress=False, cache=False)
    found = kinds(ds.problems)
    assert found == {"unreadable-folder": ["sad"]}, ds.problems  # no empty-class warning
    assert "Permission denied" in ds.problems[0].reason
    assert len(ds.split("train")) == 4 and len(ds.split("val")) == 6


def test_unreadable_sub_folder_and_split_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_folders(tmp_path / "d", per_class=2)
    write_image(root / "train" / "happy" / "more" / "x.jpg", 1, 9, 24, "L")
    real_scandir = os.scandir
    denied = {str(root / "train" / "happy" / "more"), str(root / "val")}

    def fake_scandir(path=".", *args, **kwargs):
        if os.fspath(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    ds = load_dataset(root, progress=False, cache=False)
    assert sorted(kinds(ds.problems)["unreadable-folder"]) == ["more", "val"]
    assert len(ds.split("train")) == 6


def test_unreadable_yolo_folders_and_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_yolo(tmp_path / "y", per_class=2)
    deny(monkeypatch, root / "valid" / "images")
    ds = load_dataset(root, progress=False, cache=False)
    assert kinds(ds.problems)["unreadable-folder"] == ["images"]
    assert len(ds.split("train")) == 6 and len(ds.split("valid")) == 0
    monkeypatch.undo()
    deny(monkeypatch, root / "train" / "labels" / "train_0_0.txt", scandir=False)
    ds = load_dataset(root, progress=False, cache=False)
    assert kinds(ds.problems) == {"unreadable-label": ["train_0_0.txt"]}
    assert len(ds.split("train")) == 5


# -- large photos ------------------------------------------------------------------------------


def test_a_48_megapixel_photo_is_within_the_limit() -> None:
    assert DEFAULT_MAX_PIXELS >= 8064 * 6048  # a 48 MP phone photo decodes whole


def test_a_jpeg_over_the_limit_is_found_at_reduced_scale_and_boxed_in_the_original(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.jpg"
    Image.fromarray(astronaut).resize((1024, 1024)).save(big, quality=95)
    png = tmp_path / "big.png"
    Image.fromarray(astronaut).resize((1024, 1024)).save(png)
    monkeypatch.setattr(images_module, "DEFAULT_MAX_PIXELS", 300_000)  # 1 MP is over it
    predictor = Predictor("affectnet-hog-svm")
    report = predictor.predict_many([big, png], out=tmp_path / "out")
    (result,) = report.images
    assert (result.width, result.height) == (1024, 1024)
    box = result.faces[0].box
    x0, y0, x1, y1 = (2 * v for v in FACE_REGION)  # the face, in the original's pixels
    assert x0 <= box.left and box.right <= x1 and y0 <= box.top and box.bottom <= y1
    (warning,) = report.warnings
    assert warning.kind == "reduced-scale" and "1/2 scale (512x512)" in warning.reason
    assert Image.open(tmp_path / "out" / result.annotated).size == (512, 512)
    (error,) = report.errors  # the PNG cannot be decoded at a reduced scale: refused
    assert error.kind == "image-too-large" and Path(error.path).name == "big.png"


# -- YOLO label files --------------------------------------------------------------------------


def test_yolo_label_with_too_many_faces_or_bytes_is_refused_whole(tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "y", per_class=2)
    labels = root / "train" / "labels"
    (labels / "train_0_0.txt").write_text("0 0.5 0.5 0.2 0.2\n" * 20_000)
    line = "1 0.5 0.5 0.2 0.2" + " " * 100 + "\n"
    (labels / "train_1_0.txt").write_text(line * (MAX_LABEL_BYTES // len(line) + 10))
    (labels / "train_2_0.txt").write_text("2 0.5 0.5 0.2 0.2\n" * MAX_FACES_PER_IMAGE)
    ds = load_dataset(root, progress=False)
    found = {p.kind: p for p in ds.problems}
    assert set(found) == {"too-many-faces", "label-too-large"}
    assert Path(found["too-many-faces"].path).name == "train_0_0.txt"
    assert "20,000 labelled faces" in found["too-many-faces"].reason
    assert Path(found["label-too-large"].path).name == "train_1_0.txt"
    assert len(ds.split("train")) == 3 + MAX_FACES_PER_IMAGE  # at the cap: every face kept


# -- data.yaml ---------------------------------------------------------------------------------

LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    + ["names: *a8", 'train: "./train/images"']
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (LAUGHS, "aliases"),
        ("names: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
        ("names: [[a, b], c]\n", "'names' must list class names"),
        ("names: [a]\nnc: " + "x" * (2 << 20) + "\n", "larger than"),
    ],
    ids=["billion-laughs", "5000-deep", "nested-names", "too-large"],
)
def test_hostile_data_yaml_is_refused_with_the_file(tmp_path: Path, text: str, reason: str) -> None:
    root = make_yolo(tmp_path / "y", per_class=1, yaml_text=text)
    with no_hang(), pytest.raises(DatasetError) as err:
        load_dataset(root, progress=False)
    assert "data.yaml" in str(err.value) and reason in str(err.value)


# -- writing -----------------------------------------------------------------------------------


def test_out_that_cannot_be_written_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FerkitError, match=r"cannot write to .*file/out: Not a directory"):
        io.ensure_writable_dir(blocker / "out")
    with pytest.raises(FerkitError, match="must be a folder"):
        io.ensure_writable_dir(blocker)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(FerkitError, match=r"cannot write to .*ok: No space left on device"):
        io.ensure_writable_dir(tmp_path / "ok")
    assert list((tmp_path / "ok").iterdir()) == []  # the probe is removed
    with pytest.raises(io.WriteError, match=r"cannot write to .*r\.json: No space") as err:
        io.write_json(tmp_path / "ok" / "r.json", {"a": 1})
    assert isinstance(err.value, OSError)  # the decode cache's `except OSError` still holds
    assert list((tmp_path / "ok").iterdir()) == []  # no temp file left behind


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def svm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny raw-pixel SVM (24x24 gray) on angry/happy/sad."""
    from ferkit.training.svm import train_svm

    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERKIT_CACHE_DIR", str(root / "cache"))
        data = make_folders(root / "d", per_class=4, size=24)
        params = {"kernel": "linear", "C": 1.0}
        train_svm(data, root / "svm", features="raw", search=False, params=params, progress=False)
    return root / "svm"


def hostile_folder(folder: Path, head: np.ndarray) -> dict[str, Path]:
    """A folder of photos: one good, and a link loop, a FIFO, a zTXt PNG, an unreadable one."""
    folder.mkdir(parents=True)
    good = folder / "good.png"
    Image.fromarray(head).save(good)
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.symlink("..", folder / "up")
    os.mkfifo(folder / "pipe.jpg")
    ztxt = ztxt_png(folder / "ztxt.png")
    locked = folder / "locked.png"
    Image.fromarray(head).save(locked)
    return {"good": good, "ztxt": ztxt, "locked": locked}


def test_predict_goes_on_past_every_hostile_input(
    svm_run: Path, head: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = hostile_folder(tmp_path / "in", head)
    alone = tmp_path / "alone.png"  # an unreadable file given by name
    Image.fromarray(head).save(alone)
    fifo = tmp_path / "named.jpg"
    os.mkfifo(fifo)
    deny(monkeypatch, alone, scandir=False)
    monkeypatch.setattr(Image, "open", _deny_pillow({str(alone), str(files["locked"])}))
    args = [str(tmp_path / "in"), str(alone), str(fifo), str(files["good"])]
    with no_hang():
        result = CliRunner().invoke(
            app, ["predict", *args, "--model", str(svm_run), "--out", str(tmp_path / "o"), "--json"]
        )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    document = json.loads(result.stdout)
    assert [Path(r["source"]).name for r in document["images"]] == ["good.png"]
    errors = {Path(e["path"]).name: e["kind"] for e in document["errors"]}
    assert errors == {
        "ztxt.png": "corrupt-image",
        "locked.png": "unreadable-file",
        "alone.png": "unreadable-file",
        "named.jpg": "not-a-regular-file",
    }
    skipped = {Path(e["path"]).name: e["kind"] for e in document["skipped"]}
    assert skipped == {
        "loop.jpg": "symlink-loop",
        "up": "folder-link",
        "pipe.jpg": "not-a-regular-file",
    }
    assert "named.jpg: a named pipe (FIFO)" in result.stderr


def _deny_pillow(paths: set[str]):
    """Image.open raising PermissionError for ``paths`` (root reads any file)."""
    real = Image.open

    def fake(fp, *args, **kwargs):
        if isinstance(fp, str | os.PathLike) and os.fspath(fp) in paths:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(fp))
        return real(fp, *args, **kwargs)

    return fake


def test_predict_unreadable_sub_folder_is_an_error(
    svm_run: Path, head: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(head).save(tmp_path / "a.png")
    (tmp_path / "locked").mkdir()
    deny(monkeypatch, tmp_path / "locked")
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--model", str(svm_run), "--json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert [(e["kind"], Path(e["path"]).name) for e in document["errors"]] == [
        ("unreadable-folder", "locked")
    ]
    assert len(document["images"]) == 1


@pytest.mark.parametrize("layout", ["folders", "yolo"])
def test_inspect_lists_every_hostile_input_and_loads_the_rest(tmp_path: Path, layout: str) -> None:
    if layout == "folders":
        root = make_folders(tmp_path / "d", splits=None, per_class=3, ext=".png")
        images = root / "happy"
    else:
        root = make_yolo(tmp_path / "d", per_class=1, splits=("train",))
        images = root / "train" / "images"
        (root / "train" / "labels" / "ztxt.txt").write_text("1\n")
    os.mkfifo(images / "pipe.jpg")
    os.symlink("loop.png", images / "loop.png")
    ztxt_png(images / "ztxt.png")
    with no_hang():
        result = CliRunner().invoke(app, ["inspect", str(root), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["total"] == (9 if layout == "folders" else 3)
    found = {(p["kind"], Path(p["path"]).name.split("#")[0]) for p in summary["skipped"]}
    assert {
        ("not-a-regular-file", "pipe.jpg"),
        ("symlink-loop", "loop.png"),
        ("corrupt-image", "ztxt.png"),
    } <= found


def test_evaluate_detect_skips_hostile_images(
    svm_run: Path, head: np.ndarray, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    for name in ("angry", "happy", "sad"):
        (root / name).mkdir(parents=True)
        Image.fromarray(head).save(root / name / "face.png")
    os.mkfifo(root / "happy" / "pipe.jpg")
    os.symlink("..", root / "sad" / "up")
    ztxt_png(root / "angry" / "ztxt.png")
    args = ["evaluate", str(svm_run), str(root), "--faces", "detect", "--detector", "haar"]
    with no_hang(60):
        result = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 3


@pytest.mark.parametrize("command", ["inspect", "predict", "evaluate", "train", "svm"])
def test_out_that_cannot_be_written_fails_up_front_in_one_line(
    command: str, svm_run: Path, tmp_path: Path
) -> None:
    data = make_folders(tmp_path / "d", per_class=2, size=24)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "out"
    args = {
        "inspect": ["inspect", str(data)],
        "predict": ["predict", str(data), "--model", str(svm_run)],
        "evaluate": ["evaluate", str(svm_run), str(data)],
        "train": ["train", str(data), "--epochs", "1"],
        "svm": ["svm", str(data)],
    }[command]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"cannot write to {out}: Not a directory" in " ".join(result.stderr.split())


def test_full_disk_mid_run_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_folders(tmp_path / "d", per_class=2, size=24)
    real_write = io._write_with

    def full(target, mode, write):
        if Path(target).name == "inspect.json":
            raise io.WriteError(errno.ENOSPC, f"cannot write to {target}: No space left on device")
        return real_write(target, mode, write)

    monkeypatch.setattr(io, "_write_with", full)
    result = CliRunner().invoke(app, ["inspect", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "inspect.json: No space left on device" in " ".join(result.stderr.split())


def test_cli_on_a_fifo_dataset_ends_without_a_traceback(tmp_path: Path) -> None:
    """The real process, with a timeout: a hang in open() on the FIFO fails here."""
    root = make_yolo(tmp_path / "y", per_class=1)
    os.mkfifo(root / "train" / "images" / "pipe.jpg")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ferkit.cli import app; app()",
            "inspect",
            str(root),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "pipe.jpg" in done.stdout and "not-a-regular-file" in done.stdout
