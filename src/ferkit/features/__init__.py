"""Feature extractors for classical models: scikit-learn transformers from images to vectors.

Each takes (N, H, W, C) images (C = 1 or 3, values 0-255, as ``ferkit.data.load_dataset`` gives
them) and returns (N, D) float32, cached on disk. ``create_extractor(name, **params)`` builds
one from a name a config or the CLI can carry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ferkit.errors import OptionError

if TYPE_CHECKING:
    from ferkit.features.base import FeatureExtractor, check_images
    from ferkit.features.dlib_models import MissingModelError
    from ferkit.features.embedding import DlibEmbedding
    from ferkit.features.hog import HOG
    from ferkit.features.landmarks import GEOMETRY_NAMES, Landmarks68
    from ferkit.features.network import NetworkEmbedding
    from ferkit.features.raw import RawPixels

# Name -> submodule, imported on first access (PEP 562): the face pipeline imports
# ``ferkit.features.dlib_models`` alone, and must not pay for scikit-learn (~1 s, via base).
_LAZY = {
    "FeatureExtractor": "base",
    "check_images": "base",
    "MissingModelError": "dlib_models",
    "DlibEmbedding": "embedding",
    "HOG": "hog",
    "GEOMETRY_NAMES": "landmarks",
    "Landmarks68": "landmarks",
    "NetworkEmbedding": "network",
    "RawPixels": "raw",
}


def __getattr__(name: str) -> Any:
    """The exported ``name``, its submodule imported on first use (then cached here)."""
    if name == "EXTRACTORS":
        value: Any = {
            cls.name: cls
            for cls in (
                __getattr__("RawPixels"),
                __getattr__("HOG"),
                __getattr__("Landmarks68"),
                __getattr__("DlibEmbedding"),
                __getattr__("NetworkEmbedding"),
            )
        }
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"ferkit.features.{_LAZY[name]}"), name)
    else:  # AttributeError also lets ``from ferkit.features import dlib_models`` find submodules
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def create_extractor(name: str, **params: Any) -> FeatureExtractor:
    """The extractor registered as ``name`` ("raw", "hog", "landmarks", "embedding", "cnn")."""
    extractors: dict[str, type[FeatureExtractor]] = __getattr__("EXTRACTORS")
    try:
        cls = extractors[name]
    except KeyError:
        known = ", ".join(sorted(extractors))
        raise OptionError(f"unknown feature extractor {name!r}; known: {known}") from None
    return cls(**params)


__all__ = [
    "EXTRACTORS",
    "GEOMETRY_NAMES",
    "HOG",
    "DlibEmbedding",
    "FeatureExtractor",
    "Landmarks68",
    "MissingModelError",
    "NetworkEmbedding",
    "RawPixels",
    "check_images",
    "create_extractor",
]
