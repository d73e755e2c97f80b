"""ferkit installs as a package: the wheel holds the shipped weights and works outside src/.

The wheel is built from a copy of the checkout (so no ``build/`` or ``*.egg-info`` lands in
it) without build isolation or the network, then installed into a fresh virtual environment
that reuses this environment's installed dependencies (torch and the rest are not installed
again) through a ``.pth`` line, but not ``src/``: what runs there is the wheel's code alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image
from typer.testing import CliRunner

from ferkit.cli import app
from ferkit.weights import WEIGHTS_DIR, shipped_models

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A child process without PYTHONPATH (which would put src/ first again)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=SKIP)
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", base / "dist", source,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (found,) = (base / "dist").glob("ferkit-*.whl")
    return found


def expected_requirements() -> set[tuple[str, str, str]]:
    """(name, specifiers, marker) of every requirement pyproject declares, extras included."""
    project = PYPROJECT["project"]
    lines = list(project["dependencies"])
    for extra, deps in project["optional-dependencies"].items():
        lines += [f'{dep}; extra == "{extra}"' for dep in deps]
    return {_key(Requirement(line)) for line in lines}


def _key(req: Requirement) -> tuple[str, str, str]:
    return canonicalize_name(req.name), str(req.specifier), str(req.marker or "")


@pytest.mark.slow
def test_wheel_holds_the_code_the_weights_and_the_declared_requirements(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "src" / "ferkit"
    code = {f"ferkit/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert code <= names, sorted(code - names)
    assert {"ferkit/py.typed", "ferkit/serve/static/index.html"} <= names
    vendored = ("retinaface_mnet025.onnx", "LICENSE-retinaface", "PROVENANCE.md")
    assert {f"ferkit/faces/models/{f}" for f in vendored} <= names  # the default detector
    assert shipped_models(), "no shipped model to check"
    for model in shipped_models():
        card = json.loads((WEIGHTS_DIR / model / "model.json").read_text())
        files = {"model.json", card["weights"], "train.json"}
        if "onnx" in card:  # a shipped network's graph: predict runs it without torch
            files.add(card["onnx"]["file"])
        if "onnx_int8" in card:  # and its int8 graph, which predict runs by default
            files.add(card["onnx_int8"]["file"])
        assert {f"ferkit/weights/{model}/{f}" for f in files} <= names, model
    assert not [n for n in names if "__pycache__" in n]

    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    lines = zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
    dist = [x.removeprefix("Requires-Dist:") for x in lines if x.startswith("Requires-Dist:")]
    declared = {_key(Requirement(x)) for x in dist}
    assert declared == expected_requirements()
    core = {canonicalize_name(Requirement(d).name) for d in PYPROJECT["project"]["dependencies"]}
    assert not core & {"optuna", "httpx", "fastapi", "onnx", "matplotlib", "kornia"}
    assert "onnxruntime" in core  # the shipped networks' fast path


@pytest.mark.slow
def test_the_wheel_installs_and_predicts_outside_the_checkout(
    wheel: Path, astronaut: np.ndarray, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                   .stdout.strip())  # fmt: skip
    # this environment's dependencies, not its ferkit (an editable install points at src/)
    (purelib / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.fromarray(astronaut).save(work / "astronaut.png")
    where = run(python, "-c", "import ferkit; print(ferkit.__file__)", cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(purelib), where.stdout + where.stderr
    predicted = run(env_dir / "bin" / "ferkit", "predict", "astronaut.png", "--json", cwd=work)
    assert predicted.returncode == 0, predicted.stderr
    report = json.loads(predicted.stdout)
    assert report["summary"]["faces"] == 1, report["summary"]
    refused = run(env_dir / "bin" / "ferkit", "export", "fer2013", "--onnx", cwd=work)
    assert refused.returncode == 2 and "ferkit package" in refused.stderr
    shipped = WEIGHTS_DIR / "fer2013"
    for file in shipped.iterdir():  # the refused export left the installed package as shipped
        assert (purelib / "ferkit" / "weights" / "fer2013" / file.name).read_bytes() == (
            file.read_bytes()
        ), file.name


def test_tune_without_optuna_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now fails
    monkeypatch.delitem(sys.modules, "ferkit.training.tune", raising=False)
    result = CliRunner().invoke(app, ["tune", str(tmp_path), "--out", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    assert "pip install 'ferkit[tune]'" in " ".join(result.output.split())


def _cli(code_args: list[str], blocked: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    """The ``ferkit`` console script's entry point with ``blocked`` modules not installed."""
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"sys.argv = ['ferkit', *{code_args!r}]\n"
        "from ferkit.cli import run\n"
        "run()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_predict_needs_no_extra_and_a_figure_names_the_one_it_needs(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    """The core is what predict needs: without matplotlib and kornia (the `train` extra) a
    photo is still predicted; a command that draws says which extra to install, in one line."""
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    blocked = ("matplotlib", "kornia", "optuna")
    predicted = _cli(["predict", "a.png", "--json"], blocked, tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["summary"]["faces"] == 1
    (tmp_path / "data" / "happy").mkdir(parents=True)
    Image.fromarray(astronaut).save(tmp_path / "data" / "happy" / "a.png")
    drawn = _cli(["inspect", "data", "--out", "figures"], blocked, tmp_path)
    assert drawn.returncode == 2 and "Traceback" not in drawn.stderr, drawn.stderr
    assert "pip install 'ferkit[train]'" in drawn.stderr
    assert PYPROJECT["project"]["scripts"]["ferkit"] == "ferkit.cli:run"
