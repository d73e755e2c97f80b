"""Export a network run to ONNX, so it can be served by onnxruntime (or any ONNX runtime).

The graph takes **uint8 NHWC pixels** (``images``, shape ``(batch, H, W, C)``), exactly what
the dataset layer and ``Run.predict`` use, and applies the run's own normalisation inside:
``(x / 255 - mean) / std``, the same ops in the same order as ``torch_run.to_input``. Baking it
in keeps all preprocessing in one place: a C++, mobile or browser consumer feeds raw pixels
and cannot get the channel order, the scale or the training statistics wrong, and the input
is a quarter of the size of a float tensor. The graph has two outputs: ``logits``
``(batch, classes)`` (no softmax, as the torch network) and ``embedding`` ``(batch, D)``, the
penultimate features that ``head`` classifies; the embedding is computed on the way to the
logits anyway, so exposing it costs nothing and lets the onnxruntime backend serve ``embed``.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``). It needs
only the ``onnx`` package, where the newer torch.export-based one also needs ``onnxscript``;
ferkit's networks are plain conv / BN / pool / linear stacks without data-dependent control
flow, which tracing captures exactly. torch marks that exporter deprecated; if a future torch
drops it, :func:`export_onnx` says so rather than failing obscurely.

A flip-averaged network (``--tta flip``) is exported by default with the averaging inside the
graph (``flip="inside"``): one self-contained graph answers exactly as the torch run does, in
any runtime. ``flip="outside"`` (``--flip outside``; what the shipped networks use) exports the
single view and records ``"flip": "outside"`` in the card entry and the file's metadata: the
consumer runs each batch with its mirror image and averages (ferkit's ``OnnxClassifier`` does),
and may skip the mirror for half the cost (``--no-flip``).

The run card gains an ``onnx`` entry (file, opset, SHA-256 of the file, input layout, the
weights SHA-256 it was exported from, the measured torch/onnxruntime difference); the file and
the card are written atomically, and the card's other fields are left as they were. Classes
and preprocessing also go into the ONNX file's metadata, so an exported file used on its own
(``--out`` elsewhere) still says what its outputs mean.

Never in place into the package: a shipped model (anything inside the installed ``ferkit``
package) or a read-only run folder is not written to. Exporting one needs ``--out``: a
``FILE.onnx`` (a stand-alone file) or a folder, which gets a copy of the run (card, weights,
``train.json``/``history.json``) with ``model.onnx`` recorded in the copy's card. Writing into
the package would change what every later ``load_run("affectnet")`` runs, for every user of
that installation, and would be lost (or conflict) on the next upgrade.
"""

from __future__ import annotations

import io as _io
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit import __version__, io
from ferkit.errors import FerkitError
from ferkit.models.card import load_card
from ferkit.models.nets.base import Network
from ferkit.models.onnx_run import (
    EMBEDDING,
    FLIP_INSIDE,
    FLIP_KEY,
    FLIP_OUTSIDE,
    INPUT_NAME,
    INSTALL_HINT,
    LOGITS,
    ONNX_FILE,
    OnnxClassifier,
    check_flip_place,
    make_session,
    onnxruntime_available,
)
from ferkit.models.store import CARD, Run, copy_run, load_run
from ferkit.models.torch_run import sha256

# 17 runs on every onnxruntime since 1.14 and on most other runtimes (TensorRT 8.6+,
# onnxruntime-web, OpenVINO); these networks use no operator newer than opset 11.
DEFAULT_OPSET = 17
MIN_OPSET = 11
MAX_OPSET = 20  # the TorchScript exporter's newest
CHECK_BATCH = 8  # images in the random batch that compares onnxruntime with torch


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    sha256: str
    opset: int
    batch: int | str
    card_updated: bool  # False when the file went outside the run folder
    max_abs_diff: float | None  # class probabilities, torch vs onnxruntime; None: not checked
    flip: str | None = None  # a flip-averaged network: "inside" or "outside" the graph

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


class _PixelsToLogits(nn.Module):
    """The network behind the run's own preprocessing: uint8 NHWC -> (logits, embedding);
    ``flip=False``: a flip-averaged network's single view (the mirror is averaged outside)."""

    def __init__(
        self, network: Network, mean: list[float], std: list[float], flip: bool = True
    ) -> None:
        super().__init__()
        self.network = network
        self.flip = flip
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # as torch_run.to_input, op for op
        x = (x - self.mean) / self.std
        features = self.network.embed(x, self.flip)
        return self.network.head(features), features


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise FerkitError(
            f"ONNX export needs the 'onnx' package, which is not installed ({INSTALL_HINT})"
        ) from None


def _check_options(opset: Any, batch: Any) -> int | str:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise FerkitError(f"opset must be an integer in {MIN_OPSET}..{MAX_OPSET}, got {opset!r}")
    if batch == "dynamic":
        return batch
    if isinstance(batch, str) and batch.isdigit():
        batch = int(batch)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise FerkitError(f"batch must be 'dynamic' or an integer >= 1, got {batch!r}")
    return batch


def _trace_to_bytes(module: nn.Module, example: torch.Tensor, opset: int, dynamic: bool) -> bytes:
    """ONNX bytes of ``module`` traced on ``example`` (the batch axis symbolic if ``dynamic``)."""
    axes = {name: {0: "batch"} for name in (INPUT_NAME, LOGITS, EMBEDDING)} if dynamic else None
    buffer = _io.BytesIO()
    with warnings.catch_warnings():
        # the exporter's deprecation notice is torch's roadmap, not the user's problem
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            torch.onnx.export(
                module,
                (example,),
                buffer,  # type: ignore[arg-type]  # a file object works; the stubs say a path
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[LOGITS, EMBEDDING],
                dynamic_axes=axes,
            )
        except (TypeError, ImportError, AttributeError) as exc:
            raise FerkitError(
                f"torch {torch.__version__}'s TorchScript ONNX exporter is unavailable: {exc}"
            ) from exc
    return buffer.getvalue()


def _with_metadata(data: bytes, card: Mapping[str, Any], flip: str | None) -> bytes:
    """``data`` checked by onnx, with what a stand-alone consumer needs in its metadata."""
    import onnx

    model = onnx.load_model_from_string(data)
    model.producer_name = "ferkit"
    model.producer_version = __version__
    model.doc_string = (
        f"{INPUT_NAME}: uint8 (batch, H, W, C) pixels, normalised inside; "
        f"{LOGITS}: class scores (softmax for probabilities); {EMBEDDING}: penultimate features"
    )
    meta = {
        "classes": card["classes"],
        "canonical": card["canonical"],
        "image_size": card["image_size"],
        "color": card["color"],
        "mean": card["mean"],
        "std": card["std"],
        "architecture": card["architecture"],
        "weights_sha256": card.get("weights_sha256"),
    }
    if flip is not None:  # a flip-averaged network: where its mirror view is averaged
        meta[FLIP_KEY] = flip
    onnx.helper.set_model_props(model, {k: json.dumps(v) for k, v in meta.items()})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - exporter bug
        raise FerkitError(f"the exported graph does not pass onnx.checker: {exc}") from exc
    return model.SerializeToString()


def max_abs_diff(
    run: Run, data: bytes, batch: int, seed: int = 0, flip: str = FLIP_INSIDE
) -> float:
    """Largest |p_torch - p_onnxruntime| over the class probabilities of a random uint8 batch
    (``flip="outside"``: the graph with its mirror view averaged by ``OnnxClassifier``)."""
    channels = 1 if run.color == "gray" else 3
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, run.image_size, run.image_size, channels), np.uint8)
    expected = run.estimator.predict_proba(images)
    got = OnnxClassifier(make_session(data), graph_flip=flip).predict_proba(images)
    return float(np.abs(expected - got).max())


def _card_entry(
    run: Run,
    file: str,
    digest: str,
    opset: int,
    batch: int | str,
    diff: float | None,
    flip: str | None,
) -> dict[str, Any]:
    channels = 1 if run.color == "gray" else 3
    classes = len(run.classes)
    embedding = int(run.estimator.model.head.in_features)
    axis = "batch" if batch == "dynamic" else batch  # the graph's own name for a free axis
    entry: dict[str, Any] = {
        "file": file,
        "sha256": digest,
        "opset": opset,
        "batch": batch,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "layout": "NHWC",
            "shape": [axis, run.image_size, run.image_size, channels],
            "normalisation": "inside the graph: (x / 255 - mean) / std",
        },
        "outputs": {LOGITS: [axis, classes], EMBEDDING: [axis, embedding]},
        "weights_sha256": run.card.get("weights_sha256"),
        "exporter": f"torch.onnx TorchScript, torch {torch.__version__}",
        "ferkit_version": __version__,
        "max_abs_diff": diff,
    }
    if flip == FLIP_OUTSIDE:  # absent means inside: graphs exported before the key read so
        entry[FLIP_KEY] = flip
    return entry


def _inside(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` when it lies inside it, else None."""
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed ``ferkit`` package


def _read_only_reason(folder: Path) -> str | None:
    """Why ``folder`` (a run folder) must not be written into, or None when it may be."""
    if _inside(folder, PACKAGE_DIR) is not None:
        return "is a model shipped inside the ferkit package, which export never changes"
    if not os.access(folder, os.W_OK) or not os.access(folder / CARD, os.W_OK):
        return "is a read-only run folder"
    return None


def _copy_run(source: Run, dest: Path) -> None:
    """Copy run ``source`` (card without its ``onnx`` entry, weights, training records) to
    ``dest``, which must be absent, empty, or an earlier copy of the same weights."""
    weights = str(source.card.get("weights", ""))
    if not weights or not (source.path / weights).is_file():
        raise FerkitError(f"{source.path}: the card names no weights file")
    if dest.exists() and not dest.is_dir():
        raise FerkitError(f"{dest}: --out is a file; give a FILE.onnx or a folder")
    if dest.is_dir() and any(dest.iterdir()):
        try:
            previous = json.loads((dest / CARD).read_text())
        except (OSError, ValueError):
            previous = {}
        if previous.get("weights_sha256") != source.card.get("weights_sha256"):
            raise FerkitError(
                f"{dest}: --out folder is not empty and holds no copy of {source.path}; "
                "give an empty or new folder"
            )
    io.ensure_writable_dir(dest)
    copy_run(source, dest, source.card)


def _resolve_target(source: Run, out_path: str | Path | None) -> tuple[Path, Path]:
    """(the .onnx file to write, the run folder whose card records it) for ``out_path``.

    No ``out_path``: into the run folder, unless it is shipped or read-only (then a
    FerkitError asks for ``--out``). ``FILE.onnx``: that file (recorded only when it lies in
    the run folder). Anything else: a folder that receives a copy of the run.
    """
    if out_path is None:
        reason = _read_only_reason(source.path)
        if reason is not None:
            raise FerkitError(
                f"{source.path} {reason}; pass --out FOLDER (a copy of the run with "
                f"{ONNX_FILE}, loadable like the run) or --out FILE.onnx (the graph alone)"
            )
        return source.path / ONNX_FILE, source.path
    out = Path(out_path)
    if _inside(out, PACKAGE_DIR) is not None:
        raise FerkitError(f"{out}: --out is inside the ferkit package; write elsewhere")
    if out.suffix.lower() == ".onnx":
        if _inside(out, source.path) is not None and _read_only_reason(source.path):
            raise FerkitError(f"{out}: --out is inside {source.path}, which is read-only")
        return out, source.path
    _copy_run(source, out)
    return out / ONNX_FILE, out


def export_onnx(
    run: str | Path | Run,
    out_path: str | Path | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    batch: int | str = "dynamic",
    check: bool = True,
    flip: str = FLIP_INSIDE,
) -> OnnxExport:
    """Export a network run to ONNX (default ``RUN/model.onnx``) and record it in the card.

    ``out_path``: ``FILE.onnx`` (a stand-alone file unless it lies in the run folder) or a
    folder, which receives a copy of the run whose card records the export; required for a
    shipped model or a read-only run folder, which are never written into.

    ``batch``: ``"dynamic"`` (any batch size, the default) or a fixed int for runtimes that
    want static shapes. ``check``: when onnxruntime is installed, compare its class
    probabilities with torch's on a random batch and report the largest difference. A file
    written outside the run folder is a stand-alone export: the card is not changed, so
    ``load_run`` keeps using what it had. ``flip``: where a flip-averaged network averages its
    mirror view, ``"inside"`` the graph (self-contained) or ``"outside"`` (the single view;
    see the module docstring); no effect on other networks.
    """
    batch = _check_options(opset, batch)
    check_flip_place(flip)
    source = load_run(run.path if isinstance(run, Run) else run, backend="torch")
    if source.kind != "torch":
        raise FerkitError(
            f"{source.path}: only network runs can be exported to ONNX; this is a "
            f"{source.kind!r} run"
        )
    _require_onnx()
    card = source.card
    channels = 1 if source.color == "gray" else 3
    network = source.estimator.model
    place = flip if getattr(network, "flip_average", False) else None  # None: nothing to flip
    module = _PixelsToLogits(network, card["mean"], card["std"], flip=place != FLIP_OUTSIDE).eval()
    example_batch = batch if isinstance(batch, int) else 2
    example = torch.zeros(
        (example_batch, source.image_size, source.image_size, channels), dtype=torch.uint8
    )
    target, run_dir = _resolve_target(source, out_path)
    data = _with_metadata(_trace_to_bytes(module, example, opset, batch == "dynamic"), card, place)
    io.write_bytes(target, data)
    diff = None
    if check and onnxruntime_available():
        size = batch if isinstance(batch, int) else CHECK_BATCH
        diff = max_abs_diff(source, data, size, flip=place or FLIP_INSIDE)
    digest = sha256(data)
    relative = _inside(target, run_dir)
    if relative is not None:
        _record(run_dir / CARD, _card_entry(source, relative, digest, opset, batch, diff, place))
    return OnnxExport(target, digest, opset, batch, relative is not None, diff, place)


def _record(card_path: Path, entry: dict[str, Any]) -> None:
    """Set the card's ``onnx`` entry, re-reading the card so no other field is touched."""
    card = load_card(card_path.parent).updated(onnx=entry)
    io.write_json(card_path, card.to_dict())
