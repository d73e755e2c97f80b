"""Test-time sharpness matching: blur sharp inputs down to the sharpness the network trained on.

Why: a network trained only on blurred faces fails on sharp ones, because fine texture it never
saw pushes its features out of range. This is not hypothetical: in ``../shared/data/fer2013``
every train image is low-passed (a Gaussian of sigma ~3.5 px at 48x48 matches its power spectrum;
median sharpness 0.004 against 0.69 for the val images), so a network trained there scores far
below its training accuracy on val and on real photos. No sharpening can restore what the blur
removed, but the opposite direction is cheap and exact: blur each *input* until it is no sharper
than the typical training image.

:class:`SharpnessMatch` does that per image, in eval mode only (training images are the
distribution it matches to): it tries Gaussian blurs of increasing sigma (0, 0.25, ..., 4 px)
and keeps the first whose sharpness is at most ``target``, the median sharpness of the training
images. An input already as blurred as the training data passes unchanged. Sharpness is
:func:`ferkit.data.sharpness.sharpness` (Laplacian variance over image variance, so brightness,
contrast and the run's normalisation do not change it), computed here in torch so that it is
part of the graph.

It sits inside the network (``Network.prefilter``), so every path that runs the network —
evaluation, prediction, embeddings, Grad-CAM, the ONNX export — applies it; it has no weights
(its kernels are non-persistent buffers) and is rebuilt from ``sharpness_target`` in the run
card's architecture.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ferkit.errors import OptionError

SIGMAS = tuple(0.25 * i for i in range(1, 17))  # 0.25 .. 4.0 px; 0 is the input itself


def _sharpness_2d(gray: torch.Tensor) -> torch.Tensor:
    """Sharpness of (..., H, W) single-channel images, as :func:`ferkit.data.sharpness.sharpness`
    computes it in numpy: the 4-neighbour Laplacian on the interior, as slices rather than a
    conv so that it is cheap for many candidates, population variances."""
    centre = gray[..., 1:-1, 1:-1]
    lap = (
        gray[..., :-2, 1:-1] + gray[..., 2:, 1:-1] + gray[..., 1:-1, :-2] + gray[..., 1:-1, 2:]
    ) - 4 * centre
    spread = gray.flatten(-2).var(-1, correction=0).clamp_min(1e-12)
    return lap.flatten(-2).var(-1, correction=0) / spread


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Per-image sharpness of float NCHW ``x`` (on the channel mean)."""
    return _sharpness_2d(x.mean(dim=1))


def blur_matrices(size: int, sigmas: tuple[float, ...] = SIGMAS) -> torch.Tensor:
    """(1 + len(sigmas), size, size) matrices ``B`` with ``B @ img @ B.T`` = the image blurred by
    a Gaussian of that sigma with edge pixels replicated; index 0 is the identity.

    A separable blur written as two small matrix products runs as GEMMs, far faster on CPU
    than a depthwise convolution with a wide kernel, and exports to ONNX as MatMul."""
    mats = [torch.eye(size)]
    for sigma in sigmas:
        radius = int(3 * sigma + 0.5)  # scipy.ndimage's truncation at 3 sigma
        taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
        weights = torch.exp(-0.5 * (taps / sigma) ** 2)
        weights /= weights.sum()
        mat = torch.zeros(size, size, dtype=torch.float64)
        rows = torch.arange(size)
        for tap, weight in zip(taps.long().tolist(), weights.tolist(), strict=True):
            mat[rows, (rows + tap).clamp(0, size - 1)] += weight
        mats.append(mat.float())
    return torch.stack(mats)


class SharpnessMatch(nn.Module):
    """Blur each eval-mode input just enough to be no sharper than ``target`` (see module doc);
    identity in training mode. ``size`` is the input side the blur matrices are built for."""

    def __init__(self, target: float, size: int) -> None:
        super().__init__()
        if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
            raise OptionError(f"sharpness target must be a number > 0, got {target!r}")
        self.target = float(target)
        self.blurs: torch.Tensor
        self.register_buffer("blurs", blur_matrices(size), persistent=False)

    def extra_repr(self) -> str:
        return f"target={self.target:.4g}, sigmas={SIGMAS[0]}..{SIGMAS[-1]}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return x
        # a traced export (ONNX) fixes the input shape anyway; checking there only warns
        tracing = torch.jit.is_tracing()
        if not tracing and (x.shape[-1] != x.shape[-2] or x.shape[-1] != self.blurs.shape[-1]):
            raise ValueError(
                f"sharpness matching was built for {self.blurs.shape[-1]}px square inputs, "
                f"got {tuple(x.shape[-2:])}"
            )
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = x.float()
            gray = y.mean(dim=1)
            # blur is linear and the same on every channel, so the channel mean's sharpness
            # after each blur decides; the last candidate is taken when none is blurry enough
            chosen = torch.full_like(gray[:, 0, 0], len(SIGMAS), dtype=torch.long)
            done = torch.zeros_like(chosen, dtype=torch.bool)
            for k in range(len(SIGMAS)):
                blur = self.blurs[k]
                take = ~done & (_sharpness_2d(blur @ gray @ blur.T) <= self.target)
                chosen = torch.where(take, torch.full_like(chosen, k), chosen)
                done = done | take
            blur = self.blurs[chosen].unsqueeze(1)  # (N, 1, S, S)
            out = blur @ y @ blur.transpose(-1, -2)
        return out.to(x.dtype)
