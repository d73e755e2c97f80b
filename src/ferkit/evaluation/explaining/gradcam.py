"""Grad-CAM (Selvaraju et al. 2017): where in the face the evidence for a class came from."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.errors import FerkitError
from ferkit.evaluation.explaining.hooks import _explaining, _one_image
from ferkit.evaluation.explaining.layers import _forward, resolve_layer


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
