"""Typed records: what ferkit writes as JSON (model cards, train.json, metrics.json, ...) as
dataclasses whose ``to_dict()`` is that JSON.

Why a base class: every record must (1) load what earlier releases wrote, so keys this
version does not model are kept in ``extra`` and written back, in the order they came;
(2) reject a file whose fields have the wrong type with a FerkitError naming the file rather
than a ``KeyError``/``TypeError`` deep inside a command; (3) keep dict-style reads
(``report["accuracy"]``) working for scripts written against the old dicts, which is why a
record is a read-only :class:`~collections.abc.Mapping` over ``to_dict()``. New code reads
attributes.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, Union, get_args, get_origin

from ferkit.errors import FerkitError

# Fields with this metadata are attributes only: never in to_dict() (e.g. a parsed form of
# something the JSON holds as text, so the CLI need not parse it back).
INTERNAL = {"record": False}


def plain(value: Any) -> Any:
    """``value`` with every record inside it turned into its dict (lists/dicts walked)."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass(eq=False)
class Record(Mapping[str, Any]):
    """A JSON object with typed fields; see the module docstring for the why.

    Optional fields default to ``None`` and are left out of ``to_dict()`` unless the loaded
    JSON had them (``null`` included), so a record round-trips to the very object it came from.
    """

    # keys of the JSON this record's class does not model, kept as they were
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)
    # the JSON's key order, so to_dict() writes keys where they were
    key_order: tuple[str, ...] = field(default=(), kw_only=True, repr=False)

    what: ClassVar[str] = "record"  # for error messages: "model card", "train summary"...
    # the error a bad file raises (a model card's is a ModelFileError)
    error: ClassVar[type[FerkitError]] = FerkitError
    # a field's type in words where the generic one ("a list of strings") says too little
    descriptions: ClassVar[dict[str, str]] = {}

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str | Path | None = None) -> Self:
        """The record of JSON object ``data``; a FerkitError naming ``source`` (the file) and
        the field when a field is missing or has the wrong type."""
        where = f"{source}: " if source is not None else ""
        if not isinstance(data, Mapping):
            raise cls.error(f"{where}the {cls.what} is not a JSON object")
        data = dict(data)
        hints = _hints(cls)
        values: dict[str, Any] = {}
        known = {}
        for f in fields(cls):
            if not f.init or f.name in _BASE_FIELDS or f.metadata.get("record", True) is False:
                continue
            key = _key(f)
            known[key] = f
            if key not in data:
                continue
            hint, value = hints[f.name], data[key]
            if not _fits(value, hint):
                wanted = cls.descriptions.get(key) or _describe(hint)
                raise cls.error(f"{where}{key} must be {wanted}, got {value!r:.80}")
            values[f.name] = _nested(value, hint, source)
        missing = [k for k, f in known.items() if f.name not in values and _required(f)]
        if missing:
            raise cls.error(f"{where}the {cls.what} lacks {sorted(missing)}")
        extra = {k: v for k, v in data.items() if k not in known}
        record = cls(**values, extra=extra, key_order=tuple(data))
        record.check(where)
        return record

    def check(self, where: str) -> None:
        """Checks across fields (ranges, lengths); ``where`` prefixes the message."""

    # -- writing ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the fields that are set (or were in the loaded JSON), then the
        extra keys, in the loaded JSON's order where there was one."""
        merged: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _BASE_FIELDS or f.metadata.get("record", True) is False:
                continue
            value, key = getattr(self, f.name), _key(f)
            if value is not None or key in self.key_order:
                merged[key] = value
        merged.update(self.extra)
        order = [k for k in self.key_order if k in merged]
        order += [k for k in merged if k not in self.key_order]
        return {k: plain(merged[k]) for k in order}

    # -- dict-style reads, for code written against the old dicts -----------------------------
    def __getitem__(self, key: str) -> Any:
        """``to_dict()[key]`` without building the whole dict (cards are read per image)."""
        f = _fields_by_key(type(self)).get(key)
        if f is None:
            return self.extra[key]
        value = getattr(self, f.name)
        if value is None and key not in self.key_order:
            raise KeyError(key)
        return plain(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


_BASE_FIELDS = frozenset({"extra", "key_order"})


@functools.cache
def _fields_by_key(cls: type[Record]) -> dict[str, Any]:
    """The JSON fields of record class ``cls`` by JSON key."""
    return {
        _key(f): f
        for f in fields(cls)
        if f.name not in _BASE_FIELDS and f.metadata.get("record", True) is not False
    }


def _key(f: Any) -> str:
    """The JSON key of field ``f``: its name unless that is a Python keyword (``class``)."""
    return str(f.metadata.get("key", f.name))


def _record_type(hint: Any) -> type[Record] | None:
    """The Record subclass ``hint`` names (alone or ``| None``), else None."""
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint
    if get_origin(hint) in (Union, types.UnionType):
        found = [t for t in map(_record_type, get_args(hint)) if t is not None]
        return found[0] if found else None
    return None


def _nested(value: Any, hint: Any, source: str | Path | None) -> Any:
    """``value`` with its nested JSON objects turned into the records ``hint`` names: a
    record, or a dict (or list) of them."""
    if value is None:
        return None
    if (record := _record_type(hint)) is not None:
        return record.from_dict(value, source)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        for arg in get_args(hint):
            if arg is not type(None) and _fits(value, arg):
                return _nested(value, arg, source)
    if origin is dict and (args := get_args(hint)) and _record_type(args[1]) is not None:
        return {k: _nested(v, args[1], source) for k, v in value.items()}
    if origin is list and (args := get_args(hint)) and _record_type(args[0]) is not None:
        return [_nested(v, args[0], source) for v in value]
    return value


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fits(value: Any, hint: Any) -> bool:
    """Whether JSON ``value`` has type ``hint`` (outer types: list/dict contents unchecked
    beyond their element type when it is a plain one)."""
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if isinstance(hint, type) and issubclass(hint, Record):
        return isinstance(value, Mapping)  # its own from_dict checks the fields
    if origin is dict:
        args = get_args(hint)
        values = value.values() if isinstance(value, dict) else ()
        return isinstance(value, dict) and (not args or all(_fits(v, args[1]) for v in values))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    """``hint`` in words for an error message."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        plurals = {str: "strings", int: "integers", float: "numbers"}
        return "a list" + ("" if item is Any else f" of {plurals.get(item, 'objects')}")
    if origin is dict or (isinstance(hint, type) and issubclass(hint, Record)):
        return "an object"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


# -- the results ferkit's commands return and write ---------------------------------------------
# Each has the fields scripts and the CLI read as attributes; whatever else its JSON holds
# (keys that depend on the run, such as a dataset's own split details) stays in ``extra``.


@dataclass(eq=False, kw_only=True)
class ClassScore(Record):
    """One class of a run: its index, canonical name and (for a prediction) probability."""

    what: ClassVar[str] = "class"

    index: int
    label: str = field(metadata={"key": "class"})
    probability: float | None = None


@dataclass(eq=False, kw_only=True)
class ClassMetrics(Record):
    """Precision, recall, F1 and support of one class in an evaluation."""

    what: ClassVar[str] = "class metrics"

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(eq=False, kw_only=True)
class SVMSearch(Record):
    """The grid search of ``ferkit svm --search``: where it ran and what won."""

    what: ClassVar[str] = "search summary"

    split: str | None = None
    samples: int | None = None
    folds: int | None = None
    grouped: bool | None = None
    best_params: dict[str, Any] | None = None
    best_cv_accuracy: float | None = None


@dataclass(eq=False, kw_only=True)
class Validation(Record):
    """A fitted model's score on the validation split, as training records it."""

    what: ClassVar[str] = "validation score"

    split: str | None = None
    n: int | None = None
    accuracy: float | None = None
    seconds: float | None = None


@dataclass(eq=False, kw_only=True)
class ExplainedFace(Record):
    """The face an explanation was made on (or why the whole image was used)."""

    what: ClassVar[str] = "face"

    faces_found: int
    note: str | None = None
    box: dict[str, int] | None = None
    framing: str | None = None
    quality_ok: bool | None = None
    quality_reasons: list[str] | None = None


@dataclass(eq=False, kw_only=True)
class TrainSummary(Record):
    """A network run's ``train.json``: what :func:`ferkit.training.deep.train_network`
    returns."""

    what: ClassVar[str] = "train summary"

    config: dict[str, Any] | None = None
    classes: list[str] | None = None
    image_size: int | None = None
    color: str | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    val_accuracy: float | None = None
    val_accuracy_by_dataset: dict[str, float] | None = None
    train_seconds_total: float | None = None
    date: str | None = None
    stopped_early: bool | None = None
    seconds_this_call: float | None = None
    parameters: int | None = None


@dataclass(eq=False, kw_only=True)
class SVMSummary(Record):
    """A scikit-learn run's ``train.json``: what :func:`ferkit.training.svm.train_svm`
    returns."""

    what: ClassVar[str] = "train summary"

    data: str | None = None
    features: str | None = None
    method: str | None = None
    seed: int | None = None
    image_size: int | None = None
    color: str | None = None
    search: SVMSearch | None = None
    feature_report: Any = None
    params: dict[str, Any] | None = None
    train_samples: int | None = None
    feature_seconds: float | None = None
    fit_seconds: float | None = None
    validation: Validation | None = None


@dataclass(eq=False, kw_only=True)
class EvalReport(Record):
    """``metrics.json``: what :func:`ferkit.evaluation.evaluate.evaluate_run` returns."""

    what: ClassVar[str] = "evaluation report"

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]
    accuracy_ci: list[float] | None = None
    macro_f1_ci: list[float] | None = None
    run: str | None = None
    model: str | None = None
    data: str | None = None
    split: str | None = None
    mapping: list[str] | None = None
    dropped_classes: list[str] | None = None
    problems: list[dict[str, Any]] | None = None
    no_face: list[dict[str, Any]] | None = None
    # whether each image was scored with its mirror image too (flip TTA; --no-flip: False)
    flip_averaged: bool | None = None
    # crop views averaged per image (--crops; 1: the image as given) and their side as a
    # fraction of the image (None without crops)
    crops: int | None = None
    crop_fraction: float | None = None
    # the side the network resampled each input through (its own step or --resample-via;
    # None: the images as given)
    resample_via: int | None = None
    figures: dict[str, str] | None = None
    # True when every data class is scored as the model class of the same name (the mapping
    # is then not worth printing); not part of the JSON, which has the mapping lines
    same_classes: bool | None = field(default=None, metadata=INTERNAL)


@dataclass(eq=False, kw_only=True)
class TuneResult(Record):
    """``best.json`` plus ``table`` (one row per trial, as in trials.csv): what
    :func:`ferkit.training.tune.tune` returns."""

    what: ClassVar[str] = "tuning result"

    model: str | None = None
    metric: str | None = None
    value: float | None = None
    trial: int | None = None
    params: dict[str, Any] | None = None
    trials: dict[str, int] | None = None
    command: str | None = None
    command_note: str | None = None  # only in best.json files of older versions
    table: list[dict[str, Any]] | None = None


@dataclass(eq=False, kw_only=True)
class ExplainResult(Record):
    """``explain.json``: what :func:`ferkit.evaluation.explain.explain_image` returns."""

    what: ClassVar[str] = "explanation"

    image: str
    run: str
    model: str
    layer: str
    face: ExplainedFace | None = None
    predicted: ClassScore
    probabilities: dict[str, float]
    target: ClassScore | None = None
    gradcam_class: ClassScore  # the class the heatmap explains: target, else predicted
    feature_maps: dict[str, Any]
    files: dict[str, str]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, best first."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]


@dataclass(eq=False, kw_only=True)
class StudyRecord(Record):
    """``study.json``: what :func:`ferkit.study.run_study` returns."""

    what: ClassVar[str] = "study record"

    config: dict[str, Any] | None = None
    dataset: str | None = None
    runs: list[str] | None = None
    in_progress: bool | None = None
    stages: dict[str, dict[str, Any]]
    seconds_this_invocation: float | None = None
    invocations: list[dict[str, Any]] | None = None
    warnings: list[dict[str, Any]] | None = None

    def failed_stages(self) -> list[str]:
        """The stages whose status is ``failed``, in order."""
        return [name for name, r in self.stages.items() if r.get("status") == "failed"]
