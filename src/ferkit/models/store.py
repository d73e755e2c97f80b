"""A run folder holds one trained model: its weights and a JSON card that says how to feed it.

Model files must load without executing code, so scikit-learn models are saved with skops
(never pickle or joblib) and every node of the file's schema is checked, before anything is
built, against an explicit list of the exact types ferkit's own pipelines contain (no module
prefixes: a prefix such as ``builtins.`` or ``numpy.`` admits ``exec`` and ``full_like``, and
skops' own default trust admits callables like ``FunctionTransformer``). The card records the
SHA-256 of the weights, which every load checks. The JSON card (``model.json``) carries
the classes, their canonical names and the preprocessing (image size, colour), so ``evaluate``
and ``predict`` can feed any dataset to any run.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit import __version__, io
from ferkit.errors import FerkitError, ModelFileError
from ferkit.models.card import CARD_VERSION, FORMAT, ModelCard, card_from, load_card
from ferkit.models.checks import (
    CARD,
    card_file,
    checked_bytes,
    expected_sha256,
    sha256,
)

if TYPE_CHECKING:  # the dataset layer is only an annotation here: loading a run skips it
    from ferkit.data.dataset import Split
    from ferkit.data.images import Color

SKOPS_FILE = "model.skops"
# numpy scalar types an array node may be cast to: plain numbers, nothing callable beyond that
_NUMPY_SCALARS = frozenset(
    f"numpy.{name}"
    for name in (
        *("bool", "bool_", "float16", "float32", "float64"),
        *(f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)),
    )
)
# Every (skops loader, type) pair a ferkit scikit-learn run may contain; anything else in a
# file is refused before skops builds anything. Derived from what `ferkit svm` writes for
# every feature x method (tests/test_model_security.py keeps it exact). No loader that calls
# a function (FunctionNode, PartialNode, MethodNode, OperatorFuncNode, ConstructorFromReduce)
# is listed: ferkit's pipelines hold none.
ALLOWED_SKOPS_TYPES: dict[str, frozenset[str]] = {
    "ObjectNode": frozenset(
        {
            "ferkit.features.embedding.DlibEmbedding",
            "ferkit.features.hog.HOG",
            "ferkit.features.landmarks.Landmarks68",
            "ferkit.features.network.NetworkEmbedding",
            "ferkit.features.raw.RawPixels",
            "ferkit.features.sharpness.MatchSharpness",
            "ferkit.models.svm.SVMClassifier",
            "sklearn.decomposition._pca.PCA",
            "sklearn.kernel_approximation.Nystroem",
            "sklearn.linear_model._ridge.RidgeClassifier",
            "sklearn.pipeline.Pipeline",
            "sklearn.preprocessing._data.StandardScaler",
            "sklearn.preprocessing._label.LabelBinarizer",
            "sklearn.svm._classes.LinearSVC",
            "sklearn.svm._classes.SVC",
        }
    ),
    "DictNode": frozenset({"builtins.dict"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": frozenset({"builtins.str"}),
    "TypeNode": frozenset({"builtins.str"}),  # the key type of a dict
    "NdArrayNode": frozenset({"numpy.ndarray"}) | _NUMPY_SCALARS,
}


@dataclass
class Run:
    """A loaded run: ``predict`` takes uint8 images as the dataset layer returns them."""

    path: Path
    kind: str
    classes: list[str]
    canonical: list[str]
    image_size: int
    color: Color
    estimator: Any
    # a plain dict (a partial card, as tests and older scripts pass) becomes a ModelCard
    # completed from the fields above
    card: ModelCard = field(default_factory=dict)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not isinstance(self.card, ModelCard):
            given: Mapping[str, Any] = self.card
            own = {"kind": self.kind, "classes": self.classes, "canonical": self.canonical}
            own |= {"image_size": self.image_size, "color": self.color}
            self.card = ModelCard.from_dict({**own, **given}, self.path / CARD)

    @property
    def name(self) -> str:
        return str(self.card.name or self.path.name)

    @property
    def backend(self) -> str:
        """What runs the predictions: "sklearn", "torch" or "onnx" (onnxruntime)."""
        return str(getattr(self.estimator, "backend", self.kind))

    def prepare(self, split: Split) -> np.ndarray:
        """The split's images in this run's size and colour (a clear error if they differ)."""
        images = split.images
        channels = 1 if self.color == "gray" else 3
        if images.shape[1:] != (self.image_size, self.image_size, channels):
            raise FerkitError(
                f"run {self.path} expects {self.image_size}x{self.image_size} {self.color} images, "
                f"got {'x'.join(map(str, images.shape[1:]))} (height x width x channels); "
                f"load the data with image_size={self.image_size}, "
                f"color={self.color!r}"
            )
        return images

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices (into ``classes``) for (N, H, W, C) uint8 images."""
        return np.asarray(self.estimator.predict(images), dtype=np.int64)


# A run's training records, copied with its card and weights.
RUN_RECORDS = ("train.json", "history.json")


def copy_run(run: Run, dest: Path, card: ModelCard) -> Path:
    """Copy ``run``'s weights and training records into ``dest`` under ``card``, for exporting
    to a folder and for shipping a model alike. ``card`` loses its ``onnx`` and ``onnx_int8``
    entries: the graphs are not copied with it. The caller checks that the weights file exists."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in (str(run.card.weights), *RUN_RECORDS):
        if (run.path / name).is_file():
            io.write_bytes(dest / name, (run.path / name).read_bytes())
    io.write_json(dest / CARD, card.without("onnx", "onnx_int8").to_dict())
    return dest


def save_sklearn_run(run_dir: str | Path, estimator: Any, card: dict[str, Any] | ModelCard) -> Path:
    """Write ``model.skops`` and ``model.json`` atomically into ``run_dir``."""
    required = {"classes", "canonical", "image_size", "color"}
    if missing := required - set(card):
        raise ValueError(f"model card lacks {sorted(missing)}")
    run_dir = Path(run_dir)
    import skops.io as sio  # 3 s of imports (sklearn, torch): only runs that use skops pay

    # Deflate: float64 arrays fitted on float32 features carry zero low bits (about half off).
    data = sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED)
    io.write_bytes(run_dir / SKOPS_FILE, data)
    full = {
        "format": FORMAT,
        "card_version": CARD_VERSION,
        "kind": "sklearn",
        "ferkit_version": __version__,
        "weights": SKOPS_FILE,
        "weights_sha256": sha256(data),
        **card,
    }
    io.write_json(run_dir / CARD, card_from(full, run_dir / CARD).to_dict())
    return run_dir


def _schema_nodes(obj: Any) -> Iterator[tuple[str, str]]:
    """(loader, module.class) of every node in a skops schema, however deeply nested.

    Any dict with a ``__loader__`` is a node skops would build; one lacking its module or
    class is reported as such rather than skipped.
    """
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                module, name = item.get("__module__"), item.get("__class__")
                yield str(item["__loader__"]), f"{module}.{name}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def refused_types(data: bytes, source: Path) -> list[str]:
    """Types in skops file ``data`` outside ``ALLOWED_SKOPS_TYPES`` (empty: safe to load).

    Functions and other nodes whose loader is not allowed at all are named with the loader,
    e.g. ``builtins.exec (FunctionNode)``.
    """
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelFileError(f"{source}: cannot load the model: not a skops file ({exc})") from exc
    refused = set()
    for loader, name in _schema_nodes(schema):
        if name not in ALLOWED_SKOPS_TYPES.get(loader, ()):
            refused.add(name if loader in ALLOWED_SKOPS_TYPES else f"{name} ({loader})")
    return sorted(refused)


def load_skops_bytes(data: bytes, source: Path) -> Any:
    """The estimator in skops bytes ``data``; refused (naming ``source`` and the types) unless
    every node is in ``ALLOWED_SKOPS_TYPES``, so no attacker-chosen callable is ever built."""
    refused = refused_types(data, source)
    if refused:
        raise ModelFileError(
            f"{source}: refuses to load unexpected types {refused} (ferkit's own models "
            "contain none of them; the file was not written by ferkit or was tampered with)"
        )
    import skops.io as sio  # 3 s of imports (sklearn, torch): only runs that use skops pay

    try:
        untrusted = sio.get_untrusted_types(data=data)
        outside = sorted(set(untrusted) - set().union(*ALLOWED_SKOPS_TYPES.values()))
        if outside:  # skops saw a type the schema walk did not: refuse rather than guess
            raise ModelFileError(f"{source}: refuses to load unexpected types {outside}")
        return sio.loads(data, trusted=untrusted)
    except FerkitError:
        raise
    except Exception as exc:  # skops raises many types on a damaged file
        raise ModelFileError(f"{source}: cannot load the model: {exc}") from exc


def _load_sklearn_estimator(run_dir: Path, card: ModelCard) -> Any:
    weights = card_file(run_dir, card.get("weights", SKOPS_FILE), "weights")
    return load_skops_bytes(checked_bytes(weights, expected_sha256(run_dir, card)), weights)


def _load_network_estimator(run_dir: Path, card: ModelCard, backend: str) -> Any:
    """onnxruntime when the backend allows it and the run has a verified export, else torch.

    The card's weights checksum is required whichever backend runs: an old or edited card
    cannot slip through the ONNX path (whose export entry is matched against it).
    """
    expected_sha256(run_dir, card)
    if backend != "torch":
        from ferkit.models.onnx_run import load_onnx_estimator  # no torch import on this path

        forced = backend in ("onnx", "onnx-fp32")
        estimator = load_onnx_estimator(run_dir, card, forced=forced, fp32=backend == "onnx-fp32")
        if estimator is not None:
            return estimator
    from ferkit.models.torch_run import load_torch_estimator  # torch only when needed

    return load_torch_estimator(run_dir, card)


def load_run(run_dir: str | Path, backend: str | None = None) -> Run:
    """Load a run folder (or a shipped model by name); errors name the file and the reason.

    ``backend`` decides what runs a network run (default: ``$FERKIT_BACKEND``, else
    ``"auto"``): ``"auto"`` uses onnxruntime when the run has an ONNX export whose checksum
    matches its card and onnxruntime is installed, torch otherwise (a tampered or stale
    export warns and falls back); the run's int8 graph (``model.int8.onnx``) when its card
    records one, else ``model.onnx``; ``"onnx"`` insists on onnxruntime and raises FerkitError
    for anything that stands in the way; ``"onnx-fp32"`` likewise, on the float graph;
    ``"torch"`` always loads the torch network (needed for
    Grad-CAM and fine-tuning). scikit-learn runs have one backend and ignore the setting.
    """
    from ferkit.models.onnx_run import resolve_backend

    backend = resolve_backend(backend)  # a bad value fails even for sklearn runs
    run_dir = Path(run_dir)
    if not run_dir.exists() and len(run_dir.parts) == 1:
        from ferkit.weights import shipped_path

        run_dir = shipped_path(run_dir.name)
    card = load_card(run_dir)
    color: Color = "gray" if card.color == "gray" else "rgb"  # the card allows only these
    if card.kind == "sklearn":
        estimator = _load_sklearn_estimator(run_dir, card)
    else:
        estimator = _load_network_estimator(run_dir, card, backend)
    return Run(
        run_dir,
        str(card.kind),
        list(card.classes),
        list(card.canonical),
        card.image_size,
        color,
        estimator,
        card,
    )
