"""Shared fixtures: synthetic datasets written to tmp dirs in every supported layout.

Images are small random textures whose mean brightness depends on the class, so a loaded sample
can be traced back to its class, and nothing is read from ../shared unless a test says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EMOTIONS3 = ("Anger", "Happy", "Sad")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own decode cache, so no test sees another's (or the user's)."""
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def face_like(label: int, seed: int, size: int = 32, mode: str = "RGB") -> Image.Image:
    """A random texture whose brightness encodes ``label``."""
    rng = np.random.default_rng(seed)
    base = 40 + 60 * label
    arr = np.clip(rng.normal(base, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def write_image(path: Path, label: int, seed: int, size: int = 32, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    face_like(label, seed, size, mode).save(path)
    return path


def make_yolo(
    root: Path,
    classes: Sequence[str] = EMOTIONS3,
    per_class: int = 4,
    splits: Sequence[str] = ("train", "valid"),
    size: int = 32,
    ext: str = ".png",
    yaml_text: str | None = None,
) -> Path:
    """A YOLO dataset like affectnet_yolo: data.yaml + <split>/images + <split>/labels."""
    seed = 0
    for split in splits:
        for label in range(len(classes)):
            for i in range(per_class):
                stem = f"{split}_{label}_{i}"
                write_image(root / split / "images" / f"{stem}{ext}", label, seed, size)
                (root / split / "labels").mkdir(parents=True, exist_ok=True)
                (root / split / "labels" / f"{stem}.txt").write_text(f"{label} 0.5 0.5 1.0 1.0\n")
                seed += 1
    if yaml_text is None:
        names = ", ".join(f'"{c}"' for c in classes)
        keys = {"train": "train", "valid": "val", "test": "test"}
        lines = [f'{keys.get(s, s)}: "./{s}/images"' for s in splits]
        yaml_text = "\n".join(lines) + f"\nnc: {len(classes)}\nnames: [{names}]\n"
    (root / "data.yaml").write_text(yaml_text)
    return root


def make_folders(
    root: Path,
    classes: Sequence[str] = ("angry", "happy", "sad"),
    per_class: int = 4,
    splits: Sequence[str] | None = ("train", "val"),
    size: int = 24,
    mode: str = "L",
    ext: str = ".jpg",
) -> Path:
    """A class-folder dataset like fer2013/: <split>/<class>/*.jpg (or <class>/* if no splits)."""
    seed = 100
    for split in splits or [None]:
        base = root / split if split else root
        for label, name in enumerate(classes):
            for i in range(per_class):
                write_image(base / name / f"img_{i}{ext}", label, seed, size, mode)
                seed += 1
    return root


def make_fer_csv(path: Path, rows_per_usage: int = 3, side: int = 48) -> Path:
    """A FER2013 CSV with rows in each Usage, emotions cycling 0..6."""
    rng = np.random.default_rng(7)
    lines = ["emotion,pixels,Usage"]
    k = 0
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for _ in range(rows_per_usage):
            pixels = " ".join(str(v) for v in rng.integers(0, 256, side * side))
            lines.append(f"{k % 7},{pixels},{usage}")
            k += 1
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def yolo_dataset(tmp_path: Path) -> Path:
    return make_yolo(tmp_path / "yolo")


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "folders")


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """Path to a dataset under ../shared/data, or skip the test when it is absent."""

    def get(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.is_dir():
            pytest.skip(f"{path} is not present")
        return path

    return get


# skimage's astronaut photo (Eileen Collins, smiling): the real face the photo tests look for.
FACE_REGION = (170, 40, 300, 200)  # x0, y0, x1, y1 that the face lies in
HEAD = (slice(0, 256), slice(96, 352))  # rows, columns around the head: the face moves to x 74-204


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The whole 512x512 RGB photo (test_features overrides it with a 96x96 face crop)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def head(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[HEAD])


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's chromium + chromedriver, driven by selenium, nothing
    downloaded), quit afterwards; the test skips when either binary or selenium is missing."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (browser and chromedriver):
        pytest.skip("no chromium + chromedriver binary (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1200,900")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def trained_like_bn(model: torch.nn.Module, seed: int = 1, running_stats: bool = False) -> None:
    """Give every BatchNorm a random affine (as training would), so that a freshly built
    network's output depends on its input's layout instead of being nearly constant;
    ``running_stats``: random running means and variances too, so that an exported graph's
    folded BatchNorm is checked against values other than 0 and 1."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            if running_stats:
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def tiny_card(classes: list[str], size: int = 32) -> dict:
    """A minimal RGB model card for ``save_torch_run`` of a hand-built network."""
    return {
        "classes": list(classes),
        "canonical": list(classes),
        "image_size": size,
        "color": "rgb",
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }


def assert_onnx_matches(run_dir: Path, images: np.ndarray, probs: np.ndarray) -> None:
    """Export ``run_dir`` to ONNX and check onnxruntime gives ``probs`` on ``images`` (skipped
    when the onnx extras are not installed)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from ferkit.models import load_run
    from ferkit.models.onnx_export import export_onnx

    export_onnx(run_dir)
    onnx_run = load_run(run_dir, backend="onnx")
    assert np.abs(onnx_run.estimator.predict_proba(images) - probs).max() < 1e-4
