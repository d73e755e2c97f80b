"""Line up a model's classes with a dataset's through the canonical emotion names.

A FER2013 model (7 classes) evaluated on AffectNet (8) is scored on the 7 shared emotions:
AffectNet's contempt samples are dropped, and the mapping is printed so the user knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferkit.errors import FerkitError


@dataclass(frozen=True)
class ClassMapping:
    """data class index -> model class index (-1 when the model lacks that class)."""

    data_to_model: np.ndarray
    data_classes: list[str]
    model_classes: list[str]
    dropped: list[str]

    def lines(self) -> list[str]:
        """Human-readable mapping, one ``data -> model`` per line."""
        out = [
            f"{d} -> {self.model_classes[m]}"
            for d, m in zip(self.data_classes, self.data_to_model, strict=True)
            if m >= 0
        ]
        return out + [f"{d} -> (not a model class: samples dropped)" for d in self.dropped]

    @property
    def same_names(self) -> bool:
        """Every data class is scored as the model class of the same name (none dropped)."""
        return not self.dropped and all(
            self.data_classes[d] == self.model_classes[m] for d, m in enumerate(self.data_to_model)
        )

    @property
    def identity(self) -> bool:
        return self.data_classes == self.model_classes and not self.dropped

    def apply(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kept sample indices, labels in model indices) for data ``labels``."""
        mapped = self.data_to_model[labels]
        keep = np.flatnonzero(mapped >= 0)
        return keep, mapped[keep]


def map_classes(
    data_classes: list[str],
    data_canonical: list[str],
    model_classes: list[str],
    model_canonical: list[str],
) -> ClassMapping:
    """Match by canonical name; raise when the two share no class at all."""
    index = {c: i for i, c in enumerate(model_canonical)}
    to_model = np.array([index.get(c, -1) for c in data_canonical], dtype=np.int64)
    if (to_model < 0).all():
        raise FerkitError(
            f"the model's classes ({', '.join(model_classes)}) share none with the data's "
            f"({', '.join(data_classes)})"
        )
    dropped = [d for d, m in zip(data_classes, to_model, strict=True) if m < 0]
    return ClassMapping(to_model, list(data_classes), list(model_classes), dropped)
