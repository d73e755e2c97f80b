"""Which framing a model's faces are cut with, and the one face of a photo cut that way.

A model classifies best the crops framed like those it learnt from, so the framing follows
the model's card; every command that needs one face per photo (explain a photo, score a
dataset of photos, predict) cuts it with :func:`largest_face`, so their view of a face is the
same. Here, beside the face pipeline, rather than in :mod:`ferkit.inference`: evaluation and
explanation use it too, and they sit below inference in the package's layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.faces.align import FRAMINGS
from ferkit.faces.detectors import FaceDetector
from ferkit.faces.pipeline import DetectedFace, find_faces

if TYPE_CHECKING:  # only a type here; importing the store would load it with every face import
    from ferkit.models.store import Run

# Dataset names looked for in a card's ``trained_on`` path, in this order.
_FRAMED_DATASETS = ("affectnet", "fer2013")
_DATA_FILE_SUFFIXES = (".yaml", ".yml", ".csv")


def _framed_dataset(path_text: str) -> str | None:
    path = Path(path_text)
    names = [path.name]
    if path.suffix.lower() in _DATA_FILE_SUFFIXES:  # data.yaml / fer2013.csv: look at the folder
        names.append(path.parent.name)
    for name in names:
        lowered = name.lower()
        for dataset in _FRAMED_DATASETS:
            if dataset in lowered:
                return dataset
    return None


def framing_name(card: Mapping[str, Any]) -> str:
    """The key of :data:`ferkit.faces.FRAMINGS` whose crops look like the model's training data.

    A card's explicit ``"framing"`` wins; else the name of the ``trained_on`` dataset (its last
    path component, or the folder of a ``data.yaml`` / CSV) is matched against affectnet and
    fer2013, because a model classifies best the crops framed like those it learnt from
    (docs/BENCHMARKS.md measures both datasets' framing). Unknown data gets the "default" framing.
    Only the last component is read, so a run trained on ``/data/fer2013-copy/x`` is not taken
    for FER2013 because of a parent folder's name.
    """
    explicit = card.get("framing")
    if isinstance(explicit, str) and explicit in FRAMINGS:
        return explicit
    trained_on = card.get("trained_on")
    if isinstance(trained_on, str) and trained_on:
        return _framed_dataset(trained_on) or "default"
    return "default"


def largest_face(
    image: np.ndarray, run: Run, detector: str | FaceDetector = "auto"
) -> tuple[DetectedFace | None, int]:
    """The largest face of a photo, cut for ``run`` (its size, colour and framing) as
    ``ferkit predict`` cuts faces, and how many faces were found; ``(None, 0)`` without one.

    Explaining a photo and scoring a dataset of photos need one face per image: the largest is
    the subject in a portrait, and cutting it as predict does keeps every command's view of a
    face the same."""
    faces = find_faces(
        image,
        detector,
        size=run.image_size,
        color=run.color,
        **FRAMINGS[framing_name(run.card)],
    )
    if not faces:
        return None, 0
    return max(faces, key=lambda f: f.box.area), len(faces)
