"""Feature extractors for classical models: scikit-learn transformers from images to vectors.

Each takes (N, H, W, C) images (C = 1 or 3, values 0-255, as ``ferkit.data.load_dataset`` gives
them) and returns (N, D) float32, cached on disk. ``create_extractor(name, **params)`` builds
one from a name a config or the CLI can carry.
"""

from __future__ import annotations

from typing import Any

from ferkit.features.base import FeatureExtractor, check_images
from ferkit.features.dlib_models import MissingModelError
from ferkit.features.embedding import DlibEmbedding
from ferkit.features.hog import HOG
from ferkit.features.landmarks import GEOMETRY_NAMES, Landmarks68
from ferkit.features.network import NetworkEmbedding
from ferkit.features.raw import RawPixels

EXTRACTORS: dict[str, type[FeatureExtractor]] = {
    cls.name: cls for cls in (RawPixels, HOG, Landmarks68, DlibEmbedding, NetworkEmbedding)
}


def create_extractor(name: str, **params: Any) -> FeatureExtractor:
    """The extractor registered as ``name`` ("raw", "hog", "landmarks", "embedding", "cnn")."""
    try:
        cls = EXTRACTORS[name]
    except KeyError:
        known = ", ".join(sorted(EXTRACTORS))
        raise ValueError(f"unknown feature extractor {name!r}; known: {known}") from None
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
