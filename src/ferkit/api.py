"""``ferkit.predict``: one call from a photo to its faces' expressions.

For a notebook or a script that classifies a few photos. It loads the model on every call
(seconds for the shipped SVM), so a loop over many photos should build one
:class:`ferkit.inference.Predictor` and call its ``predict_image`` (or ``predict_many`` for
folders and videos) instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:
    from ferkit.inference.results import ImageResult
    from ferkit.models.store import Run

Photo = str | os.PathLike[str] | np.ndarray


@overload
def predict(
    path: Photo, model: str | os.PathLike[str] | Run | None = None, **kw: Any
) -> ImageResult: ...


@overload
def predict(
    path: Sequence[Photo], model: str | os.PathLike[str] | Run | None = None, **kw: Any
) -> list[ImageResult]: ...


def predict(
    path: Photo | Sequence[Photo],
    model: str | os.PathLike[str] | Run | None = None,
    **kw: Any,
) -> ImageResult | list[ImageResult]:
    """The faces of one photo (an image file or a uint8 array), or of each photo of a list.

    ``model`` is a run folder, a shipped model's name or a loaded Run (default: the shipped
    default model); ``kw`` go to :class:`~ferkit.inference.Predictor` (``detect``,
    ``framing``, ``quality``...). An unreadable photo raises
    :class:`~ferkit.inference.UnreadableInputError` naming the file and the reason.
    """
    from ferkit.inference import Predictor  # torch or onnxruntime: only when called

    predictor = Predictor(model, **kw)
    if isinstance(path, str | os.PathLike | np.ndarray):
        return predictor.predict_image(path)
    return [predictor.predict_image(one) for one in path]
