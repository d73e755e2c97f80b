"""Named training recipes: every setting besides the architecture that decides a network's score.

``seed``   how the seed notebook trained its CNNs (undersampled train, its flip / rotation /
           zoom / shear augmentation, Adam 1e-3, ReduceLROnPlateau, batch 32), with the early
           stopping patience ``ferkit study`` uses (8).
``ferkit`` how ferkit's shipped networks were trained (docs/BENCHMARKS.md, benchmark 9b): all of
           train, strong augmentation, label smoothing, AdamW with a cosine schedule over the
           whole budget (so no early stopping), flip test-time averaging. On FER2013 val the
           same ``fernet`` scored 48.9% with the seed recipe (the full study) and 53.9% with
           this one, both on the blurred train copy; 66.0% with this one on the sharp split
           (the shipped ``fer2013``).

Each is a set of :class:`ferkit.training.deep.TrainConfig` fields, so a recipe is applied with
``TrainConfig(**recipe, ...)`` and shows in every run's card.
"""

from __future__ import annotations

from typing import Any

SEED_RECIPE: dict[str, Any] = {
    "balance": "undersample",
    "augment": "seed",
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
RECIPES: dict[str, dict[str, Any]] = {"seed": SEED_RECIPE, "ferkit": FERKIT_RECIPE}


def recipe(name: str) -> dict[str, Any]:
    """The TrainConfig fields of recipe ``name``; an unknown name lists the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def train_options(name: str) -> list[str]:
    """The ``ferkit train`` options that apply recipe ``name`` (batch size and patience apart:
    callers print those themselves), for the exact commands a study records."""
    options: list[str] = []
    for key, value in recipe(name).items():
        if key not in ("batch_size", "patience"):
            options += [f"--{key.replace('_', '-')}", str(value)]
    return options
