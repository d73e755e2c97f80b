"""Confusion-matrix heatmap and misclassification gallery, as the notebook drew them."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def confusion_heatmap(matrix: list[list[int]], classes: list[str], title: str) -> Figure:
    """Counts in each cell, colour by row-normalised rate (recall along the diagonal)."""
    cm = np.asarray(matrix, dtype=np.int64)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig = Figure(figsize=(1.0 * n + 2.5, 0.9 * n + 2), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{cm[i, j]}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    return fig


def misclassification_gallery(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    n: int = 24,
    seed: int = 0,
    cols: int = 8,
) -> Figure:
    """Up to ``n`` random misclassified samples titled ``pred / true``."""
    wrong = np.flatnonzero(y_true != y_pred)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(wrong, min(n, len(wrong)), replace=False) if len(wrong) else wrong
    rows = max(1, int(np.ceil(len(chosen) / cols)))
    fig = Figure(figsize=(1.5 * cols, 1.75 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    gray = images.shape[-1] == 1
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < len(chosen):
            i = chosen[k]
            img = images[i]
            ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=255)
            ax.set_title(f"{classes[y_pred[i]]}\n(true {classes[y_true[i]]})", fontsize=8)
    fig.suptitle(
        f"Misclassified: {len(wrong)} of {len(y_true)} (showing {len(chosen)}), predicted (true)"
    )
    return fig
