"""A layer's feature maps for one image (the notebook's "Viewing The Filters")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ferkit.evaluation.explaining.hooks import _explaining, _one_image
from ferkit.evaluation.explaining.layers import _forward, resolve_layer


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
