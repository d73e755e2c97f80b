"""Training curves: loss and accuracy per epoch, train vs validation, with the best epoch marked."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def training_curves(history: list[dict[str, Any]], title: str = "") -> Figure:
    """Two panels (loss, accuracy) plus the learning rate on a log axis under the loss."""
    epochs = [h["epoch"] for h in history]
    # fixed margins: a layout engine costs seconds per save, and this figure is redrawn every
    # epoch
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.13, top=0.85, wspace=0.35)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    lr_ax = ax_loss.twinx()
    lr_ax.plot(epochs, [h["lr"] for h in history], color="gray", linestyle=":", label="lr")
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate", color="gray")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], label="validation")
    if history:
        best = max(history, key=lambda h: h["val_accuracy"])
        ax_acc.axvline(best["epoch"], color="green", linestyle="--", linewidth=1)
        ax_acc.annotate(
            f"best {best['val_accuracy']:.1%} (epoch {best['epoch']})",
            (best["epoch"], best["val_accuracy"]),
            textcoords="offset points",
            xytext=(5, -15),
            fontsize=8,
        )
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
