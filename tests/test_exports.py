"""The everyday entry points importable from ``ferkit`` itself (issue 21), imported lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferkit
from ferkit.inference import Predictor, UnreadableInputError
from ferkit.inference.results import ImageResult

EXPORTS = {
    "create_model": "ferkit.models.nets",
    "load_run": "ferkit.models.store",
    "load_dataset": "ferkit.data",
    "Predictor": "ferkit.inference",
    "predict": "ferkit.api",
}


@pytest.mark.parametrize(("name", "module"), sorted(EXPORTS.items()))
def test_export_is_the_object_its_module_defines(name: str, module: str) -> None:
    import importlib

    assert getattr(ferkit, name) is getattr(importlib.import_module(module), name)
    assert name in ferkit.__all__ and name in dir(ferkit)


def test_from_ferkit_import_every_export_and_no_other_name() -> None:
    from ferkit import Predictor, create_model, load_dataset, load_run, predict  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'predictor'"):
        ferkit.predictor  # noqa: B018
    from ferkit import io  # a submodule still imports as one

    assert io.__name__ == "ferkit.io"


def test_predict_is_the_default_predictor_in_one_call(tmp_path: Path, head: np.ndarray) -> None:
    photo = tmp_path / "head.png"
    Image.fromarray(head).save(photo)
    expected = Predictor().predict_image(photo).to_dict()
    one = ferkit.predict(photo)
    assert isinstance(one, ImageResult) and len(one.faces) == 1
    assert one.to_dict() == expected
    several = ferkit.predict([str(photo), head], detect=False)
    assert [type(r) for r in several] == [ImageResult, ImageResult]
    assert several[0].faces[0].box.width == head.shape[1]  # detect=False: the whole image


def test_predict_names_an_unreadable_photo(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableInputError, match=r"empty\.jpg"):
        ferkit.predict(empty)
