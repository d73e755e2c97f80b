"""Which layers can be explained: the list, a name resolved (with close matches for a
typo), each layer's output shape, and the default Grad-CAM layer."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit.errors import FerkitError
from ferkit.evaluation.explaining.hooks import _Capture, _explaining, _one_image

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
    return logits, capture.last(layer, lambda: list_layers(model))
