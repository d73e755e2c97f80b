"""The figures of an explanation: the feature-map grid and the Grad-CAM panel."""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure


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
