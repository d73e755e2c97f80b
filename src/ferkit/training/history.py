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
        **_by_dataset(best),
        "train_seconds_total": round(sum(h.get("seconds", 0) for h in history), 1),
    }


def _by_dataset(row: dict[str, Any]) -> dict[str, Any]:
    """Each dataset's validation accuracy at the best epoch, when several were trained on."""
    by = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("val_accuracy/")}
    return {"val_accuracy_by_dataset": by} if by else {}
