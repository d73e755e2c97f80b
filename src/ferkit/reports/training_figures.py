"""Training curves: loss and accuracy per epoch, train vs validation, with the best epoch marked."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator


def training_curves(history: list[dict[str, Any]], title: str = "") -> Figure:
    """Two panels (loss, accuracy) plus the learning rate on a log axis under the loss.

    Epochs are whole numbers on the x axes (three epochs would otherwise tick 1.0, 1.25...);
    one legend for both panels sits under them, where it can hide no curve and no axis. A run
    with ``--ema`` validates the average ("validation") and the network itself ("network")."""
    epochs = [h["epoch"] for h in history]
    raw = [h for h in history if "val_accuracy_raw" in h]  # --ema (from its first epoch on)
    # fixed margins: a layout engine costs seconds per save, and this figure is redrawn every
    # epoch
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.2, top=0.85, wspace=0.35)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    if raw:
        ax_loss.plot([h["epoch"] for h in raw], [h["val_loss_raw"] for h in raw], label="network")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    lr_ax = ax_loss.twinx()
    lr_ax.plot(epochs, [h["lr"] for h in history], color="gray", linestyle=":", label="lr")
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate", color="gray")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], label="validation")
    if raw:
        ax_acc.plot([h["epoch"] for h in raw], [h["val_accuracy_raw"] for h in raw],
                    label="network")  # fmt: skip
    acc_title = "accuracy"
    if history:
        best = max(history, key=lambda h: h["val_accuracy"])
        ax_acc.axvline(best["epoch"], color="green", linestyle="--", linewidth=1)
        # in the title: a note by the line runs off the figure when the best is the last epoch
        acc_title = f"accuracy (best {best['val_accuracy']:.1%} at epoch {int(best['epoch'])})"
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=acc_title)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = ax_acc.get_legend_handles_labels()
    handles += lr_ax.get_legend_handles_labels()[0]
    labels += ["learning rate"]
    if history:
        handles.append(Line2D([], [], color="green", linestyle="--", linewidth=1))
        labels.append("best epoch")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
