"""What a run's epoch history says: its best epoch and its time (no torch: reports read it)."""

from __future__ import annotations

from typing import Any


def history_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs run, the best epoch by validation accuracy (the first of equals, as training
    picks it) and the training seconds summed over every epoch (resumed attempts included)."""
    best = max(history, key=lambda h: h["val_accuracy"])
    return {
        "epochs_run": len(history),
        "best_epoch": int(best["epoch"]),  # history rows hold floats (42.0)
        "val_accuracy": best["val_accuracy"],
        "train_seconds_total": round(sum(h.get("seconds", 0) for h in history), 1),
    }
