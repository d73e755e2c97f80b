"""SVM estimator, grid search, run files, class mapping and metrics."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from ferkit.errors import FerkitError
from ferkit.evaluation import classification_report_dict, map_classes
from ferkit.models import load_run, save_sklearn_run
from ferkit.models.svm import SVMClassifier
from ferkit.training.svm import search_svm


def blobs(n_per: int = 30, k: int = 3, d: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, d))
    x = np.concatenate([rng.normal(c, 1.0, (n_per, d)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(k), n_per)
    return x, y


@pytest.mark.parametrize("method", ["exact", "pca", "fast"])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_svm_methods_learn_blobs(method: str, kernel: str) -> None:
    x, y = blobs()
    xt, yt = blobs(seed=0)
    clf = SVMClassifier(
        method=method, kernel=kernel, C=1.0, pca_components=8, nystroem_components=50
    ).fit(x, y)
    assert accuracy_score(yt, clf.predict(xt)) > 0.9


def test_pca_method_reduces_then_fits_an_exact_svc() -> None:
    x, y = blobs(d=40)
    clf = SVMClassifier(method="pca", pca_components=5).fit(x, y)
    assert [name for name, _ in clf.pipeline_.steps] == ["scale", "pca", "svm"]
    assert clf.pipeline_.named_steps["pca"].n_components_ == 5
    assert type(clf.pipeline_.named_steps["svm"]).__name__ == "SVC"
    exact = SVMClassifier(method="exact").fit(x, y)
    assert [name for name, _ in exact.pipeline_.steps] == ["scale", "svm"]


def test_svm_bad_inputs() -> None:
    x, y = blobs()
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 sample"):
        SVMClassifier().fit(x, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        SVMClassifier().fit(blobs()[0], np.zeros(90, dtype=int))
    with pytest.raises(ValueError, match="unknown SVM method"):
        SVMClassifier(method="magic").fit(*blobs())
    with pytest.raises(ValueError, match="head must be ridge or hinge"):
        SVMClassifier(method="fast", head="huber").fit(*blobs())
    with pytest.raises(ValueError, match="2-D array"):
        SVMClassifier().fit(np.zeros((4, 2, 2)), [0, 1, 0, 1])


def test_grid_search_ranks_the_seed_grid() -> None:
    x, y = blobs(n_per=12)
    result = search_svm(x, y, "exact", cv=3, n_jobs=1)
    assert len(result["table"]) == 4 + 16  # linear x C, rbf x C x gamma
    scores = [r["mean_accuracy"] for r in result["table"]]
    assert scores == sorted(scores, reverse=True)
    assert result["best_params"] == result["table"][0]["params"]
    json.dumps(result)  # plain types only
    with pytest.raises(ValueError, match="at least 2 samples of every class"):
        search_svm(x[:13], np.r_[y[:12], 1], "exact")


def _card() -> dict:
    return {
        "classes": ["Anger", "Happy", "Sad"],
        "canonical": ["angry", "happy", "sad"],
        "image_size": 4,
        "color": "gray",
    }


def test_run_round_trip_without_pickle(tmp_path: Path) -> None:
    x, y = blobs(d=16)
    clf = SVMClassifier(kernel="linear").fit(x, y)
    save_sklearn_run(tmp_path / "run", clf, _card())
    assert not list((tmp_path / "run").glob("*.pkl"))
    run = load_run(tmp_path / "run")
    assert run.classes == ["Anger", "Happy", "Sad"] and run.image_size == 4
    assert np.array_equal(run.estimator.predict(x), clf.predict(x))
    assert json.loads((tmp_path / "run" / "model.json").read_text())["kind"] == "sklearn"


def test_tampered_or_missing_run_files(tmp_path: Path) -> None:
    x, y = blobs(d=16)
    save_sklearn_run(tmp_path / "run", SVMClassifier().fit(x, y), _card())
    (tmp_path / "run" / "model.skops").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(FerkitError, match=r"model\.skops: weights do not match the checksum"):
        load_run(tmp_path / "run")
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    card["weights_sha256"] = hashlib.sha256(b"PK\x03\x04 garbage").hexdigest()
    (tmp_path / "run" / "model.json").write_text(json.dumps(card))
    with pytest.raises(FerkitError, match=r"model\.skops: cannot load the model"):
        load_run(tmp_path / "run")
    with pytest.raises(FerkitError, match="not a ferkit run"):
        load_run(tmp_path)
    (tmp_path / "run" / "model.skops").unlink()
    with pytest.raises(FerkitError, match="model file is missing"):
        load_run(tmp_path / "run")


class Stranger:
    """A type no ferkit run contains: loading a file that holds one must be refused."""

    def __init__(self) -> None:
        self.payload = 1


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    save_sklearn_run(tmp_path / "run", Stranger(), _card())
    with pytest.raises(FerkitError, match=r"refuses to load unexpected types \[.*Stranger"):
        load_run(tmp_path / "run")


def test_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, 200))
    report = classification_report_dict(y_true, y_pred, ["a", "b", "c", "d"])
    assert report["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert report["confusion_matrix"] == confusion_matrix(y_true, y_pred).tolist()
    assert sum(m["support"] for m in report["per_class"].values()) == 200
    with pytest.raises(ValueError, match="no samples"):
        classification_report_dict(np.array([]), np.array([]), ["a"])


def test_mapping_drops_classes_the_model_lacks() -> None:
    affectnet = ["Anger", "Contempt", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
    aff_canon = ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    fer = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    mapping = map_classes(affectnet, aff_canon, fer, fer)
    assert mapping.dropped == ["Contempt"]
    keep, mapped = mapping.apply(np.array([0, 1, 6, 5]))
    assert keep.tolist() == [0, 2, 3] and mapped.tolist() == [0, 4, 6]
    assert "Sad -> sad" in mapping.lines()
    assert "Contempt -> (not a model class: samples dropped)" in mapping.lines()
    ck = map_classes(["sadness", "happiness"], ["sad", "happy"], fer, fer)
    assert ck.data_to_model.tolist() == [4, 3]
    with pytest.raises(FerkitError, match="share none"):
        map_classes(["contempt"], ["contempt"], fer, fer)


class BrightnessModel:
    """Predicts the fixture class from mean brightness (the fixtures encode it that way)."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.clip(np.round((images.mean(axis=(1, 2, 3)) - 40) / 60), 0, 2).astype(int)


def test_evaluate_run_writes_report_and_agrees_with_sklearn(tmp_path: Path) -> None:
    from conftest import make_folders
    from ferkit.data import load_dataset
    from ferkit.evaluation import evaluate_run
    from ferkit.models import Run

    root = make_folders(tmp_path / "d", classes=("angry", "happy", "sad"), size=24, mode="L")
    run = Run(
        tmp_path / "bright",
        "sklearn",
        ["Anger", "Happy", "Sad"],
        ["angry", "happy", "sad"],
        24,
        "gray",
        BrightnessModel(),
        {"name": "bright"},
    )
    report = evaluate_run(run, root, "val", tmp_path / "out")
    data = load_dataset(root, splits=["val"]).split("val")
    expected = BrightnessModel().predict(data.images)
    assert report["accuracy"] == pytest.approx(accuracy_score(data.labels, expected))
    assert report["accuracy"] > 0.9 and report["n"] == 12
    assert report["mapping"] == ["angry -> Anger", "happy -> Happy", "sad -> Sad"]
    for name in ("metrics.json", "confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    other = Run(run.path, "sklearn", run.classes, run.canonical, 32, "gray", BrightnessModel())
    with pytest.raises(FerkitError, match="expects 32x32 gray images"):
        other.prepare(data)


def test_evaluate_maps_a_subset_of_classes(tmp_path: Path) -> None:
    from conftest import make_folders
    from ferkit.evaluation import evaluate_run
    from ferkit.models import Run

    root = make_folders(tmp_path / "d", classes=("anger", "contempt", "sadness"), size=24)
    run = Run(
        tmp_path / "r",
        "sklearn",
        ["angry", "happy", "sad"],
        ["angry", "happy", "sad"],
        24,
        "gray",
        BrightnessModel(),
    )
    report = evaluate_run(run, root, "val")
    assert report["dropped_classes"] == ["contempt"]
    assert report["n"] == 8 and report["per_class"]["happy"]["support"] == 0


def test_evaluate_without_a_split_scores_an_unsplit_folder_whole(tmp_path: Path) -> None:
    """A test set dropped in as bare class folders is scored whole when no split is named;
    a split that is named must exist, and a split dataset still defaults to val."""
    from conftest import make_folders
    from ferkit.errors import SplitNotFoundError
    from ferkit.evaluation import evaluate_run
    from ferkit.models import Run

    names = ["Anger", "Happy", "Sad"]
    run = Run(
        tmp_path / "r", "sklearn", names, ["angry", "happy", "sad"], 24, "gray", BrightnessModel()
    )
    bare = make_folders(tmp_path / "bare", splits=None, per_class=5)
    report = evaluate_run(run, bare)
    assert report["split"] == "all" and report["n"] == 15 and report["accuracy"] > 0.9
    with pytest.raises(SplitNotFoundError, match="no split 'val'; this dataset has all"):
        evaluate_run(run, bare, "val")
    split = make_folders(tmp_path / "split", splits=("train", "val", "test"), per_class=2)
    assert evaluate_run(run, split)["split"] == "val"
    only_test = make_folders(tmp_path / "only-test", splits=("test",), per_class=2)
    with pytest.raises(SplitNotFoundError, match="no split 'val'; this dataset has test"):
        evaluate_run(run, only_test)


def _pixel_svm_run(root: Path, out: Path, name: str, C: float) -> Path:
    """A real saved run: flatten pixels -> SVM, trained on the fixture's train split."""
    from sklearn.pipeline import Pipeline

    from ferkit.data import load_dataset
    from ferkit.features.raw import RawPixels

    ds = load_dataset(root)
    train = ds.split("train")
    flat = RawPixels(progress=False, cache=False)  # a type ferkit's allow-list admits
    pipe = Pipeline([("flat", flat), ("svm", SVMClassifier(kernel="linear", C=C))])
    pipe.fit(train.images, train.labels)
    card = {
        "name": name,
        "classes": ds.classes,
        "canonical": ds.canonical,
        "image_size": 24,
        "color": "gray",
    }
    return save_sklearn_run(out / name, pipe, card)


def test_evaluate_and_compare_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from conftest import make_folders
    from ferkit.cli import app

    root = make_folders(tmp_path / "d", per_class=6, size=24)
    runs = [_pixel_svm_run(root, tmp_path, n, c) for n, c in (("svm-a", 1.0), ("svm-b", 0.01))]
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(runs[0]),
            str(root),
            "--split",
            "val",
            "--json",
            str(tmp_path / "m.json"),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "accuracy" in result.stdout and metrics["n"] == 18
    low, high = metrics["accuracy_ci"]  # 95% intervals in the JSON and the printed line
    assert low <= metrics["accuracy"] <= high and len(metrics["macro_f1_ci"]) == 2
    assert "95% CI" in result.stdout and len(metrics["predictions"]["y_pred"]) == 18
    assert (tmp_path / "e" / "confusion_matrix.png").is_file()
    result = runner.invoke(
        app,
        [
            "compare",
            *map(str, runs),
            "--data",
            str(root),
            "--split",
            "val",
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "c" / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("model,accuracy,accuracy_low,accuracy_high,macro_f1")
    assert len(lines) == 3
    assert "svm-a" in result.stdout and "svm-b" in result.stdout
    assert "Paired tests (McNemar" in result.stdout  # same split: a verdict, never a guess
    assert "svm-a vs svm-b" in result.stdout or " beats " in result.stdout
    assert (tmp_path / "c" / "comparison.png").is_file()
    bad = runner.invoke(app, ["evaluate", str(tmp_path), str(root)])
    assert bad.exit_code == 2 and "not a ferkit run" in bad.stderr


def _stripes(label: int, seed: int, size: int = 32) -> np.ndarray:
    """Class 0: horizontal stripes, 1: vertical, 2: diagonal; random phase and noise.

    Both brightness (raw pixels) and orientation (HOG) separate these classes.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    coord = (yy, xx, xx + yy)[label]
    wave = np.sin(coord * 2 * np.pi / 6 + rng.uniform(0, 2 * np.pi))
    img = 60 + 50 * label + 40 * wave + rng.normal(0, 8, (size, size))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _stripe_yolo(root: Path, per_class: int = 8) -> Path:
    from PIL import Image

    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for label in range(3):
            for i in range(per_class):
                stem = f"{label}_{i}"
                seed = 1000 * (split == "valid") + 100 * label + i
                Image.fromarray(_stripes(label, seed)).save(root / split / "images" / f"{stem}.png")
                (root / split / "labels" / f"{stem}.txt").write_text(f"{label} 0.5 0.5 1 1\n")
    (root / "data.yaml").write_text(
        "train: train/images\nval: valid/images\nnames: [Anger, Happy, Sad]\n"
    )
    return root


@pytest.mark.parametrize(("features", "method"), [("raw", "exact"), ("hog", "fast")])
def test_svm_command_trains_a_run_that_evaluates(
    tmp_path: Path, features: str, method: str
) -> None:
    from typer.testing import CliRunner

    from ferkit.cli import app

    root = _stripe_yolo(tmp_path / "d")
    run_dir = tmp_path / f"{features}-{method}"
    runner = CliRunner()
    args = [
        "svm",
        str(root),
        "--out",
        str(run_dir),
        "--features",
        features,
        "--method",
        method,
        "--search",
        "--search-size",
        "24",
        "--margin",
        "2",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["search"]["split"] == "valid" and summary["search"]["samples"] == 24
    assert summary["train_samples"] == 18  # 8 per class undersampled to 8 - 2
    assert summary["params"]["method"] == method
    assert {p.name for p in run_dir.iterdir()} == {"model.json", "model.skops", "train.json"}
    card = json.loads((run_dir / "model.json").read_text())
    assert card["features"] == features and card["classes"] == ["Anger", "Happy", "Sad"]
    metrics = tmp_path / "m.json"
    result = runner.invoke(
        app, ["evaluate", str(run_dir), str(root), "--split", "valid", "--json", str(metrics)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(metrics.read_text())["accuracy"] > 0.9


def test_train_svm_search_on_train_and_fixed_params(tmp_path: Path) -> None:
    from conftest import make_folders
    from ferkit.data import load_dataset
    from ferkit.errors import SplitNotFoundError
    from ferkit.models import load_run
    from ferkit.training.svm import train_svm

    root = make_folders(tmp_path / "d", per_class=6, size=24)
    lines: list[str] = []
    summary = train_svm(root, tmp_path / "r", features="raw", search_on="train", search_size=18,
                        progress=False, log=lines.append)  # fmt: skip
    assert summary["search"]["split"] == "train"
    best = summary["search"]["best_params"]
    assert lines[0].startswith(f"search on 18 train images: {best} (CV accuracy ")
    assert lines[1].startswith(f"raw features of {summary['train_samples']} train images in ")
    assert re.fullmatch(r"fitted in \d+ s", lines[2]) and len(lines) == 4
    assert re.fullmatch(r"validation accuracy \d\.\d{3}", lines[3])
    fixed = train_svm(
        root,
        tmp_path / "f",
        features="raw",
        search=False,
        params={"kernel": "linear", "C": 0.1},
        progress=False,
    )
    assert "search" not in fixed and fixed["params"]["kernel"] == "linear"
    run = load_run(tmp_path / "f")
    val = load_dataset(root).split("val")
    assert run.predict(run.prepare(val)).shape == (18,)
    with pytest.raises(SplitNotFoundError, match="no split 'holdout'"):
        train_svm(root, tmp_path / "x", features="raw", search_on="holdout", progress=False)


def test_svm_command_pca_components_reach_the_saved_model(tmp_path: Path) -> None:
    import zipfile

    from typer.testing import CliRunner

    from ferkit.cli import app
    from ferkit.models import load_run

    root = _stripe_yolo(tmp_path / "d")
    run_dir = tmp_path / "pca"
    args = ["svm", str(root), "--out", str(run_dir), "--features", "hog", "--method", "pca"]
    args += ["--pca-components", "4", "--search", "--search-size", "24", "--margin", "2"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["params"]["pca_components"] == 4
    svm = load_run(run_dir).estimator.named_steps["svm"]
    assert svm.pipeline_.named_steps["pca"].n_components_ == 4
    # the saved file is deflated: fitted float64 arrays from float32 features compress well
    with zipfile.ZipFile(run_dir / "model.skops") as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    result = CliRunner().invoke(app, [*args[:-6], "--pca-components", "0"])
    assert result.exit_code != 0 and "pca-components" in result.output


def test_empty_split_is_a_clear_error_naming_the_dataset(tmp_path: Path) -> None:
    from conftest import make_folders
    from ferkit.errors import DatasetError
    from ferkit.evaluation import evaluate_run
    from ferkit.training.svm import train_svm

    root = make_folders(tmp_path / "d", per_class=4, size=24)
    fixed = {"kernel": "linear", "C": 1.0}
    train_svm(root, tmp_path / "r", features="raw", search=False, params=fixed, progress=False)
    for path in (root / "val").rglob("*.jpg"):
        path.write_bytes(b"")  # every val image unreadable: the split loads empty
    with pytest.raises(DatasetError, match=r"split 'val' has no usable image \(12 item") as err:
        evaluate_run(tmp_path / "r", root, "val", None)
    assert str(root) in str(err.value) and "img_0.jpg" in str(err.value)
    with pytest.raises(DatasetError, match="split 'val' has no usable image"):
        train_svm(root, tmp_path / "s", features="raw", search_on="val", progress=False)


def test_ship_run_copies_a_loadable_run_with_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import make_folders
    from ferkit import weights
    from ferkit.data import load_dataset
    from ferkit.errors import FerkitError
    from ferkit.models import load_run
    from ferkit.models.shipping import ship_run
    from ferkit.training.svm import train_svm

    root = make_folders(tmp_path / "d", per_class=4, size=24)
    fixed = {"kernel": "linear", "C": 1.0}
    train_svm(root, tmp_path / "r", features="raw", search=False, params=fixed, progress=False)
    dest = tmp_path / "weights"
    command = "ferkit svm d --features raw --out r"
    target = ship_run(tmp_path / "r", "tiny", command, {"accuracy": 0.5}, dest=dest)
    run = load_run(target)
    assert run.card["command"] == command and run.card["validation"] == {"accuracy": 0.5}
    assert run.card["name"] == "tiny" and (target / "train.json").is_file()
    val = load_dataset(root).split("val")
    assert (run.predict(run.prepare(val)) == load_run(tmp_path / "r").predict(val.images)).all()
    monkeypatch.setattr(weights, "MAX_SHIPPED_BYTES", 100)
    with pytest.raises(FerkitError, match="over the"):
        ship_run(tmp_path / "r", "big", command, dest=dest)
    (tmp_path / "r" / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(FerkitError, match="weights do not match the checksum"):
        ship_run(tmp_path / "r", "broken", command, dest=dest)
    assert not (dest / "big").exists() and not (dest / "broken").exists()


class RecordingModel:
    """Predicts class 1 (happy) for everything and keeps what it was shown."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.seen.append(images)
        return np.ones(len(images), dtype=int)


def test_evaluate_photos_scores_their_largest_faces(tmp_path: Path) -> None:
    """``faces="detect"``: each photo is cut to its largest face as predict cuts it; photos
    without a face are listed with the reason, not scored and not silently dropped."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    from ferkit.evaluation import evaluate_run
    from ferkit.faces import largest_face
    from ferkit.models import Run

    photo = skimage_data.astronaut()
    root = tmp_path / "photos"
    for split in ("val",):
        (root / split / "happy").mkdir(parents=True)
        (root / split / "sad").mkdir(parents=True)
    Image.fromarray(photo).save(root / "val" / "happy" / "a.png")
    Image.fromarray(photo[:, ::-1]).save(root / "val" / "happy" / "b.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "val" / "sad" / "noise.png")
    recorder = RecordingModel()
    run = Run(tmp_path / "r", "sklearn", ["sad", "happy"], ["sad", "happy"], 48, "gray", recorder)
    report = evaluate_run(run, root, faces="detect", progress=False)
    assert report["faces"] == "detect" and report["n"] == 2 and report["accuracy"] == 1.0
    assert report["no_face"] == [
        {"file": str(root / "val" / "sad" / "noise.png"), "reason": "no face found"}
    ]
    face, found = largest_face(photo, run)
    assert found == 1 and face is not None
    np.testing.assert_array_equal(recorder.seen[-1][0], face.crop)
    given = evaluate_run(run, root, progress=False)  # as crops: the whole photo, squeezed
    assert given["n"] == 3 and given["no_face"] == [] and given["faces"] == "given"
    with pytest.raises(FerkitError, match="faces must be one of given, detect"):
        evaluate_run(run, root, faces="crop")
    (root / "val" / "happy" / "a.png").unlink()
    (root / "val" / "happy" / "b.jpg").unlink()
    Image.fromarray(noise).save(root / "val" / "happy" / "noise2.png")
    with pytest.raises(FerkitError, match="no face found in any of the 2 images"):
        evaluate_run(run, root, faces="detect", progress=False)
    boxed = tmp_path / "boxed"  # a detection export: its labels box the faces already
    for sub in ("images", "labels"):
        (boxed / "val" / sub).mkdir(parents=True)
    Image.fromarray(photo).save(boxed / "val" / "images" / "p.png")
    (boxed / "val" / "labels" / "p.txt").write_text("1 0.43 0.24 0.2 0.2\n")
    (boxed / "data.yaml").write_text('val: val/images\nnames: ["sad", "happy"]\n')
    assert evaluate_run(run, boxed, progress=False)["n"] == 1
    with pytest.raises(FerkitError, match=r"p\.png#box1: this dataset's labels box its faces"):
        evaluate_run(run, boxed, faces="detect", progress=False)
