"""onnxruntime backend for network runs: the same interface as ``TorchClassifier``, no torch.

A run exported with :func:`ferkit.models.onnx_export.export_onnx` holds ``model.onnx`` next to
its safetensors weights, and its card's ``onnx`` entry records the file's SHA-256 and the
weights it was exported from. :func:`load_run` asks :func:`load_onnx_estimator` for an
onnxruntime-backed estimator whenever the backend allows it (see :func:`resolve_backend`);
this module imports neither torch nor onnxruntime at import time, so a run that never uses the
ONNX backend pays nothing for it.

A run may also carry an int8 copy of the graph (``model.int8.onnx``, static QDQ quantisation,
see :mod:`ferkit.models.onnx_quantize`), recorded in the card's ``onnx_int8`` entry with its own
SHA-256 and the val accuracy that justified it. It is shipped only where it loses at most 0.3
points of val accuracy, and then it is what ``auto`` and ``onnx`` run; ``onnx-fp32`` insists on
the float graph.

A flip-averaged network (``flip_average``: each face scored with its mirror image) is
exported in one of two forms, recorded as the card entry's ``flip``: ``"inside"`` (the
default of ``ferkit export``, and what an entry without the key means: the graph averages the
two views itself, self-contained for any runtime) or ``"outside"`` (the shipped networks: the
graph scores one view and :class:`OnnxClassifier` runs each batch with its mirror and averages
logits and embeddings; the head is linear, so that equals the in-graph average to float
rounding). Only the outside form can skip the mirror at inference (``flip=False``, ``--no-flip``:
half the network time).

What the graph computes is fixed by the exporter: uint8 NHWC pixels in, the training
normalisation inside the graph, ``logits`` and the penultimate ``embedding`` out. So
``predict_proba``, ``predict`` and ``embed`` all run in onnxruntime; what needs the torch
module itself (Grad-CAM's gradients, fine-tuning's state_dict: ``.model``, ``.to_tensor``)
is not here, and those callers load the run with ``backend="torch"``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import FerkitError, ModelFileError

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
ONNX_KEY = "onnx"  # the card entries that record each graph
INT8_KEY = "onnx_int8"
INPUT_NAME = "images"
LOGITS = "logits"
EMBEDDING = "embedding"
FLIP_KEY = "flip"  # in an onnx / onnx_int8 entry: where the mirror view is averaged
FLIP_INSIDE = "inside"  # the graph averages the two views (also: the key is absent)
FLIP_OUTSIDE = "outside"  # the graph scores one view; OnnxClassifier adds the mirror
FLIP_PLACES = (FLIP_INSIDE, FLIP_OUTSIDE)
BACKEND_ENV = "FERKIT_BACKEND"
BACKENDS = ("auto", "torch", "onnx", "onnx-fp32")
INSTALL_HINT = "pip install 'ferkit[onnx]'"


def resolve_backend(backend: str | None) -> str:
    """``backend`` if given, else ``$FERKIT_BACKEND``, else ``"auto"``; validated.

    The parameter wins over the environment so that code which needs torch (Grad-CAM,
    fine-tuning) can insist on it even when a deployment sets ``FERKIT_BACKEND=onnx``.
    """
    source = "backend"
    if backend is None:
        backend, source = os.environ.get(BACKEND_ENV) or "auto", BACKEND_ENV
    value = backend.strip().lower()
    if value not in BACKENDS:
        raise FerkitError(f"{source} must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return value


def onnxruntime_available() -> bool:
    """True when ``import onnxruntime`` works (the optional ``onnx`` extra is installed)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


THREADS_ENV = "FERKIT_THREADS"


def default_threads() -> int:
    """``FERKIT_THREADS`` when set, else the cores this process may run on (affinity-aware, so
    a pinned or containerised process does not oversubscribe): onnxruntime's own default counts
    physical cores of the host. The variable is the one knob for every onnxruntime session
    ferkit makes (face detector and classifier alike), e.g. ``FERKIT_THREADS=1`` for a fair
    one-thread benchmark or one server worker per core; ``OMP_NUM_THREADS`` does not reach
    onnxruntime's own pool."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise FerkitError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def make_session(model: bytes | str | Path, threads: int | None = None) -> Any:
    """A CPU ``InferenceSession`` with ``threads`` intra-op threads and one inter-op thread.

    One inter-op thread because these graphs are a single chain of convolutions: there is no
    parallel branch to run, and a second pool would only compete for the same two cores.
    The intra-op threads sleep between ops instead of spinning: on a shared machine a spinning
    thread burns the time slice its sibling needs (measured on the 2-core dev machine at load
    5: 1.4x the faces/s at batch 256, 1.9x at batch 1; docs/BENCHMARKS.md).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: ORT's info lines are noise for users
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def check_flip_place(value: Any, name: str = "flip") -> str:
    """``value`` when it is one of ``FLIP_PLACES``; else a FerkitError naming ``name``."""
    if value not in FLIP_PLACES:
        raise FerkitError(f"{name} must be one of {', '.join(FLIP_PLACES)}, got {value!r}")
    return str(value)


def graph_flip(entry: Mapping[str, Any], where: str, key: str = ONNX_KEY) -> str:
    """Where a graph's mirror view is averaged (``FLIP_PLACES``): the card entry's ``flip``,
    ``"inside"`` when absent (every graph exported before the key existed); anything else is a
    ModelFileError naming ``where`` (the card) and ``key`` (its entry), never a guess about
    what the graph computes."""
    value = entry.get(FLIP_KEY, FLIP_INSIDE)
    if value not in FLIP_PLACES:
        raise ModelFileError(
            f"{where}: {key}.flip must be one of {', '.join(map(repr, FLIP_PLACES))}, got "
            f"{value!r} "
            "(a card from a newer ferkit, or edited)"
        )
    return str(value)


def mirrored(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) images flipped left-right, as ``Network.embed`` flips its NCHW input."""
    return np.ascontiguousarray(images[:, :, ::-1])


class OnnxClassifier:
    """Predicts from uint8 (N, H, W, C) images with an onnxruntime session.

    Same interface as ``TorchClassifier`` for prediction (``predict_proba``, ``predict``,
    ``embed``); inputs are batched (``batch_size``, or the graph's own batch when it was
    exported with a fixed one, padding the last chunk) so memory stays flat on big splits.

    ``graph_flip="outside"``: the graph is a flip-averaged network exported without its
    mirror view, and each batch is run with its mirror here, logits and embeddings averaged
    (``flip=False`` skips the mirror: the single view, at half the cost). ``"inside"``: the
    graph is used as it is (``flip`` cannot change it; :func:`ferkit.models.flip.single_view`
    loads the torch network instead).
    """

    backend = "onnx"
    # Up to this many images, a batch and its mirror go to the session in one call of 2N;
    # larger batches in two calls of N. Measured on the shipped fer2013 int8 graph, 2 threads
    # (docs/BENCHMARKS.md, "Without the flip"): one call is 1.35x as fast at batch 1 and ~6% at
    # 32, two calls ~4% faster at 128-256 (the 2N activations outgrow the caches).
    MIRROR_ONE_CALL_MAX = 64

    def __init__(
        self,
        session: Any,
        batch_size: int = 256,
        precision: str = "fp32",
        graph_flip: str = FLIP_INSIDE,
        flip: bool = True,
    ) -> None:
        check_flip_place(graph_flip, "graph_flip")
        self.session = session
        self.precision = precision  # "fp32", or "int8" for the quantised graph
        self.graph_flip = graph_flip
        self.flip = bool(flip)
        graph_input = session.get_inputs()[0]
        self.input_name = graph_input.name
        shape = list(graph_input.shape)
        self.image_shape = tuple(int(d) for d in shape[1:])
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.batch_size = self.fixed_batch or batch_size
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if LOGITS not in outputs:
            raise FerkitError(f"the ONNX graph has no {LOGITS!r} output (got {sorted(outputs)})")
        self.num_classes = int(outputs[LOGITS][-1])
        self.has_embedding = EMBEDDING in outputs

    def _check(self, images: np.ndarray) -> np.ndarray:
        """uint8 images of the graph's shape, or a FerkitError saying what differs."""
        images = np.asarray(images)
        if images.ndim != 4:
            raise FerkitError(f"expected (N, H, W, C) images, got shape {images.shape}")
        if images.shape[1:] != self.image_shape:
            raise FerkitError(
                f"the ONNX graph takes {self.image_shape} images, got {images.shape[1:]}"
            )
        if images.dtype == np.uint8:
            return np.ascontiguousarray(images)
        in_range = images.size == 0 or 0 <= images.min() <= images.max() <= 255
        if images.dtype.kind in "iub" and in_range:
            return np.ascontiguousarray(images, dtype=np.uint8)
        raise FerkitError(
            f"the ONNX graph takes uint8 pixels (0..255), got {images.dtype}; "
            "use backend='torch' for other input"
        )

    @property
    def mirror(self) -> bool:
        """True when this classifier adds the mirror view itself (an outside-flip graph)."""
        return self.flip and self.graph_flip == FLIP_OUTSIDE

    def _call(self, batch: np.ndarray, output: str) -> np.ndarray:
        """One session call on ``batch`` (padded to the graph's fixed batch if it has one)."""
        n = len(batch)
        if self.fixed_batch and n < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - n, *self.image_shape), np.uint8)
            batch = np.concatenate([batch, pad])
        (out,) = self.session.run([output], {self.input_name: batch})
        return np.asarray(out, dtype=np.float32)[:n]

    def _views(self, batch: np.ndarray, output: str) -> np.ndarray:
        """``output`` for ``batch``: one view, or the mean over it and its mirror image (the
        mirror first, as ``Network.embed`` adds them)."""
        if not self.mirror:
            return self._call(batch, output)
        n = len(batch)
        if n <= self.MIRROR_ONE_CALL_MAX and not self.fixed_batch:
            both = self._call(np.concatenate([batch, mirrored(batch)]), output)
            original, flipped = both[:n], both[n:]
        else:
            original, flipped = self._call(batch, output), self._call(mirrored(batch), output)
        return (flipped + original) / np.float32(2)

    def _run(self, images: np.ndarray, output: str) -> np.ndarray:
        images = self._check(images)
        chunks = []
        for start in range(0, len(images), self.batch_size):
            chunks.append(self._views(images[start : start + self.batch_size], output))
        if not chunks:
            return np.zeros((0, self.num_classes if output == LOGITS else 0), np.float32)
        return np.concatenate(chunks)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Raw logits (N, classes)."""
        return self._run(images, LOGITS)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, classes)."""
        return _softmax(self.logits(images))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1) if len(images) else np.zeros(0, int)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer features, the graph's ``embedding`` output."""
        if not self.has_embedding:
            raise FerkitError(
                f"this ONNX graph has no {EMBEDDING!r} output; load the run with backend='torch'"
            )
        return self._run(images, EMBEDDING)


class _NoExport(Exception):
    """The run was never exported (or its file was removed): a quiet fallback under auto."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked_onnx_bytes(
    run_dir: Path, card: Mapping[str, Any], key: str = ONNX_KEY
) -> tuple[Path, bytes]:
    """The graph's bytes (the card's ``key`` entry: ``onnx`` or ``onnx_int8``), after checking
    the entry and the checksums.

    Any reason not to use the export raises FerkitError naming the file; ``_NoExport``
    marks the quiet case of a run that simply was never exported.
    """
    entry = card.get(key)
    if not isinstance(entry, dict):
        raise _NoExport(
            f"{run_dir / 'model.json'}: the run has no ONNX export (run `ferkit export "
            f"{run_dir} --onnx`)"
            if key == ONNX_KEY
            else f"{run_dir / 'model.json'}: the run has no int8 graph"
        )
    from ferkit.models.checks import card_file, read_model_file

    default = ONNX_FILE if key == ONNX_KEY else INT8_FILE
    path = card_file(run_dir, entry.get("file") or default, "ONNX file")
    if not path.is_file():
        raise _NoExport(f"{path}: the ONNX file named in model.json is missing")
    data = read_model_file(path)  # hash the very bytes the session gets: no swap in between
    if _sha256(data) != entry.get("sha256"):
        raise ModelFileError(
            f"{path}: does not match the sha256 in model.json (altered or damaged file)"
        )
    if entry.get("weights_sha256") != card.get("weights_sha256"):
        raise ModelFileError(
            f"{path}: was exported from other weights than model.safetensors (stale export; "
            f"run `ferkit export {run_dir} --onnx` again)"
        )
    return path, data


def _load_graph(
    run_dir: Path, card: Mapping[str, Any], key: str, forced: bool, threads: int | None
) -> OnnxClassifier | None:
    """The session of one recorded graph (``key``), or None (``forced``: a FerkitError) when
    it is not there or fails a check; a failed check warns, naming the file."""
    fallback = "the float graph" if key == INT8_KEY else "the torch weights"
    try:
        path, data = _checked_onnx_bytes(run_dir, card, key)
    except _NoExport as exc:
        if forced:
            raise FerkitError(str(exc)) from None
        if key == INT8_KEY:  # the card names an int8 graph that is not there: say so
            warnings.warn(f"{exc}; using {fallback} instead", stacklevel=5)
        return None
    except FerkitError as exc:
        if forced:
            raise
        warnings.warn(f"{exc}; using {fallback} instead", stacklevel=5)
        return None
    place = graph_flip(card[key], str(run_dir / "model.json"), key)  # before any session
    try:
        precision = "int8" if key == INT8_KEY else "fp32"
        return OnnxClassifier(make_session(data, threads), precision=precision, graph_flip=place)
    except Exception as exc:  # onnxruntime raises its own exception types on a bad graph
        error = ModelFileError(f"{path}: onnxruntime cannot load it: {exc}")
        if forced:
            raise error from exc
        warnings.warn(f"{error}; using {fallback} instead", stacklevel=5)
        return None


def load_onnx_estimator(
    run_dir: Path,
    card: Mapping[str, Any],
    *,
    forced: bool,
    threads: int | None = None,
    fp32: bool = False,
) -> OnnxClassifier | None:
    """The run's onnxruntime estimator, or None when the torch one should be used.

    The int8 graph when the card records one (and not ``fp32``), else the float graph.
    ``forced`` (backend "onnx" or "onnx-fp32"): every obstacle is a FerkitError. Otherwise
    (backend "auto"): a run without an export, or without onnxruntime installed, quietly gets
    None; an export that fails its checks (tampered, stale, unloadable) warns and gets None, so
    predictions still come from the verified torch weights (a failed int8 graph falls back to
    the verified float graph first).
    """
    if not forced and not isinstance(card.get(ONNX_KEY), dict):
        return None  # never exported: no onnxruntime import to learn it
    if not onnxruntime_available():
        if forced:
            raise FerkitError(f"{run_dir}: the onnx backend needs onnxruntime ({INSTALL_HINT})")
        return None
    if not fp32 and isinstance(card.get(INT8_KEY), dict):
        estimator = _load_graph(run_dir, card, INT8_KEY, forced, threads)
        if estimator is not None:
            return estimator
    return _load_graph(run_dir, card, ONNX_KEY, forced, threads)
