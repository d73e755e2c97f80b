"""What every feature extractor shares: input checks, batching over cores, and an on-disk cache.

Extractors are scikit-learn transformers that hold nothing but their ``__init__`` params (plus a
few counters after ``transform``), so they clone, serialise to JSON metadata and save with skops
inside a fitted pipeline. The per-image work (HOG, dlib) holds the GIL, so threads do not help
(measured in each module); large inputs go to joblib's loky worker processes instead, which keep
their loaded models between calls. Features are cached in ``<cache>/features/<key>.npy``, keyed
by the extractor's params and the exact pixels, so re-running a study is one read per split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from ferkit import io
from ferkit.data.decode import default_cache_dir
from ferkit.errors import FerkitError, OptionError

CACHE_VERSION = 1
# Params that change how features are computed, never what they are: kept out of the cache key.
RUNTIME_PARAMS = frozenset({"progress", "cache", "n_jobs"})
# skimage.color.rgb2gray's weights (ITU-R BT.709 luma), applied on the 0-255 scale.
LUMA = np.array([0.2125, 0.7154, 0.0721])

Stats = dict[str, int]


def check_images(X: Any) -> np.ndarray:
    """``X`` as a 4-D (N, H, W, C) real array with C in {1, 3}, or a ValueError saying why not.

    Pixel values are read on the 0-255 scale whatever the dtype, as ``load_dataset`` gives them.
    """
    images = np.asarray(X)
    if images.dtype == object or not (
        np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    ):
        raise FerkitError(f"images must be a numeric array, got dtype {images.dtype}")
    if images.ndim != 4:
        hint = " (use X[None] for a single image)" if images.ndim == 3 else ""
        raise FerkitError(
            f"images must be a 4-D array (N, H, W, C) with C = 1 or 3, "
            f"got shape {images.shape}{hint}"
        )
    if images.shape[0] == 0:
        raise FerkitError("no images to extract features from")
    if images.shape[3] not in (1, 3):
        raise FerkitError(
            f"images must have 1 (gray) or 3 (RGB) channels in the last axis, "
            f"got shape {images.shape}"
        )
    if min(images.shape[1:3]) < 1:
        raise FerkitError(f"images have no pixels: shape {images.shape}")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise FerkitError("images contain NaN or infinite values")
    return images


def to_gray(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) pixels -> (N, H, W) float64 luma on the 0-255 scale."""
    if images.shape[-1] == 1:
        return images[..., 0].astype(np.float64)
    return images @ LUMA


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Pixels as C-contiguous uint8 (what dlib wants), rounding and clipping other dtypes."""
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(images)


def check_int(name: str, value: Any, minimum: int) -> None:
    """ValueError unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise OptionError(f"{name} must be an int >= {minimum}, got {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a JSON-serialisable param: {value!r}")


def feature_cache_dir() -> Path:
    return default_cache_dir() / "features"


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Base class: subclasses define ``name``, ``__init__`` (params only) and ``_extract``.

    ``_extract(batch)`` maps a (B, H, W, C) slice to (B, D) features plus integer counters
    (e.g. faces not found) that are summed over batches and kept in the cache beside the array.
    """

    name: ClassVar[str] = ""
    # Images per task, and the input size below which worker start-up (about 1 s, plus model
    # loading in each worker) costs more than it saves.
    batch_size: ClassVar[int] = 256
    min_parallel: ClassVar[int] = 1000

    # -- sklearn API ----------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> FeatureExtractor:
        """Check ``X`` and the params; nothing is learnt."""
        check_images(X)
        self._check_params()
        return self

    def transform(self, X: Any) -> np.ndarray:
        """(N, H, W, C) images -> (N, D) float32 features, read from the cache when possible."""
        images = check_images(X)
        self._check_params()
        key = self.cache_key(images) if getattr(self, "cache", False) else None
        hit = self._read_cache(key, len(images)) if key else None
        if hit is not None:
            features, stats = hit
        else:
            features, stats = self._compute(images)
            if key:
                self._write_cache(key, features, stats)
        self._set_stats(stats, len(images))
        return features

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: usable without fit, like FunctionTransformer

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags

    # -- hooks for subclasses -------------------------------------------------------------

    def _check_params(self) -> None:
        """Raise ValueError for params that cannot work (checked at fit/transform, as sklearn)."""

    def _extract(self, batch: np.ndarray) -> tuple[np.ndarray, Stats]:
        raise NotImplementedError

    def _set_stats(self, stats: Stats, n_images: int) -> None:
        """Store counters from the last transform as fitted attributes (default: none)."""

    def _cache_salt(self) -> str:
        """Versions of the libraries that compute the features, so an upgrade is a cache miss."""
        return ""

    # -- computing ------------------------------------------------------------------------

    def _n_workers(self, n_images: int) -> int:
        n_jobs = getattr(self, "n_jobs", 1)
        if n_images < max(self.min_parallel, 2 * self.batch_size):
            return 1
        return max(1, effective_n_jobs(n_jobs))

    def _compute(self, images: np.ndarray) -> tuple[np.ndarray, Stats]:
        starts = range(0, len(images), self.batch_size)
        batches = (images[s : s + self.batch_size] for s in starts)
        workers = self._n_workers(len(images))
        out: np.ndarray | None = None  # filled in place: no second copy of a large result
        done = 0
        stats: Counter[str] = Counter()
        with tqdm(
            total=len(images),
            desc=f"{self.name} features",
            unit="img",
            disable=not getattr(self, "progress", True) or None,
        ) as bar:
            for part, part_stats in self._run(batches, workers):
                part = np.asarray(part, dtype=np.float32).reshape(len(part), -1)
                if out is None:
                    out = np.empty((len(images), part.shape[1]), dtype=np.float32)
                out[done : done + len(part)] = part
                done += len(part)
                stats.update(part_stats)
                bar.update(len(part))
        assert out is not None and done == len(images)
        return out, dict(stats)

    def _run(
        self, batches: Iterator[np.ndarray], workers: int
    ) -> Iterator[tuple[np.ndarray, Stats]]:
        if workers == 1:
            return map(self._extract, batches)
        # Ordered results; "processes" can still be overridden with joblib.parallel_config.
        parallel = Parallel(n_jobs=workers, prefer="processes", return_as="generator")
        return iter(parallel(delayed(self._extract)(b) for b in batches))

    # -- cache ----------------------------------------------------------------------------

    def cache_params(self) -> dict[str, Any]:
        """The params that determine the features, as plain JSON values (tuples become lists).

        The cache key and saved metadata use these; numpy scalars are turned into Python ones.
        """
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in RUNTIME_PARAMS}
        return json.loads(json.dumps(params, default=_plain))

    def cache_key(self, images: np.ndarray) -> str:
        """sha256 over the extractor name, params, library versions and the exact pixels."""
        head = {
            "version": CACHE_VERSION,
            "name": self.name,
            "params": self.cache_params(),
            "salt": self._cache_salt(),
            "shape": list(images.shape),
            "dtype": images.dtype.str,
        }
        h = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
        h.update(np.ascontiguousarray(images).data)
        return h.hexdigest()[:32]

    def _read_cache(self, key: str, n: int) -> tuple[np.ndarray, Stats] | None:
        folder = feature_cache_dir()
        npy, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
        if not (npy.is_file() and meta_path.is_file()):
            return None
        try:
            features = np.load(npy, allow_pickle=False)
            meta = json.loads(meta_path.read_text())
            stats = {str(k): int(v) for k, v in meta["stats"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # a damaged entry is only a miss; it is rewritten after computing
        if features.dtype != np.float32 or features.ndim != 2 or features.shape[0] != n:
            return None
        return features, stats

    def _write_cache(self, key: str, features: np.ndarray, stats: Stats) -> None:
        folder = feature_cache_dir()
        meta = {
            "name": self.name,
            "params": self.cache_params(),
            "shape": list(features.shape),
            "stats": stats,
        }
        try:  # npy first: an entry counts only once its metadata (written last) is there too
            io.save_npy(folder / f"{key}.npy", features)
            io.write_json(folder / f"{key}.json", meta)
        except OSError as exc:  # a read-only or full cache disk must not fail the extraction
            with contextlib.suppress(OSError):
                (folder / f"{key}.npy").unlink(missing_ok=True)
            warnings.warn(f"could not write the feature cache in {folder}: {exc}", stacklevel=3)
