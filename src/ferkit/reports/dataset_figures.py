"""The notebook's dataset views as files: class distribution, sample grid, PCA and t-SNE scatter.

Figures are built with matplotlib's object API (no pyplot, no display), so they render the same
on a headless server, in CI and in a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from ferkit import io
from ferkit.data.balance import stratified_subset
from ferkit.data.dataset import Dataset, Split, resolve_split_name

_CMAP = "tab10"


def _class_colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps[_CMAP]
    return [cmap(i % cmap.N) for i in range(n)]


def main_split(ds: Dataset) -> Split:
    """The split to show: ``train`` (or an alias) when present, else the largest."""
    try:
        return ds.split("train")
    except KeyError:
        return max(ds.splits.values(), key=len)


def class_distribution(ds: Dataset) -> Figure:
    """Grouped bars: samples per class for each split."""
    fig = Figure(figsize=(max(6.0, 1.1 * len(ds.classes) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    names = list(ds.splits)
    width = 0.8 / max(1, len(names))
    x = np.arange(len(ds.classes))
    for i, name in enumerate(names):
        counts = list(ds.splits[name].counts().values())
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, counts, width, label=name)
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(x, [f"{c}\n({k})" for c, k in zip(ds.classes, ds.canonical, strict=True)])
    ax.set_ylabel("images")
    ax.set_title(f"Class distribution - {ds.root.name}")
    ax.legend(title="split")
    return fig


def sample_grid(split: Split, per_class: int = 8, seed: int = 0) -> Figure:
    """A row of random samples per class (blank cells where a class has fewer)."""
    rng = np.random.default_rng(seed)
    rows = len(split.classes)
    fig = Figure(figsize=(1.2 * per_class + 1.4, 1.25 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, per_class, squeeze=False)
    gray = split.images.shape[-1] == 1
    for r, name in enumerate(split.classes):
        idx = np.flatnonzero(split.labels == r)
        chosen: np.ndarray | list[int] = (
            rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        )
        for c in range(per_class):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(chosen):
                img = split.images[chosen[c]]
                ax.imshow(
                    img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=255
                )
            else:
                ax.set_axis_off()
        axes[r, 0].set_ylabel(
            f"{name}\n({len(idx)})", rotation=0, ha="right", va="center", fontsize=9
        )
    fig.suptitle(f"Samples per class - split {split.name}")
    return fig


def _pixel_sample(split: Split, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = stratified_subset(split.labels, n, seed=seed) if len(split) > n else np.arange(len(split))
    x = split.images[idx].reshape(len(idx), -1).astype(np.float32) / 255.0
    return x, split.labels[idx]


def embed(split: Split, method: str, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA or t-SNE coordinates of a stratified pixel sample, and its labels.

    t-SNE runs on the first 50 principal components, which keeps it to seconds on 2 cores
    without changing the picture much (the usual recipe, van der Maaten 2014).
    """
    x, y = _pixel_sample(split, n, seed)
    if len(x) < 5:
        raise ValueError(f"split {split.name!r} has {len(x)} samples; need at least 5 to embed")
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x), y
    if method != "tsne":
        raise ValueError(f"unknown embedding {method!r}; use pca or tsne")
    k = min(50, x.shape[0] - 1, x.shape[1])
    reduced = PCA(n_components=k, random_state=seed).fit_transform(x)
    tsne = TSNE(
        n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (len(x) - 1) / 3)
    )
    return tsne.fit_transform(reduced), y


def embedding_scatter(split: Split, method: str, n: int = 1000, seed: int = 0) -> Figure:
    """Scatter of :func:`embed` coloured by class."""
    coords, y = embed(split, method, n, seed)
    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, color) in enumerate(
        zip(split.classes, _class_colors(len(split.classes)), strict=True)
    ):
        mask = y == i
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=9, color=color, label=name, alpha=0.75)
    label = "PCA" if method == "pca" else "t-SNE"
    ax.set_xlabel(f"{label} 1")
    ax.set_ylabel(f"{label} 2")
    ax.set_title(f"{label} of raw pixels ({len(y)} samples of split {split.name})")
    ax.legend(markerscale=2, fontsize=8, loc="best")
    return fig


def _figure_pairs(pairs: Sequence[Any], n: int) -> list[Any]:
    """Up to ``n`` pairs to show: across splits first (the ones that inflate scores), spread
    over their distances from exact to the threshold, then pairs within a split."""
    chosen: list[Any] = []
    for group in ([p for p in pairs if p.across], [p for p in pairs if not p.across]):
        ordered = sorted(group, key=lambda p: p.distance)
        room = n - len(chosen)
        if room <= 0 or not ordered:
            continue
        picks = np.unique(np.linspace(0, len(ordered) - 1, min(room, len(ordered))).astype(int))
        chosen += [ordered[i] for i in picks]
    return chosen


def duplicate_pairs(ds: Dataset, pairs: Sequence[Any], n: int = 12, per_row: int = 4) -> Figure:
    """Example duplicate pairs side by side, each titled with its splits, pHash distance and
    labels, so a reader sees what "near" means on this data (and any conflicting labels)."""
    chosen = _figure_pairs(pairs, n)
    if not chosen:
        raise ValueError("no duplicate pairs found")
    rows = -(-len(chosen) // per_row)
    fig = Figure(figsize=(2.3 * per_row, 1.45 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 2 * per_row, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, pair in enumerate(chosen):
        r, c = divmod(k, per_row)
        sides = (
            (pair.split_a, pair.index_a, pair.label_a),
            (pair.split_b, pair.index_b, pair.label_b),
        )
        for side, (split, index, label) in enumerate(sides):
            img = ds.splits[split].images[index]
            ax = axes[r, 2 * c + side]
            gray = img.shape[-1] == 1
            ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=255)
            ax.set_title(
                f"{split}: {label}",
                fontsize=7,
                color="red" if pair.label_a != pair.label_b else "black",
            )
        left = axes[r, 2 * c]
        caption = f"{pair.kind}, distance {pair.distance}"
        left.text(1.0, -0.08, caption, transform=left.transAxes, ha="center", va="top", fontsize=7)
    shown = f"{len(chosen)} of {len(pairs):,} pairs"
    fig.suptitle(f"Duplicates ({shown}) - {ds.root.name}; red: labels differ")
    return fig


def write_inspect_figures(
    ds: Dataset,
    out: Path,
    seed: int = 0,
    embed_samples: int = 1000,
    split: str | None = None,
    pairs: Sequence[Any] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Write every inspect figure into ``out``; returns ({name: path}, notes on skipped ones).
    ``pairs`` (duplicate pairs) adds ``duplicates.png`` when there is any."""
    shown = ds.split(resolve_split_name(split, list(ds.splits))) if split else main_split(ds)
    figures: dict[str, str] = {}
    notes: list[str] = []
    builders = {
        "class_distribution": lambda: class_distribution(ds),
        "samples": lambda: sample_grid(shown, seed=seed),
        "pca": lambda: embedding_scatter(shown, "pca", embed_samples, seed),
        "tsne": lambda: embedding_scatter(shown, "tsne", embed_samples, seed),
    }
    if pairs:
        builders["duplicates"] = lambda: duplicate_pairs(ds, pairs)
    for name, build in builders.items():
        try:
            fig = build()
        except ValueError as exc:
            notes.append(f"{name}: not drawn ({exc})")
            continue
        figures[name] = str(io.save_figure(fig, out / f"{name}.png", dpi=110))
    return figures, notes
