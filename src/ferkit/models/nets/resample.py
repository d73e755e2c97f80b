"""Test-time resampling match: pass each input through the resize round trip the training images
went through.

Why: the train split of ``../shared/data/fer2013`` was rebuilt (2026-12-02) from a copy of the
dataset that had been upscaled to 224x224 and then area-downscaled back to 48x48; its val and
test splits, and a face cut from a user's photo, were never resampled that way. The round trip
is a mild low-pass of a particular shape (median sharpness 0.47 on train against 0.73 on val), so
a network trained there meets inputs with fine texture it never saw. Passing each eval-mode
input through the same round trip (bicubic up to ``via`` px, area down to the input side)
repeats the training images' processing instead of approximating it with a blur: on FER2013
val it raised the shipped network from 66.0% to 67.3% (``benchmarks/resample_tta.py``,
docs/BENCHMARKS.md), more than the Gaussian :class:`~ferkit.models.nets.sharpness.SharpnessMatch`
at the train median (66.8%).

Both resizes are linear and separable, so the round trip is one fixed ``size x size`` matrix
``R`` with ``out = R @ x @ R.T`` on every channel: two small GEMMs, exported to ONNX as MatMul.
``R`` is built once from OpenCV's own resizes of the identity (``cv2.INTER_CUBIC`` up,
``cv2.INTER_AREA`` down, in float: no uint8 rounding in between), so it matches what ``cv2``
does to an image. It has no weights (a non-persistent buffer) and is rebuilt from
``resample_via`` in the run card's architecture. Training mode passes inputs unchanged: the
training images already went through the round trip.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ferkit.errors import OptionError

MAX_VIA = 4096  # the matrices are via x size: bounded so a card cannot ask for gigabytes


def check_via(via: object, size: int) -> int:
    """``via`` as an int, or a one-line :class:`OptionError` naming what is wrong."""
    if isinstance(via, bool) or not isinstance(via, int):
        raise OptionError(f"resample_via must be a whole number of pixels, got {via!r}")
    if not size < via <= MAX_VIA:
        raise OptionError(
            f"resample_via must be larger than the input side ({size} px) and at most "
            f"{MAX_VIA}, got {via}"
        )
    return via


def roundtrip_matrix(size: int, via: int) -> torch.Tensor:
    """(size, size) float32 ``R``: ``R @ column`` is the column resized bicubically to ``via``
    samples and area-averaged back to ``size`` (OpenCV's kernels and pixel-centre convention)."""
    import cv2  # a base dependency; imported here so that building other networks skips it

    eye = np.eye(size, dtype=np.float64)
    # resizing only the height: column j of the result is the unit vector e_j resized
    up = cv2.resize(eye, (size, via), interpolation=cv2.INTER_CUBIC)  # (via, size)
    down = cv2.resize(np.eye(via, dtype=np.float64), (via, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(down @ up).float()


class ResampleMatch(nn.Module):
    """Eval-mode inputs go through the ``size -> via -> size`` round trip (see module doc);
    identity in training mode."""

    def __init__(self, via: int, size: int) -> None:
        super().__init__()
        self.via = check_via(via, size)
        self.matrix: torch.Tensor
        self.register_buffer("matrix", roundtrip_matrix(size, self.via), persistent=False)

    def extra_repr(self) -> str:
        return f"via={self.via}, size={self.matrix.shape[-1]}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return x
        side = self.matrix.shape[-1]
        if not torch.jit.is_tracing() and tuple(x.shape[-2:]) != (side, side):
            raise ValueError(
                f"resampling was built for {side}px square inputs, got {tuple(x.shape[-2:])}"
            )
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.matrix @ x.float() @ self.matrix.T
        return out.to(x.dtype)
