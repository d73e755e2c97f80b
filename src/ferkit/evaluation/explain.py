"""Explanations for neural-network runs: Grad-CAM overlays and feature-map grids.

The notebook's "Viewing The Filters" section cut a Keras model at a named conv layer and
showed every channel of its output for one test image (``coolwarm``, a square grid). This module
does the same for any torch ``nn.Module`` through forward hooks on a module named as in
``named_modules()`` (so it needs no model surgery and works for every ferkit network), and adds
Grad-CAM (Selvaraju et al. 2017), which answers the question the filter grid cannot: *where* in
the face the evidence for a class came from.

Everything is computed for one image, in fp32 with autocast off and the network in eval mode
(dropout and batch-norm statistics as at prediction time, so the explanation is of the same
forward pass that ``predict`` runs). Hooks are always removed and the module's train/eval flags
and its parameters' ``requires_grad`` are left as they were, so explaining a model never changes
what it does afterwards.

This module imports torch; it is deliberately not re-exported from ``ferkit.evaluation`` so
that importing that package stays light. Use ``from ferkit.evaluation.explain import ...``.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ferkit import io
from ferkit.data.images import Color, ImageProblem, decode_image, peek_image
from ferkit.errors import FerkitError

GRADCAM_FILE = "gradcam.png"
FEATURE_MAPS_FILE = "feature_maps.png"
EXPLAIN_FILE = "explain.json"
CROPS = ("auto", "face", "whole")

__all__ = [
    "CROPS",
    "EXPLAIN_FILE",
    "FEATURE_MAPS_FILE",
    "GRADCAM_FILE",
    "MIN_CAM_SIDE",
    "default_layer",
    "explain_image",
    "feature_map_figure",
    "feature_maps",
    "grad_cam",
    "gradcam_figure",
    "layer_shapes",
    "layer_table",
    "list_layers",
    "resolve_layer",
    "resolve_target",
    "run_layers",
]


# --------------------------------------------------------------------------- layers

# Grad-CAM's default layer is the deepest one whose map is at least this many pixels on a side.
# The deepest layers are the most class-specific, but FerNet's last stage is 3x3 at both shipped
# sizes: upsampled from 9 cells, its heatmap is one blob that cannot separate eyes from mouth.
# benchmarks/explain_layers.py (docs/BENCHMARKS.md) scored FerNet's stages on 100 val faces per
# dataset: the 6x6 stage3 put the most heat on the eyes and mouth and peaked there most often
# for both shipped models, ahead of the 12x12 stage2 that a "side >= image_size / 8" rule would
# pick at 96 px and of the 3x3 stage4.
MIN_CAM_SIDE = 6


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d)


def list_layers(model: nn.Module) -> list[str]:
    """Names (as ``named_modules()`` spells them) a user can pass as ``--layer``.

    These are the layers whose output is a spatial (N, C, H, W) map: every ``Conv2d``, every
    ``BatchNorm2d`` (the notebook's Keras blocks end in one), every named block that contains a
    conv (a stage or residual block, whose output is the block's result), and the model's own
    ``cam_layer``. Listed in registration order, which for the ferkit networks is input to
    output, so the last entries are the deep, class-specific layers.
    """
    cam = getattr(model, "cam_layer", None)
    names: list[str] = []
    for name, module in model.named_modules():
        if not name:
            continue
        spatial = _is_conv(module) or isinstance(module, nn.BatchNorm2d)
        block = any(_is_conv(m) for m in module.modules())
        if spatial or block or name == cam:
            names.append(name)
    return names


def _sample_input(model: nn.Module) -> torch.Tensor | None:
    """A zero image of the size a ferkit network was built for (its ``config``), else None."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        return None
    size, channels = config.get("image_size"), config.get("in_channels")
    if not isinstance(size, int) or not isinstance(channels, int):
        return None
    return torch.zeros(1, channels, size, size)


def layer_shapes(
    model: nn.Module, sample: torch.Tensor | np.ndarray | None = None
) -> dict[str, tuple[int, int, int]]:
    """``{name: (C, H, W)}`` of every listed layer that outputs a spatial map for ``sample``
    (default: a zero image of the network's own size), in the order the layers *finish*.

    Finishing order, not registration order, is what "deepest" means: a stage finishes after
    its blocks and a block after its convs, so the last entry with a given map size is the
    outermost module producing it (``stage3``, not the BN inside its last block, which comes
    before the residual add). One forward pass, without gradients; hooks are removed after.
    """
    if sample is None:
        sample = _sample_input(model)
        if sample is None:
            raise FerkitError(
                f"{type(model).__name__} does not record its input size; pass a sample image"
            )
    x = _one_image(model, sample)
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, int, int]] = {}

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                shapes.pop(name, None)  # a module called twice (flip averaging) counts last
                shapes[name] = (int(output.shape[1]), int(output.shape[2]), int(output.shape[3]))

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in list_layers(model)]
    try:
        with _explaining(model), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def default_layer(
    model: nn.Module,
    sample: torch.Tensor | np.ndarray | None = None,
    min_side: int = MIN_CAM_SIDE,
) -> str:
    """The layer Grad-CAM explains unless told otherwise: the deepest listed layer whose map
    is at least ``min_side`` pixels on its shorter side (see ``MIN_CAM_SIDE``).

    Deepest = last to finish in the forward pass (:func:`layer_shapes`). A network too small
    to have such a layer falls back to its deepest layer among those with the largest map,
    so small inputs still get an explanation. The model's ``cam_layer`` plays no part beyond
    being listed: the rule is the same for every family, so no network can default to a map
    too coarse to point at a feature.
    """
    return _pick_default(model, layer_shapes(model, sample), min_side)


def _pick_default(model: nn.Module, shapes: dict[str, tuple[int, int, int]], min_side: int) -> str:
    """:func:`default_layer`'s rule on shapes already measured."""
    if not shapes:
        raise FerkitError(
            f"{type(model).__name__} has no layer with a spatial (N, C, H, W) output to explain"
        )
    fine = [name for name, (_, h, w) in shapes.items() if min(h, w) >= min_side]
    if fine:
        return fine[-1]
    largest = max(min(h, w) for _, h, w in shapes.values())
    return [name for name, (_, h, w) in shapes.items() if min(h, w) == largest][-1]


def _unknown_layer(model: nn.Module, layer: object) -> FerkitError:
    """The error for a layer name the model lacks: the closest names first (a typo such as
    ``stage5`` or ``stage3.block1.conv`` should say what was meant), then every valid name
    when there are few, else a pointer to the full listing."""
    valid = list_layers(model)
    if not valid:
        return FerkitError(
            f"unknown layer {layer!r} for {type(model).__name__}: it has no conv layers"
        )
    close = difflib.get_close_matches(str(layer), valid, n=3, cutoff=0.6)
    hint = ""
    if close:
        hint = (
            f" (did you mean {close[0]}?)"
            if len(close) == 1
            else (f" (did you mean {', '.join(close[:-1])} or {close[-1]}?)")
        )
    if len(valid) <= 20:
        rest = f"valid layers: {', '.join(valid)}"
    else:
        rest = f"all {len(valid)} layers: ferkit explain RUN --list-layers"
    return FerkitError(f"unknown layer {layer!r} for {type(model).__name__}{hint}; {rest}")


def resolve_layer(
    model: nn.Module,
    layer: str | None = None,
    sample: torch.Tensor | np.ndarray | None = None,
) -> str:
    """The layer to explain: ``layer`` if the model has it, else :func:`default_layer` for
    ``sample`` (default: the network's own input size).

    Any module name is accepted (not only the listed ones) so custom models work; an unknown
    name is a FerkitError with the closest valid names. A model that records no input size
    and gets no sample falls back to its ``cam_layer``, else its last ``Conv2d``.
    """
    modules = dict(model.named_modules())
    if layer is None:
        if sample is not None or _sample_input(model) is not None:
            return default_layer(model, sample)
        cam = getattr(model, "cam_layer", None)
        if isinstance(cam, str) and cam in modules:
            return cam
        convs = [name for name, m in modules.items() if name and _is_conv(m)]
        if not convs:
            raise FerkitError(
                f"{type(model).__name__} has no cam_layer and no Conv2d; pass a layer name "
                f"(one of: {', '.join(n for n in modules if n) or 'none'})"
            )
        return convs[-1]
    if not layer or layer not in modules:
        raise _unknown_layer(model, layer)
    return layer


def layer_table(model: nn.Module, sample: torch.Tensor | np.ndarray | None = None) -> list[dict]:
    """Every listed layer with its output size and whether it is the default, in
    registration order (input to output, parents before their parts), for ``--list-layers``.
    A listed layer that does not run for this input (or outputs no spatial map) has no size."""
    shapes = layer_shapes(model, sample)
    chosen = _pick_default(model, shapes, MIN_CAM_SIDE) if shapes else None  # one forward pass
    rows = []
    for name in list_layers(model):
        shape = shapes.get(name)
        rows.append(
            {
                "name": name,
                "shape": list(shape) if shape else None,
                "default": name == chosen,
            }
        )
    return rows


# --------------------------------------------------------------------------- hooks


@contextmanager
def _explaining(model: nn.Module) -> Iterator[None]:
    """Eval mode, grad on, autocast off for the block; every module's mode restored after.

    Each module's own ``training`` flag is saved (not just the root's) because a caller may
    have put parts of a model in different modes, e.g. frozen batch-norm during fine-tuning.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad(), _no_autocast():
            yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def _no_autocast() -> Iterator[None]:
    """Autocast disabled for every device type that may be active, so the maps are fp32."""
    with torch.autocast("cpu", enabled=False):
        if torch.cuda.is_available():
            with torch.autocast("cuda", enabled=False):
                yield
        else:
            yield


class _Capture:
    """Forward hook that keeps a module's output and (optionally) the gradient flowing into it.

    The gradient is caught with a hook on the output *tensor*, not a module backward hook:
    module backward hooks break on in-place activations (``ReLU(inplace=True)``, used by most
    ferkit networks), while a tensor hook receives the gradient of exactly the value the module
    produced, even if a later in-place op overwrites it. The activation is cloned for the same
    reason. A module called more than once per forward (a shared ReLU) is captured at its
    last call, which is the one nearest the output.
    """

    def __init__(self, want_grad: bool) -> None:
        self.want_grad = want_grad
        self.calls: list[dict[str, torch.Tensor]] = []

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        slot: dict[str, torch.Tensor] = {"activation": output.detach().float().clone()}
        self.calls.append(slot)
        if self.want_grad and output.requires_grad:
            output.register_hook(lambda grad: slot.__setitem__("grad", grad.detach().float()))

    def last(self, layer: str, model: nn.Module) -> dict[str, torch.Tensor]:
        if not self.calls:
            raise FerkitError(
                f"layer {layer!r} did not produce a tensor in the forward pass; choose one of: "
                f"{', '.join(list_layers(model))}"
            )
        slot = self.calls[-1]
        act = slot["activation"]
        if act.ndim != 4:
            raise FerkitError(
                f"layer {layer!r} outputs shape {tuple(act.shape)}, not an (N, C, H, W) feature "
                f"map; choose one of: {', '.join(list_layers(model))}"
            )
        return slot


def _one_image(model: nn.Module, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``x`` as a fresh fp32 (1, C, H, W) tensor on the model's device, detached from the
    caller's graph so nothing the caller holds gains a gradient."""
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise FerkitError(
            f"explanations take one image as a (1, C, H, W) or (C, H, W) tensor, got shape "
            f"{tuple(x.shape)}"
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    return x.detach().to(device=device, dtype=torch.float32).clone()


def _forward(
    model: nn.Module, x: torch.Tensor, layer: str, want_grad: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model`` on ``x`` with a capture hook on ``layer``; the hook is gone on return."""
    module = dict(model.named_modules())[layer]
    capture = _Capture(want_grad)
    handle = module.register_forward_hook(capture)
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        raise FerkitError(
            f"{type(model).__name__} must return (1, num_classes) logits for one image, got "
            f"{getattr(logits, 'shape', type(logits).__name__)}"
        )
    return logits, capture.last(layer, model)


# --------------------------------------------------------------------------- maps


def grad_cam(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    layer: str | None = None,
    target: int | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM of one normalised image for class ``target`` (default: the predicted class).

    Returns ``(heatmap, target, probabilities)``: ``heatmap`` is (H, W) float32 in [0, 1] at
    the input's resolution (bilinear upsampling of ReLU(sum_k alpha_k A_k), alpha_k the
    spatial mean of d logit / d A_k), so it can be laid directly over the image;
    ``probabilities`` is the softmax over the classes from the same forward pass. A map that
    is zero everywhere (no positive evidence at that layer) is returned as zeros rather than
    divided by zero.

    The gradient is taken w.r.t. a private copy of ``x`` that requires grad, so it works even
    when every parameter is frozen, and only that copy receives ``.grad``: parameter
    gradients are not touched.
    """
    name = resolve_layer(model, layer, x)
    xx = _one_image(model, x)
    with _explaining(model):
        xx.requires_grad_(True)
        logits, slot = _forward(model, xx, name, want_grad=True)
        logits = logits.float()
        num_classes = logits.shape[1]
        if target is None:
            target = int(logits[0].argmax())
        elif isinstance(target, bool) or not 0 <= int(target) < num_classes:
            raise FerkitError(f"target class {target!r} is out of range 0..{num_classes - 1}")
        target = int(target)
        probabilities = torch.softmax(logits.detach()[0], dim=0).cpu().numpy()
        logits[0, target].backward(inputs=[xx])
    if "grad" not in slot:
        raise FerkitError(
            f"no gradient reached layer {name!r}: its output does not influence the logits"
        )
    act, grad = slot["activation"], slot["grad"]
    weights = grad.mean(dim=(2, 3), keepdim=True)  # alpha_k: one weight per channel
    cam = torch.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(xx.shape[-2:]), mode="bilinear", align_corners=False)
    heat = cam[0, 0].clamp_min(0).cpu().numpy().astype(np.float32)
    top = float(heat.max())
    heat = heat / top if top > 0 else np.zeros_like(heat)
    return heat, target, probabilities.astype(np.float32)


def feature_maps(
    model: nn.Module, x: torch.Tensor | np.ndarray, layer: str | None = None
) -> np.ndarray:
    """The (C, h, w) output of ``layer`` (default: :func:`default_layer`) for one normalised image,
    as float32; the notebook's per-filter view, without building a truncated model."""
    name = resolve_layer(model, layer, x)
    xx = _one_image(model, x)
    with _explaining(model), torch.no_grad():
        _, slot = _forward(model, xx, name, want_grad=False)
    return slot["activation"][0].cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------- figures


def _show_image(ax: Any, image: np.ndarray) -> None:
    """uint8 (H, W, C) or float (H, W) image, gray when it has one channel."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        ax.imshow(img, cmap="gray", vmin=0, vmax=255 if img.dtype == np.uint8 else None)
    else:
        ax.imshow(img)
    ax.set_axis_off()


def feature_map_figure(maps: np.ndarray, max_maps: int = 32, title: str | None = None) -> Figure:
    """The notebook's filter grid: the first ``max_maps`` channels in a near-square grid, in
    ``coolwarm`` (red = strongly present, blue = absent), each scaled to its own range as the
    notebook's per-subplot ``imshow`` did, so weak and strong channels are both readable.

    The tiles are drawn as one mosaic image rather than one subplot per channel: the picture
    is the same, but laying out dozens of axes costs seconds per figure.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"feature maps must be (C, h, w), got shape {maps.shape}")
    total, h, w = maps.shape
    n = max(0, min(int(max_maps), total))
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    # Small maps (3x3 at the deepest layers) are enlarged so a 1 px gutter stays thin.
    scale = max(1, math.ceil(24 / max(h, w, 1)))
    th, tw = h * scale, w * scale
    gap = 1 if scale == 1 and max(h, w) < 48 else max(1, max(th, tw) // 24)
    mosaic = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap), np.nan, np.float32)
    for k in range(n):
        tile = maps[k]
        lo, hi = float(np.min(tile)), float(np.max(tile))
        tile = (tile - lo) / (hi - lo) if hi > lo else np.full_like(tile, 0.5)
        r, c = divmod(k, cols)
        y, x = r * (th + gap), c * (tw + gap)
        mosaic[y : y + th, x : x + tw] = np.kron(tile, np.ones((scale, scale), np.float32))
    fig = Figure(figsize=(1.5 * cols + 1.2, 1.5 * rows + 0.6), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["coolwarm"].with_extremes(bad="white")
    im = ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    for k in range(n):
        r, c = divmod(k, cols)
        flat = float(np.ptp(maps[k])) == 0.0  # a dead (e.g. all-zero after ReLU) channel
        ax.text(
            c * (tw + gap) + 0.5,
            r * (th + gap) + 0.5,
            f"{k} (flat {float(maps[k].flat[0]):.2g})" if flat else str(k),
            fontsize=6,
            va="top",
            ha="left",
            color="black",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.6},
        )
    ax.set_axis_off()
    fig.colorbar(im, ax=ax, shrink=0.6, label="activation, per channel (min to max)")
    shown = f"channels 0-{n - 1} of {total}" if n else f"0 of {total} channels"
    ax.set_title(f"{title + ': ' if title else ''}{shown} ({h}x{w})", fontsize=10)
    return fig


def gradcam_figure(
    image: np.ndarray,
    heatmap: np.ndarray,
    predicted: str,
    probability: float,
    target: str | None = None,
    target_probability: float | None = None,
    alpha: float = 0.45,
) -> Figure:
    """Input | Grad-CAM heatmap | overlay, titled with the prediction (and the explained
    class when it was chosen explicitly, since the map then answers a different question:
    "where is the evidence for *that* class")."""
    heat = np.asarray(heatmap, dtype=np.float32)
    fig = Figure(figsize=(9.5, 3.6), layout="constrained")
    ax_in, ax_heat, ax_over = fig.subplots(1, 3)
    _show_image(ax_in, image)
    ax_in.set_title("input", fontsize=9)
    im = ax_heat.imshow(heat, cmap="jet", vmin=0, vmax=1)
    ax_heat.set_axis_off()
    ax_heat.set_title("Grad-CAM", fontsize=9)
    fig.colorbar(im, ax=ax_heat, fraction=0.046, pad=0.04)
    _show_image(ax_over, image)
    ax_over.imshow(heat, cmap="jet", vmin=0, vmax=1, alpha=alpha)
    ax_over.set_title("overlay", fontsize=9)
    title = f"predicted: {predicted} ({probability:.1%})"
    if target is not None:
        shown = f" ({target_probability:.1%})" if target_probability is not None else ""
        title += f" | Grad-CAM for: {target}{shown}"
    fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- runs


def resolve_target(
    target: int | str | None, classes: list[str], canonical: list[str] | None = None
) -> int | None:
    """Class index for ``target``: an index (int or digit string) or a class name in any case
    (the run's own names first, then canonical names). Unknown names are a FerkitError that
    lists the classes, so ``--target hapy`` says what to type instead."""
    if target is None:
        return None
    listing = ", ".join(f"{i}={c}" for i, c in enumerate(classes))
    if isinstance(target, bool):
        raise FerkitError(f"unknown target class {target!r}; classes: {listing}")
    if isinstance(target, int | np.integer):
        index = int(target)
    else:
        text = str(target).strip()
        if text.lstrip("-").isdigit():
            index = int(text)
        else:
            for names in (classes, canonical or []):
                lowered = [c.lower() for c in names]
                if text.lower() in lowered:
                    return lowered.index(text.lower())
            raise FerkitError(f"unknown target class {target!r}; classes: {listing}")
    if not 0 <= index < len(classes):
        raise FerkitError(f"target class index {index} is out of range; classes: {listing}")
    return index


def _decode(image_path: Path, size: int | None, color: Color) -> np.ndarray:
    """The image at the run's size/colour; any failure names the file."""
    if not image_path.exists():
        raise FerkitError(f"{image_path}: no such image file")
    if image_path.is_dir():
        raise FerkitError(f"{image_path}: is a folder, not an image file")
    try:
        # a writable copy: torch warns on (and must not alias) Pillow's read-only buffer
        return np.array(decode_image(image_path, size=size, color=color))
    except ImageProblem as exc:
        raise FerkitError(f"{image_path}: {exc}") from exc


def _explained_pixels(
    run: Any, image_path: Path, crop: str, detector: str
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """What the network is shown, and which face that was.

    A face crop (a dataset image) is shown whole. A photo is cut to its largest face, found,
    aligned and framed as ``ferkit predict`` does for this model, so the explanation is of the
    prediction a user gets; a whole 512 px photo squeezed to 96 px says nothing about a face.
    ``auto`` takes images up to twice the model's side as crops and falls back to the whole
    image (saying so) when a larger one shows no face; ``face`` insists on a face.
    """
    if crop not in CROPS:
        raise FerkitError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    header = peek_image(image_path) if crop == "auto" else None  # size without decoding
    if crop == "whole" or (header is not None and max(header[:2]) <= 2 * run.image_size):
        return _decode(image_path, run.image_size, run.color), None
    photo = _decode(image_path, None, "rgb")
    height, width = photo.shape[:2]
    from ferkit.faces.framing import framing_name, largest_face

    face, found = largest_face(photo, run, detector)
    if face is None:
        if crop == "face":
            raise FerkitError(
                f"{image_path}: no face found in this {width}x{height} image; "
                "explain the whole image with crop 'whole' (--crop whole)"
            )
        note = f"no face found in this {width}x{height} image: the whole image is explained"
        whole = _decode(image_path, run.image_size, run.color)
        return whole, {"faces_found": 0, "note": note}
    box = face.box
    return np.array(face.crop), {
        "faces_found": found,
        "box": {"left": box.left, "top": box.top, "width": box.width, "height": box.height},
        "framing": framing_name(run.card),
        "quality_ok": face.quality.ok,
        "quality_reasons": list(face.quality.reasons),
    }


def _model_name(model: nn.Module) -> str:
    """Registry name of a ferkit network (from its config), else the class name."""
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return config["name"]
    return type(model).__name__


def _torch_run(run: Any) -> Any:
    """``run`` (a folder, shipped name or ``Run``) with its torch network loaded: Grad-CAM needs
    the module's gradients, whatever backend serves predictions."""
    from ferkit.models.store import Run, load_run

    if not isinstance(run, Run) or run.backend == "onnx":
        run = load_run(run.path if isinstance(run, Run) else run, backend="torch")
    if run.kind != "torch":
        raise FerkitError(
            f"{run.path}: explanations need a neural-network run; this is a {run.kind!r} run"
        )
    return run


def run_layers(run: Any) -> dict[str, Any]:
    """The layers ``explain_image`` can explain for a run, for ``ferkit explain --list-layers``:
    each with its (C, H, W) output at the run's input size and the default marked."""
    run = _torch_run(run)
    model: nn.Module = run.estimator.model
    rows = layer_table(model)
    channels = 1 if run.color == "gray" else 3
    return {
        "run": str(run.path),
        "model": _model_name(model),
        "input": [channels, run.image_size, run.image_size],
        "default": next((row["name"] for row in rows if row["default"]), None),
        "min_side": MIN_CAM_SIDE,
        "layers": rows,
    }


def explain_image(
    run: Any,
    image_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    layer: str | None = None,
    target: int | str | None = None,
    max_maps: int = 32,
    crop: str = "auto",
    detector: str = "auto",
) -> dict[str, Any]:
    """Explain one image with a neural run (a run folder or a loaded ``Run``).

    A photo is first cut to its largest face as ``ferkit predict`` cuts it (``crop``: ``auto``,
    ``face`` or ``whole``; see :func:`_explained_pixels`; ``detector`` names the face
    detector). The pixels are brought to the run's size and colour and normalised as in
    training, then written into ``out_dir``:

    * ``gradcam.png``: input | Grad-CAM | overlay for ``target`` (default: the predicted class),
    * ``feature_maps.png``: the first ``max_maps`` channels of ``layer`` (default: see
      :func:`default_layer`),
    * ``explain.json``: the returned dict (prediction, per-class probabilities, layer, target,
      the face explained (None for a crop), file names relative to ``out_dir``), so scripts
      need not parse figures.
    """
    if isinstance(max_maps, bool) or not isinstance(max_maps, int) or max_maps < 1:
        raise FerkitError(f"max_maps must be an integer >= 1, got {max_maps!r}")
    run = _torch_run(run)
    classifier = run.estimator
    model: nn.Module = classifier.model
    name = resolve_layer(model, layer)
    target_index = resolve_target(target, run.classes, run.canonical)

    image_path = Path(image_path)
    pixels, face = _explained_pixels(run, image_path, crop, detector)
    x = classifier.to_tensor(pixels[None])
    heat, explained, probs = grad_cam(model, x, name, target_index)
    maps = feature_maps(model, x, name)

    predicted = int(np.argmax(probs))
    names = list(run.canonical)  # lower-case canonical labels, as every command prints them
    out = Path(out_dir)
    files = {"gradcam": GRADCAM_FILE, "feature_maps": FEATURE_MAPS_FILE, "json": EXPLAIN_FILE}
    cam_fig = gradcam_figure(
        pixels,
        heat,
        names[predicted],
        float(probs[predicted]),
        names[explained] if target_index is not None else None,
        float(probs[explained]) if target_index is not None else None,
    )
    io.save_figure(cam_fig, out / GRADCAM_FILE, dpi=120)
    map_fig = feature_map_figure(maps, max_maps, title=f"{run.name} / {name}")
    io.save_figure(map_fig, out / FEATURE_MAPS_FILE, dpi=120)

    result: dict[str, Any] = {
        "image": str(image_path),
        "run": str(run.path),
        "model": _model_name(model),
        "layer": name,
        "face": face,
        "predicted": {
            "index": predicted,
            "class": names[predicted],
            "probability": float(probs[predicted]),
        },
        "probabilities": {c: float(p) for c, p in zip(names, probs, strict=True)},
        "target": (
            None if target_index is None else {"index": explained, "class": names[explained]}
        ),
        "gradcam_class": {"index": explained, "class": names[explained]},
        "feature_maps": {
            "channels": int(maps.shape[0]),
            "shown": min(int(max_maps), int(maps.shape[0])),
            "size": [int(maps.shape[1]), int(maps.shape[2])],
        },
        "files": files,
    }
    io.write_json(out / EXPLAIN_FILE, result)
    return result
