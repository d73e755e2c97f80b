"""No command writes into the installed package: shipped models stay as they were shipped.

Exporting ``affectnet`` once wrote ``model.onnx`` into ``ferkit/weights/affectnet/`` and
rewrote its card, so every later load of ``affectnet`` silently switched backend. These tests
hash every file of the package before and after the commands that take a shipped model, and
check what ``export`` now does with one: a copy of the run in ``--out``, never in place.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import ferkit
from conftest import make_yolo
from ferkit.cli import app
from ferkit.models import load_run, onnx_export
from ferkit.models.onnx_export import export_onnx
from ferkit.weights import WEIGHTS_DIR

runner = CliRunner()
PACKAGE = Path(ferkit.__file__).resolve().parent
AFFECTNET_CLASSES = ("Anger", "Happy", "Sad")


def package_hashes() -> dict[str, str]:
    """SHA-256 of every file under the package (bytecode caches aside), by relative path."""
    return {
        path.relative_to(PACKAGE).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(PACKAGE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture
def unchanged_package() -> Iterator[None]:
    """Fails the test when any file of the package was added, removed or changed."""
    before = package_hashes()
    yield
    after = package_hashes()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"files of the package changed: {changed}"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


COMMANDS = {  # every command that reads a shipped model (export: see the tests below)
    "models": ["models"],
    "predict": ["predict", "{photo}", "--model", "affectnet", "--out", "{tmp}/p"],
    "predict-default": ["predict", "{photo}", "--out", "{tmp}/p"],
    "explain": ["explain", "affectnet", "{photo}", "--out", "{tmp}/e"],
    "evaluate": ["evaluate", "affectnet-hog-svm", "{data}", "--out", "{tmp}/ev"],
    "trust": ["trust", str(WEIGHTS_DIR / "affectnet")],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_on_shipped_models_leave_the_package_unchanged(
    unchanged_package: None, astronaut: np.ndarray, tmp_path: Path, command: str
) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    data = make_yolo(tmp_path / "data", classes=AFFECTNET_CLASSES, per_class=2, size=96)
    where = {"photo": photo, "tmp": tmp_path, "data": data}
    invoke(*(arg.format(**where) for arg in COMMANDS[command]))


def test_export_never_writes_into_the_package(unchanged_package: None) -> None:
    pytest.importorskip("onnx")
    for refused in (
        ["export", "affectnet", "--onnx"],
        ["export", str(WEIGHTS_DIR / "affectnet"), "--onnx"],
        ["export", "affectnet", "--onnx", "--out", str(WEIGHTS_DIR / "affectnet" / "x.onnx")],
        ["export", "fer2013", "--onnx", "--out", str(WEIGHTS_DIR / "copy")],
    ):
        result = runner.invoke(app, refused)
        assert result.exit_code == 2, result.output
        assert "ferkit package" in result.output.replace("\n", " ")
    # still the graph shipped with it (checked byte for byte by the fixture)
    assert load_run("affectnet").backend == "onnx"


def test_export_of_a_shipped_model_needs_out(unchanged_package: None) -> None:
    pytest.importorskip("onnx")
    result = runner.invoke(app, ["export", "affectnet", "--onnx"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "shipped inside the ferkit package" in text and "--out FOLDER" in text


def test_export_to_a_folder_writes_a_loadable_copy_of_the_run(
    unchanged_package: None, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "deploy" / "affectnet"
    text = invoke("export", "affectnet", "--onnx", "--out", str(out))
    assert f"wrote {out / 'model.onnx'}" in text and f"recorded in {out / 'model.json'}" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "history.json",
        "model.json",
        "model.onnx",
        "model.safetensors",
        "train.json",
    ]
    card = json.loads((out / "model.json").read_text())
    shipped = json.loads((WEIGHTS_DIR / "affectnet" / "model.json").read_text())
    assert card["onnx"]["file"] == "model.onnx"
    graphs = ("onnx", "onnx_int8")  # the copy gets a fresh float graph, not the int8 one
    assert "onnx_int8" not in card
    assert {k: v for k, v in card.items() if k not in graphs} == {
        k: v for k, v in shipped.items() if k not in graphs
    }
    assert card["onnx"]["weights_sha256"] == shipped["weights_sha256"]
    assert load_run(out).backend == "onnx"
    onnx_export._copy_run(load_run("affectnet"), out)  # again into the same copy: allowed

    other = tmp_path / "busy"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export", "affectnet", "--onnx", "--out", str(other)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_export_of_a_read_only_run_needs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    onnx_export._copy_run(load_run("fer2013"), run)  # a copy of a network run, no export
    before = sorted(p.name for p in run.iterdir())
    # as if chmod a-w (which root, running the tests in CI, would ignore)
    access, read_only = os.access, {run, run / "model.json"}

    def no_writing(path: str | os.PathLike[str], mode: int, **kw: object) -> bool:
        return not (mode & os.W_OK and Path(path) in read_only) and access(path, mode)

    monkeypatch.setattr(os, "access", no_writing)
    result = runner.invoke(app, ["export", str(run), "--onnx"])
    assert result.exit_code == 2 and "read-only run folder" in result.output
    assert sorted(p.name for p in run.iterdir()) == before
    done = export_onnx(run, tmp_path / "copy", check=False)
    assert done.card_updated and done.path == tmp_path / "copy" / "model.onnx"
