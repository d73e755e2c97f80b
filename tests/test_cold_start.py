"""Cold start: a command imports only what it uses (issue 23).

Each check runs the real command in a fresh interpreter and lists the heavy packages it
imported: skops and scikit-learn cost 3 s, torch 1 s, torch._dynamo another 1 s, matplotlib
0.6 s, so a stray top-level import shows up as seconds on every `ferkit models` or `predict`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = (
    "cv2",
    "dlib",
    "matplotlib",
    "onnxruntime",
    "scipy",
    "skimage",
    "sklearn",
    "skops",
    "torch",
    "torch._dynamo",
)
# Runs ``ferkit ARGS`` in this process, then prints which HEAVY modules it imported.
_PROBE = """
import json, sys
from ferkit.cli import app
heavy = {heavy!r}
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "imported": [m for m in heavy if m in sys.modules]}}))
"""


def _imported(*args: str) -> tuple[list[str], str]:
    """(heavy modules ``ferkit ARGS`` imported, its stdout) from a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = _PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    *output, last = done.stdout.strip().splitlines()
    result = json.loads(last)
    assert result["code"] in (0, None), done.stderr
    return result["imported"], "\n".join(output)


def test_help_and_models_import_no_heavy_package() -> None:
    imported, _ = _imported("--help")
    assert imported == []
    imported, text = _imported("models")
    assert imported == [], "ferkit models should list names and cards, not load frameworks"
    assert "fernet" in text and "fer2013" in text


def test_cli_start_up_imports_no_numpy() -> None:
    """The option tables (the config dataclasses) load with the CLI: they must stay light, as
    numpy alone doubled ``ferkit --help``'s start-up when they pulled in ferkit.data."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = "import sys, ferkit.cli; print(sorted(m for m in ('numpy', 'PIL') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_network_predict_imports_neither_skops_nor_sklearn_nor_dynamo(
    tmp_path: Path, head: np.ndarray
) -> None:
    photo = tmp_path / "head.png"
    Image.fromarray(head).save(photo)
    imported, text = _imported("predict", str(photo))
    assert "face 1" in text
    for module in ("skops", "sklearn", "matplotlib", "torch", "torch._dynamo"):
        assert module not in imported, f"a network predict imported {module}"
    # the default model runs the ONNX graph shipped with it: the probe sees imports
    assert "onnxruntime" in imported


def test_network_names_listed_without_torch_match_the_registry() -> None:
    from ferkit.models.catalog import NETWORKS
    from ferkit.models.nets import list_models

    assert list(NETWORKS) == list_models()


def test_import_ferkit_and_listing_its_exports_import_no_heavy_package() -> None:
    """``ferkit.predict``, ``ferkit.Predictor``... are imported on first use, not by ``import
    ferkit``, which every command runs first."""
    code = (
        "import json, sys, ferkit; names = dir(ferkit); assert 'predict' in names; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
