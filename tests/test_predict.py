"""Prediction on photos, folders and videos (ferkit.inference, ``ferkit predict``).

Most tests use a tiny raw-pixel SVM (24x24 gray, no probabilities) trained here on synthetic
textures, and a logistic-regression twin that has probabilities: what they answer on a face is
arbitrary, so the assertions are about faces found, boxes, files, counts and errors. One test
runs the shipped ``affectnet-hog-svm`` on skimage's astronaut. Her face lies in x 170-300,
y 40-200 (tests/test_faces.py); ``HEAD`` cuts the 256x256 square around it, which keeps
detection fast.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import FACE_REGION
from ferkit.cli import app
from ferkit.data.images import decode_image
from ferkit.errors import FerkitError
from ferkit.inference import (
    REPORT_FILE,
    Predictor,
    UnreadableInputError,
    default_model_path,
    framing_name,
    timeline_header,
)
from ferkit.inference import model as model_module
from ferkit.inference.annotate import ACCEPTED_COLOR, REJECTED_COLOR, annotate
from ferkit.models import load_run

CLASSES = ["angry", "happy", "sad"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """{"svm": raw-pixel SVM run (no probabilities), "proba": SVC with probabilities}."""
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC  # with probabilities; in the allow-list of ferkit runs

    from conftest import make_folders
    from ferkit.data import load_dataset
    from ferkit.features.raw import RawPixels
    from ferkit.models import save_sklearn_run
    from ferkit.training.svm import train_svm

    root = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as mp:  # keep the user's decode cache out of it
        mp.setenv("FERKIT_CACHE_DIR", str(root / "cache"))
        data_dir = make_folders(root / "d", per_class=4, size=24)
        fixed = {"kernel": "linear", "C": 1.0}
        train_svm(
            data_dir, root / "svm", features="raw", search=False, params=fixed, progress=False
        )
        train = load_dataset(data_dir, progress=False).split("train")
        pipe = Pipeline(
            [
                ("features", RawPixels(progress=False, cache=False)),
                ("clf", SVC(probability=True, random_state=0)),
            ]
        )
        with warnings.catch_warnings():  # sklearn 1.9 deprecates probability=True, which
            warnings.simplefilter("ignore", FutureWarning)  # the allow-list's SVC still has
            pipe.fit(train.images, train.labels)
        card = {"classes": train.classes, "canonical": train.canonical}
        save_sklearn_run(root / "proba", pipe, {**card, "image_size": 24, "color": "gray"})
    yield {"svm": root / "svm", "proba": root / "proba"}


@pytest.fixture(scope="module")
def predictor(runs: dict[str, Path]) -> Predictor:
    return Predictor(runs["svm"])


def save(path: Path, image: np.ndarray | Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    picture.save(path, **kwargs)
    return path


def noise(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def inside(box, region) -> bool:
    x0, y0, x1, y1 = region
    return x0 <= box.left and box.right <= x1 and y0 <= box.top and box.bottom <= y1


def invoke(*args: str):
    return CliRunner().invoke(app, ["predict", *args])


SUMMARY = re.compile(
    r"(\d+) images(?:, (\d+) videos \((\d+) frames analysed\))?, (\d+) faces "
    r"\((\d+) classified, (\d+) rejected\), (\d+) errors"
)


# -- models -----------------------------------------------------------------------------------


def test_shipped_model_by_name_on_the_astronaut(astronaut: np.ndarray) -> None:
    predictor = Predictor("affectnet-hog-svm")
    assert predictor.framing_name == "affectnet"  # its card: trained on affectnet_yolo
    assert predictor.probabilities is False
    result = predictor.predict_image(astronaut)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.ok and face.label in load_run("affectnet-hog-svm").canonical
    assert inside(face.box, FACE_REGION), face.box
    assert face.score is None and face.probabilities is None
    json.dumps(result.to_dict())


def test_make_demo_command_calls_the_astronaut_happy(astronaut: np.ndarray, tmp_path: Path) -> None:
    """What `make demo` runs: the default model on the bundled photo says the astronaut smiles."""
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    result = invoke(str(photo), "--out", str(tmp_path / "predicted"))
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.output.splitlines() if "face 1" in ln]
    label, score = line.split()[-2:]  # the default (shipped FER2013 network) gives probabilities
    assert label == "happy" and float(score) > 0.5, line
    assert "model fer2013" in result.output
    assert (tmp_path / "predicted" / "predictions.json").is_file()


def test_default_model_prefers_its_constant_then_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ferkit.weights import shipped_path

    if model_module.DEFAULT_MODEL not in model_module.shipped_models():
        assert default_model_path() == shipped_path(model_module.shipped_models()[0])
    monkeypatch.setattr(model_module, "shipped_models", lambda: ["affectnet-hog-svm", "fer2013"])
    monkeypatch.setattr(model_module, "shipped_path", lambda name: tmp_path / name)
    monkeypatch.setattr(model_module, "DEFAULT_MODEL", "fer2013")
    assert default_model_path() == tmp_path / "fer2013"  # not the first one alphabetically
    monkeypatch.setattr(model_module, "DEFAULT_MODEL", "not-shipped")
    assert default_model_path() == tmp_path / "affectnet-hog-svm"
    monkeypatch.setattr(model_module, "shipped_models", lambda: [])
    with pytest.raises(FerkitError, match="no model is shipped"):
        default_model_path()


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        ({"trained_on": "/work/shared/data/affectnet_yolo"}, "affectnet"),
        ({"trained_on": "../shared/data/FER2013"}, "fer2013"),
        ({"trained_on": "/data/fer2013.csv"}, "fer2013"),
        ({"trained_on": "/data/affectnet/data.yaml"}, "affectnet"),
        ({"trained_on": "/runs/fer2013-experiments/faces"}, "default"),  # only the last part
        ({"trained_on": "/data/affectnet", "framing": "fer2013"}, "fer2013"),  # explicit wins
        ({}, "default"),
    ],
)
def test_framing_follows_the_training_data(card: dict, expected: str) -> None:
    assert framing_name(card) == expected


def test_label_is_the_most_probable_class(runs: dict[str, Path]) -> None:
    """scikit-learn's predict may disagree with its own probabilities: the label follows them."""
    from ferkit.inference.model import classify

    class Disagreeing:
        classes_ = np.array([0, 2])  # class 1 never seen in training: probability 0

        def predict(self, images: np.ndarray) -> np.ndarray:
            return np.zeros(len(images), dtype=int)

        def predict_proba(self, images: np.ndarray) -> np.ndarray:
            return np.tile([0.3, 0.7], (len(images), 1))

    run = load_run(runs["svm"])
    run.estimator = Disagreeing()
    labels, probabilities = classify(run, np.zeros((2, 24, 24, 1), np.uint8))
    assert labels.tolist() == [2, 2]
    assert probabilities.tolist() == [[0.3, 0.0, 0.7]] * 2


def test_probabilities_when_the_model_has_them(runs: dict[str, Path], head: np.ndarray) -> None:
    face = Predictor(runs["proba"]).predict_image(head).faces[0]
    assert list(face.probabilities) == CLASSES
    assert sum(face.probabilities.values()) == pytest.approx(1.0)
    assert face.score == max(face.probabilities.values())
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    svm_face = Predictor(runs["svm"]).predict_image(head).faces[0]
    assert svm_face.label in CLASSES and svm_face.score is None and svm_face.probabilities is None


def test_a_network_run_gives_probabilities_and_its_framing(
    tmp_path: Path, head: np.ndarray
) -> None:
    from ferkit.models.nets import create_model
    from ferkit.models.torch_run import save_torch_run

    card = {
        "classes": ["Anger", "Happy", "Sad"],
        "canonical": CLASSES,
        "image_size": 48,
        "color": "gray",
        "mean": [0.5],
        "std": [0.25],
        "trained_on": "/data/fer2013",
    }
    net = create_model("fernet", 3, 1, 48, width=0.25)  # untrained: only the plumbing counts
    run_dir = save_torch_run(tmp_path / "net", net, card)
    predictor = Predictor(run_dir, landmarks=True)  # as the CLI call below: 68 points
    assert predictor.framing_name == "fer2013" and predictor.probabilities
    face = predictor.predict_image(head).faces[0]
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    result = invoke(
        str(save(tmp_path / "h.png", head)), "--model", str(run_dir), "--landmarks", "--json"
    )
    assert result.exit_code == 0, result.output
    faces = json.loads(result.stdout)["images"][0]["faces"]
    assert np.asarray(faces[0]["landmarks"]).shape == (68, 2)
    assert faces[0]["probabilities"] == pytest.approx(face.probabilities, abs=1e-4)


# -- photos -----------------------------------------------------------------------------------


def test_three_faces_in_one_photo_come_left_to_right(
    predictor: Predictor, astronaut: np.ndarray
) -> None:
    wide = np.concatenate([astronaut] * 3, axis=1)
    faces = predictor.predict_image(wide).faces
    assert len(faces) == 3
    for k, face in enumerate(faces):
        x0, y0, x1, y1 = FACE_REGION
        assert inside(face.box, (x0 + 512 * k, y0, x1 + 512 * k, y1)), (k, face.box)
        assert face.label in CLASSES
    assert [f.box.left for f in faces] == sorted(f.box.left for f in faces)


def test_zero_faces_is_a_result_not_an_error(predictor: Predictor, tmp_path: Path) -> None:
    path = save(tmp_path / "blank.png", np.full((120, 160, 3), 128, np.uint8))
    report = predictor.predict_many([path])
    assert report.ok and len(report.images) == 1 and report.images[0].faces == []
    result = invoke(str(path), "--model", str(predictor.run.path))
    assert result.exit_code == 0, result.output
    assert "blank.png  no face" in result.stdout


def test_rejected_faces_are_flagged_and_unlabelled_unless_asked(
    runs: dict[str, Path], head: np.ndarray
) -> None:
    strict = {"min_face_px": 200}  # the 91-px face is now "small"
    face = Predictor(runs["svm"], quality=strict).predict_image(head).faces[0]
    assert not face.ok and face.reasons[0].startswith("small face")
    assert face.label is None and face.score is None
    anyway = Predictor(runs["svm"], quality=strict, classify_rejected=True)
    face = anyway.predict_image(head).faces[0]
    assert not face.ok and face.label in CLASSES
    drawn = annotate(head, [face])
    mid = face.box.top + face.box.height // 2
    assert tuple(drawn[mid, face.box.left]) == REJECTED_COLOR
    ok_face = Predictor(runs["svm"]).predict_image(head).faces[0]
    assert tuple(annotate(head, [ok_face])[mid, ok_face.box.left]) == ACCEPTED_COLOR
    with pytest.raises(FerkitError, match="unknown quality threshold"):
        Predictor(runs["svm"], quality={"min_smile": 1})


def test_no_detect_classifies_the_whole_crop(
    runs: dict[str, Path], astronaut: np.ndarray, tmp_path: Path
) -> None:
    crop = save(tmp_path / "crop.png", astronaut[60:200, 160:290])
    predictor = Predictor(runs["svm"], detect=False)
    face = predictor.predict_image(crop).faces[0]
    assert (face.box.left, face.box.top, face.box.width, face.box.height) == (0, 0, 130, 140)
    assert face.quality is None and face.ok
    # fed exactly as the data layer feeds a 24x24 gray training image
    expected = predictor.run.predict(decode_image(crop, size=24, color="gray")[None])[0]
    assert face.label == predictor.run.canonical[expected]
    result = invoke(str(crop), "--model", str(runs["svm"]), "--no-detect", "--json")
    assert result.exit_code == 0, result.output
    faces = json.loads(result.stdout)["images"][0]["faces"]
    assert len(faces) == 1 and faces[0]["quality"] is None and faces[0]["label"] == face.label


def test_gray_cmyk_alpha_and_16_bit_photos(
    predictor: Predictor, head: np.ndarray, tmp_path: Path
) -> None:
    gray = np.asarray(Image.fromarray(head).convert("L"))
    rgba = np.dstack([head, np.full(head.shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent band: composited on white by the decoder
    files = [
        save(tmp_path / "gray.png", gray),
        save(tmp_path / "cmyk.jpg", Image.fromarray(head).convert("CMYK")),
        save(tmp_path / "alpha.png", Image.fromarray(rgba, "RGBA")),
        save(tmp_path / "deep.png", Image.fromarray(gray.astype(np.uint16) * 257)),
    ]
    assert Image.open(files[3]).mode.startswith("I")  # really 16-bit on disk
    report = predictor.predict_many(files)
    assert report.ok
    assert [Path(r.source).name for r in report.images] == [f.name for f in files]
    for result in report.images:
        assert len(result.faces) == 1, result.source
        assert inside(result.faces[0].box, (74, 40, 204, 200)), result.source


def test_unreadable_path_raises_with_the_file_and_reason(
    predictor: Predictor, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(UnreadableInputError, match=r"notes\.jpg: not a decodable image") as err:
        predictor.predict_image(bad)
    assert err.value.problem.kind == "corrupt-image"


# -- folders, errors, outputs -----------------------------------------------------------------


def test_nested_folder_gives_one_result_per_image(
    predictor: Predictor, head: np.ndarray, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    files = [
        save(root / "top.png", head),
        save(root / "a" / "n1.jpg", noise(1)),
        save(root / "a" / "b" / "n2.bmp", noise(2)),
        save(root / "a" / "b" / "c" / "deep.tif", head),
        save(root / "z" / "n3.webp", noise(3)),
    ]
    (root / "a" / "readme.txt").write_text("not a photo")
    out = tmp_path / "out"
    report = predictor.predict_many([root], out=out)
    assert report.ok
    assert sorted(r.source for r in report.images) == sorted(map(str, files))
    assert [p.path for p in report.skipped] == [str(root / "a" / "readme.txt")]
    faces = {Path(r.source).name: len(r.faces) for r in report.images}
    assert faces == {"top.png": 1, "n1.jpg": 0, "n2.bmp": 0, "deep.tif": 1, "n3.webp": 0}
    for result in report.images:  # annotated copies mirror the tree
        relative = Path(result.source).relative_to(tmp_path)
        assert result.annotated == relative.as_posix()
        assert (out / relative).is_file()
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["summary"]["images"] == 5 and saved["summary"]["faces"] == 2
    again = predictor.predict_many([tmp_path], out=out)  # the output folder is not read back
    assert len(again.images) == 5
    assert [p.kind for p in again.skipped] == ["output-folder", "not-an-image"]


def _broken_files(folder: Path, head: np.ndarray) -> dict[str, Path]:
    good = save(folder / "good.jpg", head)
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "text.jpg"
    text.write_text("this is not a jpeg\n")
    return {"good": good, "corrupt": corrupt, "empty": empty, "text": text}


def test_unreadable_files_are_listed_and_the_rest_predicted(
    runs: dict[str, Path], head: np.ndarray, tmp_path: Path
) -> None:
    files = _broken_files(tmp_path / "in", head)
    blank = save(tmp_path / "in" / "sub" / "blank.png", np.zeros((50, 50), np.uint8))
    out = tmp_path / "out"
    result = invoke(str(tmp_path / "in"), "--model", str(runs["svm"]), "--out", str(out), "--json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    errors = {Path(e["path"]).name: e for e in document["errors"]}
    assert set(errors) == {"corrupt.jpg", "empty.jpg", "text.jpg"}
    assert errors["empty.jpg"]["kind"] == "empty-file"
    assert errors["text.jpg"]["kind"] == "corrupt-image"
    assert errors["corrupt.jpg"]["kind"] in {"truncated-image", "corrupt-image"}
    assert all(e["reason"] for e in errors.values())
    assert sorted(r["source"] for r in document["images"]) == [str(files["good"]), str(blank)]
    assert len(document["images"][0]["faces"]) == 1
    assert "error: " in result.stderr and "empty.jpg: empty file" in result.stderr
    saved = json.loads((out / REPORT_FILE).read_text())  # written despite the errors
    assert saved["errors"] == document["errors"]
    assert (out / "in" / "good.jpg").is_file() and (out / "in" / "sub" / "blank.png").is_file()


def test_same_named_inputs_do_not_overwrite_each_other(
    predictor: Predictor, tmp_path: Path
) -> None:
    first = save(tmp_path / "one" / "photos" / "a.png", noise(4))
    second = save(tmp_path / "two" / "photos" / "a.png", noise(5))
    third = save(tmp_path / "three" / "a.png", noise(6))
    gif = save(tmp_path / "three" / "b.gif", noise(7))
    out = tmp_path / "out"
    report = predictor.predict_many(
        [first.parent, second.parent, third, first, gif], out=out
    )  # `first` twice: predicted once
    names = [r.annotated for r in report.images]
    assert names == ["photos/a.png", "photos/a-2.png", "a.png", "b.gif.png"]
    written = [np.asarray(Image.open(out / name)) for name in names[:3]]
    assert not np.array_equal(written[0], written[1])
    assert np.array_equal(written[1], noise(5)) and np.array_equal(written[2], noise(6))


def test_json_output_matches_the_printed_counts(
    runs: dict[str, Path], head: np.ndarray, tmp_path: Path
) -> None:
    files = _broken_files(tmp_path / "in", head)
    save(tmp_path / "in" / "n.png", noise(8))
    args = [str(tmp_path / "in"), str(tmp_path / "missing.png"), "--model", str(runs["svm"])]
    text = invoke(*args)
    as_json = invoke(*args, "--json")
    assert text.exit_code == as_json.exit_code == 1
    summary = json.loads(as_json.stdout)["summary"]  # stdout holds the JSON and nothing else
    match = SUMMARY.search(text.stdout)
    assert match, text.stdout
    images, _, _, faces, classified, rejected, errors = match.groups()
    assert (int(images), int(faces), int(classified), int(rejected), int(errors)) == (
        summary["images"],
        summary["faces"],
        summary["classified"],
        summary["rejected"],
        summary["errors"],
    )
    assert (summary["images"], summary["faces"], summary["errors"]) == (2, 1, 4)
    face_lines = [line for line in text.stdout.splitlines() if "  face " in line]
    assert len(face_lines) == summary["faces"] and str(files["good"]) in face_lines[0]
    assert "missing.png: no such file or folder" in text.stderr


def test_usage_errors_exit_2(runs: dict[str, Path], head: np.ndarray, tmp_path: Path) -> None:
    photo = str(save(tmp_path / "a.png", head))
    assert invoke(photo, "--model", str(runs["svm"]), "--every", "0").exit_code == 2
    assert invoke(photo, "--model", str(runs["svm"]), "--detector", "eyes").exit_code == 2
    missing_model = invoke(photo, "--model", str(tmp_path / "no-run"))
    assert missing_model.exit_code == 2 and "no-run" in missing_model.stderr
    file_as_out = invoke(photo, "--model", str(runs["svm"]), "--out", photo)
    assert file_as_out.exit_code == 2 and "must be a folder" in file_as_out.stderr
    assert invoke().exit_code == 2


# -- video ------------------------------------------------------------------------------------


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_video_every_2_gives_a_timeline_and_an_annotated_mp4(
    runs: dict[str, Path], head: np.ndarray, tmp_path: Path
) -> None:
    frames = [np.roll(head, 2 * i, axis=1) for i in range(10)]
    video = write_video(tmp_path / "clip.mp4", frames, fps=10.0)
    out = tmp_path / "out"
    result = invoke(str(video), "--model", str(runs["proba"]), "--every", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "clip.mp4  frame 4 (0.40 s)  face 1" in result.stdout
    with open(out / "clip.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == timeline_header(CLASSES, probabilities=True)
    head_columns = ["frame", "time_s", "face", "left", "top", "width", "height", "label", "score"]
    assert rows[0][:9] == head_columns
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [int(r["frame"]) for r in body] == [0, 2, 4, 6, 8]
    assert [float(r["time_s"]) for r in body] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    for r in body:
        assert r["face"] == "1" and r["label"] in CLASSES and r["rejected"] == ""
        probs = [float(r[f"p_{c}"]) for c in CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-3)
        assert float(r["score"]) == pytest.approx(max(probs))
        assert inside_box(r, (74, 40, 204 + 18, 200))
    annotated = read_video(out / "clip.mp4")
    assert len(annotated) == 10 and annotated[0].shape == (256, 256, 3)
    for k, frame in enumerate(annotated):  # a frame between two analysed ones keeps the box
        row = body[k // 2]
        left, top, height = int(row["left"]), int(row["top"]), int(row["height"])
        drawn, before = (
            f[top + 5 : top + height - 5, left].astype(int) for f in (frame, frames[k])
        )
        assert greenness(drawn) - greenness(before) > 40, k  # the MP4 blurs the 1-px line
    saved = json.loads((out / REPORT_FILE).read_text())["videos"][0]
    assert saved["frames_read"] == 10 and saved["frames_analysed"] == 5
    assert (saved["timeline"], saved["annotated"]) == ("clip.csv", "clip.mp4")


def greenness(pixels: np.ndarray) -> float:
    """Mean of green minus the mean of red and blue: far higher on a green box than on a photo."""
    return float((pixels[:, 1] - (pixels[:, 0] + pixels[:, 2]) / 2).mean())


def inside_box(row: dict[str, str], region: tuple[int, int, int, int]) -> bool:
    left, top, width, height = (int(row[k]) for k in ("left", "top", "width", "height"))
    x0, y0, x1, y1 = region
    return x0 <= left and left + width <= x1 and y0 <= top and top + height <= y1


def test_broken_videos_are_errors(predictor: Predictor, head: np.ndarray, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    good = write_video(tmp_path / "ok.mkv", [head, head, head], fps=5.0)
    report = predictor.predict_many([empty, junk, good], every=3)
    assert {Path(p.path).name: p.kind for p in report.errors} == {
        "empty.mp4": "empty-file",
        "junk.avi": "corrupt-video",
    }
    assert len(report.videos) == 1
    video = report.videos[0]
    assert (video.frames_read, [f.frame for f in video.frames]) == (3, [0])
    assert len(video.frames[0].faces) == 1


def test_a_large_photo_is_scanned_at_the_detection_bound_and_boxed_in_its_pixels(
    runs: dict[str, Path], astronaut: np.ndarray
) -> None:
    from ferkit.faces import create_detector

    scanned: list[tuple[int, ...]] = []

    class Spy:
        def detect(self, image: np.ndarray) -> list:
            scanned.append(image.shape)
            return create_detector("dlib").detect(image)

    big = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)  # 1024x1024
    predictor = Predictor(runs["svm"], detector=Spy(), max_detect_pixels=512 * 512)
    result = predictor.predict_image(big)
    assert scanned == [(512, 512, 3)]
    assert (result.width, result.height) == (1024, 1024)
    (face,) = result.faces
    assert face.box.width > 150  # the astronaut's ~90 px face, in the photo's own pixels
    assert predictor.options()["max_detect_pixels"] == 512 * 512
    with pytest.raises(FerkitError, match="max_detect_pixels"):
        Predictor(runs["svm"], max_detect_pixels=0)
