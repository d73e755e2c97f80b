"""ONNX export and the onnxruntime backend: same numbers as torch, chosen when safe, forced on
demand, refused when tampered with; ``ferkit export`` through the CLI runner.

Runs are built, not trained: a freshly initialised network with randomised BatchNorm statistics
and affine parameters (so BN folding and the baked-in normalisation are really exercised) saved
with ``save_torch_run``; export and inference on such tiny networks take a fraction of a second.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import trained_like_bn
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models import load_run, save_sklearn_run
from ferkit.models.nets import create_model
from ferkit.models.onnx_export import DEFAULT_OPSET, export_onnx
from ferkit.models.onnx_run import OnnxClassifier
from ferkit.models.torch_run import TorchClassifier, save_torch_run, sha256

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

runner = CliRunner()
TOL = 1e-4
# name -> (constructor options, channels, image size): small widths keep each export < 1 s
ARCHS = {
    "seedcnn": ({"dense_units": 16}, 1, 48),
    "fernet": ({"width": 0.25}, 3, 32),
    "cnn10": ({"dense_units": 16}, 3, 32),
}


def build_run(folder: Path, arch: str) -> Path:
    """A run of ``arch`` whose BN layers hold random statistics, like a trained network's."""
    kwargs, channels, size = ARCHS[arch]
    torch.manual_seed(0)
    model = create_model(arch, 3, channels, size, **kwargs)
    trained_like_bn(model, running_stats=True)
    card = {
        "classes": ["Anger", "Happy", "Sad"],
        "canonical": ["angry", "happy", "sad"],
        "image_size": size,
        "color": "gray" if channels == 1 else "rgb",
        "mean": [0.52] * channels if channels == 1 else [0.55, 0.45, 0.40],
        "std": [0.25] * channels if channels == 1 else [0.22, 0.20, 0.21],
    }
    return save_torch_run(folder, model, card)


def images_for(run_dir: Path, n: int, seed: int = 0) -> np.ndarray:
    card = json.loads((run_dir / "model.json").read_text())
    channels = 1 if card["color"] == "gray" else 3
    size = card["image_size"]
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One exported run per architecture (tests that alter files work on copies)."""
    root = tmp_path_factory.mktemp("onnx")
    runs = {}
    for arch in ARCHS:
        run_dir = build_run(root / arch, arch)
        export_onnx(run_dir)
        runs[arch] = run_dir
    return runs


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / run_dir.name))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_onnxruntime_matches_torch_for_batch_1_and_7(
    exported: dict[str, Path], arch: str, tmp_path: Path
) -> None:
    run_dir = exported[arch]
    torch_run = load_run(run_dir, backend="torch")
    onnx_run = load_run(run_dir, backend="onnx")
    assert isinstance(onnx_run.estimator, OnnxClassifier)
    for n in (1, 7):
        images = images_for(run_dir, n, seed=n)
        expected = torch_run.estimator.predict_proba(images)
        got = onnx_run.estimator.predict_proba(images)
        assert got.shape == (n, 3)
        assert np.abs(got - expected).max() < TOL
        embedding = onnx_run.estimator.embed(images)
        assert np.abs(embedding - torch_run.estimator.embed(images)).max() < TOL
    graph_input = onnx_run.estimator.session.get_inputs()[0]
    assert graph_input.type == "tensor(uint8)" and isinstance(graph_input.shape[0], str)


def test_card_records_the_export_and_keeps_every_other_field(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "run", "seedcnn")
    before = json.loads((run_dir / "model.json").read_text())
    result = export_onnx(run_dir)
    after = json.loads((run_dir / "model.json").read_text())
    entry = after.pop("onnx")
    assert after == before and list(after) == list(before)
    data = (run_dir / "model.onnx").read_bytes()
    assert result.path == run_dir / "model.onnx" and result.card_updated
    assert entry["file"] == "model.onnx" and entry["opset"] == DEFAULT_OPSET
    assert entry["sha256"] == sha256(data) == result.sha256
    assert entry["input"]["layout"] == "NHWC" and entry["input"]["dtype"] == "uint8"
    assert entry["input"]["shape"] == ["batch", 48, 48, 1] and entry["batch"] == "dynamic"
    assert entry["outputs"] == {"logits": ["batch", 3], "embedding": ["batch", 16]}
    assert entry["weights_sha256"] == before["weights_sha256"]
    assert result.max_abs_diff is not None and result.max_abs_diff < TOL
    assert not list(run_dir.glob(".*.tmp"))  # the atomic writes left nothing behind
    meta = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["classes"]) == before["classes"]


def test_load_run_picks_onnx_automatically_and_torch_when_forced(
    exported: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FERKIT_BACKEND", raising=False)
    run_dir = exported["fernet"]
    auto = load_run(run_dir)
    assert isinstance(auto.estimator, OnnxClassifier) and auto.backend == "onnx"
    forced = load_run(run_dir, backend="torch")
    assert isinstance(forced.estimator, TorchClassifier) and forced.backend == "torch"
    images = images_for(run_dir, 20, seed=3)
    assert np.array_equal(auto.predict(images), forced.predict(images))
    np.testing.assert_allclose(
        auto.estimator.predict_proba(images), forced.estimator.predict_proba(images), atol=TOL
    )
    assert auto.estimator.predict_proba(images[:0]).shape == (0, 3)
    assert auto.predict(images[:0]).shape == (0,)

    monkeypatch.setenv("FERKIT_BACKEND", "torch")
    assert load_run(run_dir).backend == "torch"
    assert load_run(run_dir, backend="onnx").backend == "onnx"  # the parameter wins
    monkeypatch.setenv("FERKIT_BACKEND", "ONNX")
    assert load_run(run_dir).backend == "onnx"
    monkeypatch.setenv("FERKIT_BACKEND", "tensorrt")
    with pytest.raises(FerkitError, match="FERKIT_BACKEND must be one of auto, torch, onnx"):
        load_run(run_dir)
    with pytest.raises(FerkitError, match="backend must be one of"):
        load_run(run_dir, backend="gpu")


def test_tampered_onnx_errors_when_forced_and_falls_back_under_auto(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = copy_run(exported["seedcnn"], tmp_path)
    onnx_file = run_dir / "model.onnx"
    blob = bytearray(onnx_file.read_bytes())
    blob[-10] ^= 0xFF
    onnx_file.write_bytes(bytes(blob))
    with pytest.raises(FerkitError, match=r"model\.onnx: does not match the sha256"):
        load_run(run_dir, backend="onnx")
    with pytest.warns(UserWarning, match=r"model\.onnx: does not match.*using the torch weights"):
        run = load_run(run_dir, backend="auto")
    assert isinstance(run.estimator, TorchClassifier)


def test_missing_or_stale_export(exported: dict[str, Path], tmp_path: Path) -> None:
    run_dir = copy_run(exported["seedcnn"], tmp_path)
    (run_dir / "model.onnx").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a removed export is a quiet fallback
        assert load_run(run_dir).backend == "torch"
    with pytest.raises(FerkitError, match=r"model\.onnx: the ONNX file named in model.json"):
        load_run(run_dir, backend="onnx")

    fresh = build_run(tmp_path / "fresh", "seedcnn")  # never exported
    with pytest.raises(FerkitError, match=r"no ONNX export \(run `ferkit export"):
        load_run(fresh, backend="onnx")

    stale = copy_run(exported["cnn10"], tmp_path)
    card = json.loads((stale / "model.json").read_text())
    card["onnx"]["weights_sha256"] = "0" * 64  # as if the weights changed after the export
    (stale / "model.json").write_text(json.dumps(card))
    with pytest.raises(FerkitError, match="stale export"):
        load_run(stale, backend="onnx")
    with pytest.warns(UserWarning, match="stale export"):
        assert load_run(stale).backend == "torch"


def test_without_onnxruntime_auto_is_torch_and_forced_names_the_package(
    exported: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    run_dir = exported["seedcnn"]
    assert load_run(run_dir).backend == "torch"
    with pytest.raises(FerkitError, match=r"needs onnxruntime \(pip install 'ferkit\[onnx\]'\)"):
        load_run(run_dir, backend="onnx")
    result = export_onnx(run_dir, tmp_path / "alone.onnx")  # export itself needs only onnx
    assert result.max_abs_diff is None and (tmp_path / "alone.onnx").is_file()

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(FerkitError, match=r"needs the 'onnx' package.*ferkit\[onnx\]"):
        export_onnx(run_dir, tmp_path / "x.onnx")


def test_fixed_batch_and_standalone_file(exported: dict[str, Path], tmp_path: Path) -> None:
    run_dir = copy_run(exported["fernet"], tmp_path)
    card_before = (run_dir / "model.json").read_text()
    result = export_onnx(run_dir, tmp_path / "deploy" / "fernet7.onnx", batch=7, opset=13)
    assert not result.card_updated and (run_dir / "model.json").read_text() == card_before
    assert result.batch == 7 and result.opset == 13 and result.max_abs_diff < TOL
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [7, 32, 32, 3]
    clf = OnnxClassifier(session)
    images = images_for(run_dir, 10, seed=5)  # 7 + a padded chunk of 3
    expected = load_run(run_dir, backend="torch").estimator.predict_proba(images)
    assert np.abs(clf.predict_proba(images) - expected).max() < TOL
    with pytest.raises(FerkitError, match=r"takes \(32, 32, 3\) images"):
        clf.predict(images[:, :16])
    with pytest.raises(FerkitError, match="uint8 pixels"):
        clf.predict(images.astype(np.float32) / 255)
    for bad, match in [({"opset": 8}, "opset must be"), ({"batch": 0}, "batch must be")]:
        with pytest.raises(FerkitError, match=match):
            export_onnx(run_dir, **bad)


def test_sklearn_runs_cannot_be_exported(tmp_path: Path) -> None:
    from ferkit.models.svm import SVMClassifier

    x, y = np.random.default_rng(0).normal(size=(6, 16)), np.array([0, 1, 2] * 2)
    card = {"classes": ["a", "b", "c"], "canonical": ["a", "b", "c"], "image_size": 4}
    clf = SVMClassifier(kernel="linear").fit(x, y)
    save_sklearn_run(tmp_path / "svm", clf, {**card, "color": "gray"})
    with pytest.raises(FerkitError, match="only network runs can be exported"):
        export_onnx(tmp_path / "svm")
    assert load_run(tmp_path / "svm", backend="onnx").backend == "sklearn"  # nothing to force


def test_explain_still_uses_torch_on_an_exported_run(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    from PIL import Image

    from ferkit.evaluation.explain import explain_image

    face = tmp_path / "face.png"
    Image.fromarray(images_for(exported["seedcnn"], 1)[0, ..., 0]).save(face)
    result = explain_image(load_run(exported["seedcnn"]), face, tmp_path / "e", max_maps=4)
    assert result["predicted"]["class"] in ("angry", "happy", "sad")


def test_cli_export(exported: dict[str, Path], tmp_path: Path) -> None:
    run_dir = copy_run(exported["cnn10"], tmp_path)
    (run_dir / "model.onnx").unlink()
    result = runner.invoke(app, ["export", str(run_dir), "--onnx", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["path"] == str(run_dir / "model.onnx") and info["card_updated"] is True
    assert info["max_abs_diff"] < TOL and (run_dir / "model.onnx").is_file()
    assert load_run(run_dir).backend == "onnx"

    out = tmp_path / "out.onnx"
    text = runner.invoke(
        app, ["export", str(run_dir), "--onnx", "--out", str(out), "--opset", "18"]
    )
    assert text.exit_code == 0, text.output
    assert f"wrote {out}" in text.output and "max abs difference" in text.output
    assert out.is_file()

    missing = runner.invoke(app, ["export", str(run_dir)])
    assert missing.exit_code == 2 and "--onnx" in missing.output
    bad = runner.invoke(app, ["export", str(tmp_path / "nope"), "--onnx"])
    assert bad.exit_code == 2 and "not a ferkit run" in bad.output.replace("\n", " ")


# -- the int8 graph (issue 19): chosen when recorded, refused when tampered, missing or stale --


@pytest.fixture(scope="module")
def quantised(exported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seedcnn run with a static QDQ int8 graph recorded in its card, as shipped."""
    from ferkit.models.onnx_quantize import quantize_graph
    from ferkit.models.onnx_run import INT8_FILE, INT8_KEY

    run_dir = Path(shutil.copytree(exported["seedcnn"], tmp_path_factory.mktemp("q") / "run"))
    graph = quantize_graph(
        run_dir / "model.onnx", "qdq", images_for(run_dir, 64, seed=3), run_dir / INT8_FILE
    )
    card = json.loads((run_dir / "model.json").read_text())
    card[INT8_KEY] = {
        "file": INT8_FILE,
        "sha256": sha256(graph.read_bytes()),
        "weights_sha256": card["weights_sha256"],
    }
    (run_dir / "model.json").write_text(json.dumps(card))
    return run_dir


def test_int8_graph_is_the_default_and_close_to_the_float_one(quantised: Path) -> None:
    images = images_for(quantised, 16, seed=5)
    int8 = load_run(quantised)
    assert int8.backend == "onnx" and int8.estimator.precision == "int8"
    assert load_run(quantised, backend="onnx").estimator.precision == "int8"
    fp32 = load_run(quantised, backend="onnx-fp32")
    assert fp32.estimator.precision == "fp32"
    torch_probs = load_run(quantised, backend="torch").estimator.predict_proba(images)
    assert np.abs(fp32.estimator.predict_proba(images) - torch_probs).max() < TOL
    # int8 is an approximation: close, not equal (the real models' accuracy is in the card)
    assert np.abs(int8.estimator.predict_proba(images) - torch_probs).max() < 0.1


@pytest.mark.parametrize("damage", ["tampered", "missing", "stale"])
def test_bad_int8_graph_is_refused_or_falls_back_to_the_float_graph_loudly(
    quantised: Path, tmp_path: Path, damage: str
) -> None:
    run_dir = copy_run(quantised, tmp_path)
    path = run_dir / "model.int8.onnx"
    if damage == "tampered":
        blob = bytearray(path.read_bytes())
        blob[-10] ^= 0xFF
        path.write_bytes(bytes(blob))
        reason = r"model\.int8\.onnx: does not match the sha256"
    elif damage == "missing":
        path.unlink()
        reason = r"model\.int8\.onnx: the ONNX file named in model.json is missing"
    else:
        card = json.loads((run_dir / "model.json").read_text())
        card["onnx_int8"]["weights_sha256"] = "0" * 64
        (run_dir / "model.json").write_text(json.dumps(card))
        reason = r"model\.int8\.onnx: was exported from other weights"
    with pytest.raises(FerkitError, match=reason):
        load_run(run_dir, backend="onnx")
    with pytest.warns(UserWarning, match=reason + ".*using the float graph instead"):
        run = load_run(run_dir)
    assert run.backend == "onnx" and run.estimator.precision == "fp32"
    assert load_run(run_dir, backend="onnx-fp32").estimator.precision == "fp32"  # untouched


def test_ferkit_threads_sizes_every_onnxruntime_session(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferkit.faces.retinaface import model_bytes
    from ferkit.models.onnx_run import default_threads, make_session

    monkeypatch.setenv("FERKIT_THREADS", "1")
    assert default_threads() == 1
    graph = make_session(model_bytes())  # the face detector's graph, threads left to default
    assert graph.get_session_options().intra_op_num_threads == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("FERKIT_THREADS", bad)
        with pytest.raises(FerkitError, match="FERKIT_THREADS must be a positive integer"):
            default_threads()
    monkeypatch.delenv("FERKIT_THREADS")
    assert default_threads() >= 1
