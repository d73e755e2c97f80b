"""Named training recipes: every setting besides the architecture that decides a network's score.

``notebook`` how the study notebook trained its CNNs (undersampled train, its flip / rotation /
           zoom / shear augmentation, Adam 1e-3, ReduceLROnPlateau, batch 32), with the early
           stopping patience ``ferkit study`` uses (8). It was called ``seed`` until ``--seed``
           was left to mean the random seed alone; ``seed`` is still accepted, with a warning.
``ferkit`` how ferkit's shipped networks were trained (docs/BENCHMARKS.md, benchmark 9b): all of
           train, strong augmentation, label smoothing, AdamW with a cosine schedule over the
           whole budget (so no early stopping), flip test-time averaging. On FER2013 val the
           same ``fernet`` scored 48.9% with the notebook recipe (the full study) and 53.9% with
           this one, both on the blurred train copy; 66.0% with this one on the sharp split
           (the shipped ``fer2013``).

Each is a set of :class:`ferkit.training.config.TrainConfig` fields, so a recipe is applied with
``TrainConfig(**recipe, ...)`` and shows in every run's card.
"""

from __future__ import annotations

import warnings
from typing import Any

from ferkit.errors import OptionError

NOTEBOOK = "notebook"
# Names the notebook's recipe and augmentation had before issue 21: scripts, saved train.json /
# checkpoints / tune studies / study records hold them, so they keep working.
OLD_NAMES = {"seed": NOTEBOOK}

NOTEBOOK_RECIPE: dict[str, Any] = {
    "balance": "undersample",
    "augment": NOTEBOOK,
    "label_smoothing": 0.0,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "plateau",
    "tta": "none",
    "batch_size": 32,
    "patience": 8,
}
FERKIT_RECIPE: dict[str, Any] = {
    "balance": "none",
    "augment": "strong",
    "label_smoothing": 0.1,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "tta": "flip",
    "batch_size": 128,
    "patience": 100,
}
RECIPES: dict[str, dict[str, Any]] = {NOTEBOOK: NOTEBOOK_RECIPE, "ferkit": FERKIT_RECIPE}


def current_name(name: str, what: str, *, warn: bool = True) -> str:
    """``name`` with an old name of the notebook's settings (``seed``) replaced by ``notebook``.

    ``warn`` (a name the user typed now) says so in one line, a ``FutureWarning`` so that it is
    shown by default; a name read back from a saved record is mapped silently, since the user
    cannot change what an old run wrote. ``what`` names the setting in the warning."""
    new = OLD_NAMES.get(name)
    if new is None:
        return name
    if warn:
        message = f"{what} {name!r} is deprecated, use {new!r} (--seed is the random seed only)"
        warnings.warn(message, FutureWarning, stacklevel=3)
    return new


def recipe(name: str) -> dict[str, Any]:
    """The TrainConfig fields of recipe ``name`` (an old name warns); an unknown name lists the
    known ones."""
    name = current_name(name, "recipe")
    if name not in RECIPES:
        raise OptionError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return dict(RECIPES[name])
