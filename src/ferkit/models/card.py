"""The model card (``model.json``) as a typed, versioned record.

Every run folder's card says how to feed its model (classes, image size, colour,
normalisation), where its weights are and their checksum, and how it was trained. Training
(networks and scikit-learn pipelines), the store, ONNX export and ``weights/`` all read and
write it through :class:`ModelCard`, so the fields are declared once here.

Versions: ``card_version`` 1 is the card as ferkit has always written it, and every card
ferkit writes now says so. Cards written before the field existed (the shipped ones, runs of
earlier releases) carry none and load as version 1; rewritten (``trust``, ``export``, a
shipped copy) they keep their fields as they were, so they stay without one. A card from a
newer ferkit (a higher version) is refused with a message rather than half-read. Keys this
version does not model are kept and written back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from ferkit.errors import FerkitError, ModelFileError
from ferkit.models.checks import CARD, MAX_IMAGE_SIZE
from ferkit.records import Record

CARD_VERSION = 1
FORMAT = "ferkit-run/1"
KINDS = ("sklearn", "torch")


@dataclass(eq=False, kw_only=True)
class ModelCard(Record):
    """A run's ``model.json``. ``to_dict()`` is the JSON written (``card_version`` included);
    dict-style reads (``card["classes"]``) work for older scripts."""

    what: ClassVar[str] = "model card"
    error: ClassVar[type[FerkitError]] = ModelFileError
    descriptions: ClassVar[dict[str, str]] = {
        "classes": "a non-empty list of names",
        "canonical": "a non-empty list of names",
    }

    # fields in the order ferkit writes them (keyword-only, so the order is free)
    format: str | None = None
    card_version: int | None = None
    kind: Any = None  # "torch" or "sklearn" (checked with the run's own message)
    ferkit_version: str | None = None
    # weights: their file and SHA-256 (typed Any: checks.card_file / expected_sha256 refuse
    # bad values with the messages that name what is wrong with them)
    weights: Any = None
    weights_sha256: Any = None
    architecture: dict[str, Any] | None = None  # networks: registry name + constructor args
    name: str | None = None
    # how to feed the model: required of every card
    classes: list[str]
    canonical: list[str]
    image_size: int
    color: str
    # networks: the input normalisation
    mean: list[float] | None = None
    std: list[float] | None = None
    # scikit-learn runs: the features and the fitted SVM's settings
    features: str | None = None
    feature_params: dict[str, Any] | None = None
    sharpness_target: float | None = None
    svm_params: dict[str, Any] | None = None
    # provenance: what it was trained on, when and how (trained_on: a list for several datasets)
    framing: str | None = None
    trained_on: str | list[str] | None = None
    train_split: str | None = None
    val_split: str | None = None
    datasets: list[dict[str, Any]] | None = None
    date: str | None = None
    training: dict[str, Any] | None = None
    dedupe: dict[str, Any] | None = None  # the train images dropped as duplicates of val/test
    val_accuracy: float | None = None
    epoch: int | None = None
    command: str | None = None
    validation: dict[str, Any] | None = None
    # ONNX exports of a network run (file, checksums, opset...)
    onnx: dict[str, Any] | None = None
    onnx_int8: dict[str, Any] | None = None

    def check(self, where: str) -> None:
        """What every card needs, checked before any file it names is opened: a tampered
        ``image_size`` would otherwise make the data layer allocate what it says."""
        version = self.card_version
        if version is not None and not 1 <= version <= CARD_VERSION:
            raise ModelFileError(
                f"{where}card_version {version} is not one this ferkit reads (it reads up to "
                f"{CARD_VERSION}); the run was written by a newer ferkit: upgrade ferkit"
            )
        if self.kind not in KINDS:
            raise ModelFileError(f"{where}unsupported run kind {self.kind!r}")
        for key in ("classes", "canonical"):
            if not getattr(self, key):
                raise ModelFileError(f"{where}{key} must be a non-empty list of names")
        if len(self.canonical) != len(self.classes):
            raise ModelFileError(f"{where}classes and canonical differ in length")
        if not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ModelFileError(
                f"{where}image_size must be an integer in [1, {MAX_IMAGE_SIZE}], "
                f"got {self.image_size!r}"
            )
        if self.color not in ("gray", "rgb"):
            raise ModelFileError(f"{where}color must be 'gray' or 'rgb', got {self.color!r}")

    @property
    def version(self) -> int:
        """The card's version: ``card_version``, or 1 for a card written before the field."""
        return self.card_version or 1

    def updated(self, **changes: Any) -> ModelCard:
        """A copy with ``changes``: fields by name, other keys into ``extra``."""
        known = {k: v for k, v in changes.items() if k in _FIELDS}
        extra = {**self.extra, **{k: v for k, v in changes.items() if k not in _FIELDS}}
        return replace(self, **known, extra=extra)

    def without(self, *keys: str) -> ModelCard:
        """A copy without ``keys`` (fields set to None and dropped from the JSON)."""
        cleared: dict[str, Any] = {k: None for k in keys if k in _FIELDS}
        card = replace(
            self,
            **cleared,
            extra={k: v for k, v in self.extra.items() if k not in keys},
            key_order=tuple(k for k in self.key_order if k not in keys),
        )
        return card


_FIELDS = frozenset(ModelCard.__dataclass_fields__) - {"extra", "key_order"}


def card_from(data: dict[str, Any] | ModelCard, source: str | Path | None = None) -> ModelCard:
    """``data`` as a ModelCard (a dict is checked, a card returned as it is)."""
    return data if isinstance(data, ModelCard) else ModelCard.from_dict(data, source)


def read_json_card(run_dir: Path) -> dict[str, Any]:
    """The run folder's ``model.json`` as a plain dict, or a FerkitError naming it and why
    (for ``ferkit trust``, which must read a card too incomplete to load)."""
    card_path = run_dir / CARD
    if not card_path.is_file():
        raise ModelFileError(f"{run_dir}: not a ferkit run (no {CARD})")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{card_path}: unreadable model card: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelFileError(f"{card_path}: the model card is not a JSON object")
    return card


def load_card(run_dir: Path) -> ModelCard:
    """The run folder's checked :class:`ModelCard`; errors name ``model.json`` and why."""
    return ModelCard.from_dict(read_json_card(run_dir), run_dir / CARD)


def shipped_cards() -> list[ModelCard]:
    """Each shipped model's checked card with its ``name`` (``ferkit.weights`` lists them as
    plain JSON: it sits below this module)."""
    from ferkit.weights import WEIGHTS_DIR, shipped_models

    return [load_card(WEIGHTS_DIR / name).updated(name=name) for name in shipped_models()]
