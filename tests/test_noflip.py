"""Flip test-time augmentation outside the ONNX graph, and the switch that skips it (issue 19).

A flip-averaged network exported with ``flip="outside"`` scores one view in the graph and
``OnnxClassifier`` adds the mirror: it must answer as the graph with the flip inside and as the
torch network. ``Predictor(flip=False)`` / ``--no-flip`` must equal the same network built
without flip averaging, without changing a run others share. Runs are tiny fernets built, not
trained (random BatchNorm statistics, as in tests/test_onnx.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import trained_like_bn
from ferkit.cli import app
from ferkit.errors import FerkitError, ModelFileError
from ferkit.inference import Predictor
from ferkit.models import load_run
from ferkit.models.flip import flips_averaged, has_flip_tta, single_view
from ferkit.models.nets import create_model
from ferkit.models.onnx_run import FLIP_OUTSIDE, OnnxClassifier
from ferkit.models.torch_run import save_torch_run
from ferkit.weights import shipped_models

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

runner = CliRunner()
TOL = 1e-5
SIZE = 32
CLASSES = ["angry", "happy", "sad"]


def tiny_network(flip_average: bool) -> torch.nn.Module:
    """The same weights every call: a fernet whose BN layers hold random statistics."""
    torch.manual_seed(0)
    model = create_model("fernet", 3, 3, SIZE, width=0.25, flip_average=flip_average)
    trained_like_bn(model, running_stats=True)
    model.head.weight.data.mul_(0.05)  # probabilities away from 0 and 1, so tolerances bite
    return model.eval()


def save(folder: Path, flip_average: bool = True) -> Path:
    card = {
        "classes": CLASSES,
        "canonical": CLASSES,
        "image_size": SIZE,
        "color": "rgb",
        "mean": [0.55, 0.45, 0.40],
        "std": [0.22, 0.20, 0.21],
    }
    return save_torch_run(folder, tiny_network(flip_average), card)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), np.uint8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The flip-averaged network exported both ways, and the same weights without flip TTA."""
    from ferkit.models.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("noflip")
    inside, outside = save(root / "inside"), save(root / "outside")
    export_onnx(inside)
    export_onnx(outside, flip="outside")
    plain = save(root / "plain", flip_average=False)
    export_onnx(plain, flip="outside")  # nothing to flip: recorded as a plain graph
    return {"inside": inside, "outside": outside, "plain": plain}


def card(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "model.json").read_text())


def test_outside_flip_graph_equals_inside_graph_and_torch(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "flip" not in card(runs["inside"])["onnx"]  # absent: inside, as before the key
    assert card(runs["outside"])["onnx"]["flip"] == FLIP_OUTSIDE
    assert "flip" not in card(runs["plain"])["onnx"]
    x = images(7)
    torch_run = load_run(runs["outside"], backend="torch")
    expected = torch_run.estimator.predict_proba(x)
    embedding = torch_run.estimator.embed(x)
    inside = load_run(runs["inside"], backend="onnx").estimator
    outside = load_run(runs["outside"], backend="onnx").estimator
    assert inside.graph_flip == "inside" and outside.mirror
    for estimator in (inside, outside):
        assert np.abs(estimator.predict_proba(x) - expected).max() < TOL
        assert np.abs(estimator.embed(x) - embedding).max() < TOL
    # the mirror in a second session call (large batches) answers as in the same call
    calls: list[int] = []
    run = outside.session.run
    monkeypatch.setattr(
        outside.session, "run", lambda o, f: calls.append(len(f["images"])) or run(o, f)
    )
    monkeypatch.setattr(OnnxClassifier, "MIRROR_ONE_CALL_MAX", 4)
    assert np.abs(outside.predict_proba(x) - expected).max() < TOL
    assert np.abs(outside.predict_proba(x[:4]) - expected[:4]).max() < TOL
    assert calls == [7, 7, 8]
    # the single view is really one view: it differs from the average
    single = load_run(runs["outside"], backend="onnx")
    single.estimator.flip = False
    assert np.abs(single.estimator.predict_proba(x) - expected).max() > 1e-3


def test_flip_false_is_the_network_without_flip_averaging(runs: dict[str, Path]) -> None:
    x = images(5, seed=3)
    without = load_run(runs["plain"], backend="torch").estimator.predict_proba(x)
    for name, backend in (("outside", "onnx"), ("outside", "torch"), ("inside", "onnx")):
        run = load_run(runs[name], backend=backend)
        averaged = run.estimator.predict_proba(x)
        single = single_view(run)
        assert flips_averaged(run) and not flips_averaged(single)
        assert np.abs(single.estimator.predict_proba(x) - without).max() < TOL, (name, backend)
        # the run given is untouched: it still averages both views
        assert np.array_equal(run.estimator.predict_proba(x), averaged)
    # an inside graph cannot drop its mirror: the torch network answers instead
    assert single_view(load_run(runs["inside"], backend="onnx")).backend == "torch"
    assert single_view(load_run(runs["outside"])).backend == "onnx"
    plain = load_run(runs["plain"])
    assert not has_flip_tta(plain.card) and single_view(plain) is plain


def test_predictor_flip_false_leaves_a_shared_run_alone(runs: dict[str, Path]) -> None:
    shared = load_run(runs["outside"])
    single = Predictor(shared, detect=False, flip=False)
    both = Predictor(shared, detect=False)
    assert shared.estimator.flip and single.run is not shared
    assert single.describe()["flip_averaged"] is False and single.options()["flip"] is False
    assert both.describe()["flip_averaged"] is True
    crop = images(1, seed=9)[0]
    p_single = single.predict_image(crop).faces[0].probabilities
    p_both = both.predict_image(crop).faces[0].probabilities
    assert p_single != p_both


def test_unknown_flip_value_is_refused_naming_the_card(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = Path(shutil.copytree(runs["outside"], tmp_path / "run"))
    data = card(run_dir)
    data["onnx"]["flip"] = "sideways"
    (run_dir / "model.json").write_text(json.dumps(data))
    for backend in ("auto", "onnx"):
        with pytest.raises(ModelFileError, match=r"model\.json: onnx\.flip must be.*sideways"):
            load_run(run_dir, backend=backend)
    with pytest.raises(FerkitError, match="flip must be one of"):
        from ferkit.models.onnx_export import export_onnx

        export_onnx(runs["plain"], tmp_path / "x.onnx", flip="both")


def test_cli_no_flip_reaches_predict_evaluate_and_serve(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crop = tmp_path / "crop.png"
    Image.fromarray(images(1, seed=4)[0]).save(crop)
    args = ["predict", str(crop), "--no-detect", "--model", str(runs["outside"]), "--json"]
    for extra, averaged in (([], True), (["--no-flip"], False)):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert document["model"]["flip_averaged"] is averaged
        assert document["options"]["flip"] is averaged

    data = tmp_path / "data"
    for i, name in enumerate(CLASSES):
        (data / name).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(images(1, seed=10 * i + j)[0]).save(data / name / f"{j}.png")
    for extra, averaged in (([], True), (["--no-flip"], False)):
        out = tmp_path / f"eval{len(extra)}.json"
        result = runner.invoke(
            app, ["evaluate", str(runs["outside"]), str(data), "--json", str(out), *extra]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["flip_averaged"] is averaged
        assert ("one view (--no-flip)" in result.stdout) is not averaged

    import ferkit.serve

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ferkit.serve, "serve", lambda model, **kw: seen.update(kw))
    result = runner.invoke(app, ["serve", "--model", str(runs["outside"]), "--no-flip"])
    assert result.exit_code == 0, result.output
    assert seen["flip"] is False


# shipped networks whose graphs keep the flip inside: affectnet's int8 graph re-made with the
# flip outside lost 0.31 points of valid accuracy (over the 0.3-point rule), its old one 0.296
FLIP_INSIDE = {"affectnet"}


@pytest.mark.parametrize(
    "name", [n for n in shipped_models() if has_flip_tta(load_run(n, backend="torch").card)]
)
def test_shipped_graphs_average_the_flip_and_can_skip_it(name: str) -> None:
    run = load_run(name)  # checksums of the card's int8 (or float) graph checked on load
    entries = [run.card["onnx"], *([run.card["onnx_int8"]] if "onnx_int8" in run.card else [])]
    if name in FLIP_INSIDE:
        # its graphs keep the flip inside: one view is the torch network's
        assert all("flip" not in entry for entry in entries)
        assert run.estimator.precision == "int8"
        single = single_view(run)
        assert single.backend == "torch"
        return
    assert all(entry.get("flip") == FLIP_OUTSIDE for entry in entries)
    if "onnx_int8" in run.card:
        assert run.estimator.precision == "int8"
        assert run.card["onnx_int8"]["onnx_sha256"] == run.card["onnx"]["sha256"]
    assert run.estimator.mirror
    single = single_view(run)
    assert single.backend == "onnx" and not single.estimator.mirror
    x = np.random.default_rng(0).integers(
        0, 256, (4, run.image_size, run.image_size, 1 if run.color == "gray" else 3), np.uint8
    )
    fp32 = single_view(load_run(name, backend="onnx-fp32")).estimator.predict_proba(x)
    torch_single = single_view(load_run(name, backend="torch")).estimator.predict_proba(x)
    assert np.abs(fp32 - torch_single).max() < 1e-4
