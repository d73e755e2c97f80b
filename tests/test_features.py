"""Feature extractors: shapes, determinism, the cache, dlib on a real face, errors, skops."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skops.io as sio
from PIL import Image
from skimage.color import rgb2gray
from skimage.feature import hog
from skimage.transform import resize
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from ferkit.errors import FerkitError
from ferkit.features import (
    EXTRACTORS,
    GEOMETRY_NAMES,
    HOG,
    DlibEmbedding,
    FeatureExtractor,
    Landmarks68,
    MissingModelError,
    RawPixels,
    create_extractor,
    dlib_models,
)

QUIET = {"progress": False}
DIMS: dict[str, Callable[[tuple[int, ...]], int]] = {
    "raw": lambda shape: int(np.prod(shape[1:])),
    "hog": lambda shape: 11 * 11 * 2 * 2 * 9,  # 96x96 after resizing, seed defaults
    "landmarks": lambda shape: 136 + len(GEOMETRY_NAMES),
    "embedding": lambda shape: 128,
    "cnn": lambda shape: 64,  # fernet at width 0.25: a 64-d penultimate layer
}


@pytest.fixture(scope="module")
def net_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A saved (untrained) 48x48 gray fernet run for the ``cnn`` extractor."""
    from ferkit.models.nets import create_model
    from ferkit.models.torch_run import save_torch_run

    model = create_model("fernet", 3, 1, 48, width=0.25)
    card = {
        "classes": ["angry", "happy", "sad"],
        "canonical": ["angry", "happy", "sad"],
        "image_size": 48,
        "color": "gray",
        "mean": [0.5],
        "std": [0.25],
    }
    return str(save_torch_run(tmp_path_factory.mktemp("net") / "run", model, card))


def params(name: str, run: str) -> dict:
    """Constructor params each extractor needs in these tests (the cnn one needs a network)."""
    return {"run": run} if name == "cnn" else {}


def images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """Eileen Collins' smiling face: a 200x200 crop of skimage's astronaut, resized to 96x96."""
    face = skimage.data.astronaut()[20:220, 140:340]
    return (resize(face, (96, 96), anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return images(1, 96, 3, seed=5)[0]


def embed(*faces: np.ndarray) -> np.ndarray:
    return DlibEmbedding(cache=False, n_jobs=1, **QUIET).transform(np.stack(faces))


# -- every extractor ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
@pytest.mark.parametrize("shape", [(2, 96, 96, 3), (2, 48, 48, 1)])
def test_shapes_dtype_and_finite(name: str, shape: tuple[int, ...], net_run: str) -> None:
    X = images(shape[0], shape[1], shape[3])
    extractor = create_extractor(name, cache=False, **QUIET, **params(name, net_run))
    features = extractor.fit(X).transform(X)
    assert features.shape == (shape[0], DIMS[name](shape))
    assert features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_deterministic(name: str, net_run: str) -> None:
    X = images(2, 48, 3, seed=1)
    extractor = create_extractor(name, cache=False, **QUIET, **params(name, net_run))
    np.testing.assert_array_equal(extractor.transform(X), extractor.transform(X.copy()))


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_clone_and_json_params(name: str, net_run: str) -> None:
    extractor = create_extractor(name, **params(name, net_run))
    copy = clone(extractor)
    assert type(copy) is type(extractor)
    assert copy.get_params() == extractor.get_params()
    assert json.loads(json.dumps(extractor.get_params()))


def test_numpy_params_are_plain_in_the_key() -> None:
    X = images(1, 48, 1)
    plain = HOG(size=48, orientations=8, **QUIET)
    numpy = HOG(size=np.int64(48), orientations=np.int32(8), **QUIET)
    assert numpy.cache_key(X) == plain.cache_key(X)
    np.testing.assert_array_equal(numpy.transform(X), plain.transform(X))


def test_create_extractor() -> None:
    assert isinstance(create_extractor("hog", orientations=8), HOG)
    assert create_extractor("hog", orientations=8).orientations == 8
    assert set(EXTRACTORS) == {"raw", "hog", "landmarks", "embedding", "cnn"}
    with pytest.raises(ValueError, match=r"'nope'.*known: cnn, embedding, hog, landmarks, raw"):
        create_extractor("nope")


# -- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_empty_input(name: str, net_run: str) -> None:
    with pytest.raises(ValueError, match="no images to extract features from"):
        extractor = create_extractor(name, **QUIET, **params(name, net_run))
        extractor.transform(np.zeros((0, 96, 96, 3), np.uint8))


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((96, 96, 3), np.uint8), r"4-D .*\(96, 96, 3\).*X\[None\]"),
        (np.zeros((2, 8, 8, 2), np.uint8), r"1 \(gray\) or 3 \(RGB\).*\(2, 8, 8, 2\)"),
        (np.zeros((2, 8, 8), np.uint8), r"\(2, 8, 8\)"),
        (np.array([[[["a"]]]]), "numeric"),
        (np.full((1, 8, 8, 1), np.nan), "NaN"),
    ],
)
def test_bad_input(X: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RawPixels(**QUIET).transform(X)
    with pytest.raises(ValueError, match=message):
        HOG(**QUIET).fit(X)


@pytest.mark.parametrize(
    ("extractor", "message"),
    [
        (HOG(size=8), "smaller than one block"),
        (HOG(block_norm="L3"), "block_norm"),
        (HOG(pixels_per_cell=8), "pair of ints"),
        (RawPixels(size=0), "size"),
        (Landmarks68(upsample=-1), "upsample"),
        (DlibEmbedding(jitter=True), "jitter"),
    ],
)
def test_bad_params(extractor: FeatureExtractor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extractor.transform(images(1, 48, 1))


# -- cache ----------------------------------------------------------------------------------


def _refuse(*args: object) -> None:
    raise AssertionError("computed instead of reading the cache")


def test_cache_hit_and_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    X = images(3, 48, 3, seed=2)
    first = HOG(**QUIET).transform(X)
    folder = Path(os.environ["FERKIT_CACHE_DIR"]) / "features"
    assert len(list(folder.glob("*.npy"))) == 1
    monkeypatch.setattr(HOG, "_extract", _refuse)
    np.testing.assert_array_equal(HOG(**QUIET).transform(X), first)
    np.testing.assert_array_equal(HOG(n_jobs=1, progress=True).transform(X), first)
    for miss in (HOG(orientations=8, **QUIET), HOG(cache=False, **QUIET)):
        with pytest.raises(AssertionError, match="computed instead"):
            miss.transform(X)
    changed = X.copy()
    changed[0, 0, 0, 0] ^= 1
    with pytest.raises(AssertionError, match="computed instead"):
        HOG(**QUIET).transform(changed)


def test_damaged_cache_is_a_miss() -> None:
    X = images(2, 48, 1, seed=3)
    first = RawPixels(**QUIET).transform(X)
    for npy in (Path(os.environ["FERKIT_CACHE_DIR"]) / "features").glob("*.npy"):
        npy.write_bytes(b"not an array")
    np.testing.assert_array_equal(RawPixels(**QUIET).transform(X), first)


# -- raw pixels and HOG ---------------------------------------------------------------------


def test_raw_pixels_scale_resize_gray() -> None:
    X = images(2, 48, 3, seed=4)
    np.testing.assert_allclose(RawPixels(**QUIET).transform(X), X.reshape(2, -1) / 255, 1e-6)
    small = RawPixels(size=24, gray=True, **QUIET).transform(X)
    assert small.shape == (2, 24 * 24)
    assert small.min() >= 0.0 and small.max() <= 1.0
    gray = rgb2gray(X[0])
    expected = resize(gray, (24, 24), anti_aliasing=True).ravel()
    np.testing.assert_allclose(small[0], expected, atol=1e-5)


def test_hog_equals_skimage(astronaut: np.ndarray) -> None:
    ours = HOG(cache=False, **QUIET).transform(astronaut[None])[0]
    theirs = hog(
        rgb2gray(astronaut) * 255,
        orientations=9,
        pixels_per_cell=(8, 8),
        cells_per_block=(2, 2),
        block_norm="L2-Hys",
        feature_vector=True,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    gray = images(1, 96, 1, seed=6)
    np.testing.assert_array_equal(
        HOG(cache=False, **QUIET).transform(gray)[0],
        hog(gray[0, ..., 0].astype(float), cells_per_block=(2, 2)).astype(np.float32),
    )
    small = images(1, 48, 1, seed=7)
    upsized = resize(
        small[0, ..., 0].astype(float), (96, 96), anti_aliasing=True, preserve_range=True
    )
    np.testing.assert_allclose(
        HOG(cache=False, **QUIET).transform(small)[0],
        hog(upsized, cells_per_block=(2, 2)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_parallel_matches_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HOG, "min_parallel", 0)
    monkeypatch.setattr(HOG, "batch_size", 2)
    X = images(6, 32, 3, seed=8)
    serial = HOG(size=32, n_jobs=1, cache=False, **QUIET).transform(X)
    parallel = HOG(size=32, n_jobs=2, cache=False, **QUIET).transform(X)
    np.testing.assert_array_equal(serial, parallel)


# -- dlib -----------------------------------------------------------------------------------


def test_landmarks_find_the_face(astronaut: np.ndarray, noise: np.ndarray) -> None:
    extractor = Landmarks68(cache=False, **QUIET)
    face = extractor.transform(astronaut[None])
    assert extractor.n_not_found_ == 0
    points = face[0, :136].reshape(68, 2)
    assert np.abs(points).max() < 1.0  # normalised to the face box
    lift = face[0, 136 + GEOMETRY_NAMES.index("mouth_corner_lift")]
    assert lift > 0  # she smiles: the mouth corners sit above the mouth centre
    blank = np.full((96, 96, 3), 128, np.uint8)
    both = extractor.transform(np.stack([blank, astronaut]))
    assert np.isfinite(both).all()
    assert extractor.report() == {"n_images": 2, "n_not_found": 1, "not_found_rate": 0.5}
    np.testing.assert_array_equal(both[1], face[0])
    extractor.transform(noise[None])
    assert extractor.n_not_found_ == 1


def test_landmarks_counts_survive_the_cache(astronaut: np.ndarray) -> None:
    X = np.stack([astronaut, np.zeros_like(astronaut)])
    Landmarks68(**QUIET).transform(X)
    extractor = Landmarks68(**QUIET)
    extractor.transform(X)  # a hit
    assert (extractor.n_images_, extractor.n_not_found_) == (2, 1)
    with pytest.raises(NotFittedError, match="transform"):
        Landmarks68().report()


def test_embedding_same_face_is_close(astronaut: np.ndarray, noise: np.ndarray) -> None:
    gray = np.repeat(rgb2gray(astronaut)[..., None] * 255, 3, -1).round().astype(np.uint8)
    face, flipped, grey, rand = embed(astronaut, astronaut[:, ::-1], gray, noise)
    assert face.shape == (128,)
    same = np.linalg.norm(face - flipped)
    assert same < 0.6  # dlib's same-person threshold
    assert np.linalg.norm(face - grey) < 0.6
    assert np.linalg.norm(face - rand) > same
    one_channel = DlibEmbedding(cache=False, **QUIET).transform(gray[None, ..., :1])
    np.testing.assert_allclose(one_channel[0], grey, atol=1e-6)


def test_missing_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FerkitError, match=r"nothing\.dat is missing.*pip install"):
        dlib_models.model_path("nothing.dat")
    dlib_models.model_path.cache_clear()
    monkeypatch.setattr(dlib_models.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(MissingModelError, match="pip install face_recognition_models"):
            Landmarks68(**QUIET).transform(images(1, 48, 1))
    finally:
        dlib_models.model_path.cache_clear()


# -- persistence ----------------------------------------------------------------------------


def test_cnn_features_are_the_networks_penultimate_layer(net_run: str) -> None:
    from ferkit.models import load_run

    X = images(3, 96, 3, seed=2)  # RGB 96 px in: brought to the run's 48 px gray
    features = create_extractor("cnn", run=net_run, cache=False, **QUIET).transform(X)
    run = load_run(net_run)
    gray = np.stack([np.asarray(Image.fromarray(x).convert("L").resize((48, 48))) for x in X])
    direct = run.estimator.embed(gray[..., None])
    np.testing.assert_allclose(features, direct, atol=0.05)
    with pytest.raises(FerkitError, match="no such run folder"):
        create_extractor("cnn", run="no-such-run", **QUIET).transform(X)


def test_skops_round_trip() -> None:
    rng = np.random.default_rng(9)
    stripes = np.zeros((2, 32, 32), np.uint8)
    stripes[0, :, ::4] = 200  # vertical
    stripes[1, ::4, :] = 200  # horizontal
    y = np.arange(20) % 2
    X = np.clip(stripes[y] + rng.normal(0, 20, (20, 32, 32)), 0, 255).astype(np.uint8)[..., None]
    pipe = Pipeline([("features", HOG(size=32, **QUIET)), ("svm", LinearSVC())]).fit(X, y)
    data = sio.dumps(pipe)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    assert loaded.named_steps["features"].get_params() == pipe.named_steps["features"].get_params()


def test_skops_after_transform(astronaut: np.ndarray) -> None:
    extractor = Landmarks68(**QUIET)
    extractor.transform(astronaut[None])
    data = sio.dumps(extractor)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert loaded.n_not_found_ == 0
    assert loaded.get_params() == extractor.get_params()
