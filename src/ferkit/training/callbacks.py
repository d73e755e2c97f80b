"""What happens at the end of each epoch besides the optimiser's work, one callback per job.

:class:`~ferkit.training.loop.Loop` calls them in the order :func:`standard_callbacks` lists
them: early stopping first (every rank: it decides, and ranks must agree), then on rank 0 the
best weights and the checkpoint, ``history.json``, ``curves.png``, the log line, and last the
caller's hooks, so a hook that raises (a tuner pruning a trial) finds the epoch already saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

import torch
from tqdm.auto import tqdm

from ferkit import io
from ferkit.models.torch_run import save_torch_run
from ferkit.training.checkpoint import save_checkpoint
from ferkit.training.loop import Callback, Loop, Progress, TrainState, _log

__all__ = [
    "BatchHook",
    "Callback",
    "Checkpoint",
    "Curves",
    "EarlyStopping",
    "EpochHook",
    "EpochLog",
    "History",
    "standard_callbacks",
]


def improved(state: TrainState) -> bool:
    """Whether the epoch just ended is the best so far (EarlyStopping set it so)."""
    return state.best_epoch == state.epoch


class EarlyStopping(Callback):
    """Tracks the best validation accuracy and stops after ``cfg.patience`` epochs without a
    better one; early only when epochs were left (patience running out on the budget's last
    epoch stops nothing). Its counters live in the :class:`TrainState`, so a resumed run
    continues them."""

    every_rank = True  # every rank must stop at the same epoch; the metrics are all-reduced

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        if metrics["val_accuracy"] > state.best_accuracy:
            state.best_accuracy, state.best_epoch, state.bad_epochs = (
                metrics["val_accuracy"],
                state.epoch,
                0,
            )
        else:
            state.bad_epochs += 1
        patience_over = state.bad_epochs >= loop.cfg.patience
        state.stopped_early = patience_over and state.epoch < loop.cfg.epochs


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict on the CPU, detached: what a checkpoint stores."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


class Checkpoint(Callback):
    """The best weights (``model.safetensors`` + card; with ``--ema`` the average's) when the
    epoch improved, then every epoch the checkpoint ``--resume`` continues from (with the
    average's state: :mod:`ferkit.training.checkpoint`).
    "Improved" is :class:`EarlyStopping`'s bookkeeping, so it must come after that one."""

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        if improved(state):
            card = {**loop.card, "val_accuracy": state.best_accuracy, "epoch": state.best_epoch}
            save_torch_run(loop.out, loop.ema.module if loop.ema else loop.net, card)
        checkpoint = {
            "epoch": state.epoch,
            "model": _cpu_state(loop.net),
            "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(),
            "history": json.dumps(state.history),
            "best_accuracy": state.best_accuracy,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "stopped_early": state.stopped_early,
            "finished": state.stopped_early or state.epoch >= loop.cfg.epochs,
            "config": json.dumps(asdict(loop.cfg)),
            "data": json.dumps([d["data"] for d in loop.card.get("datasets", [])]),
            "parameters": sum(p.numel() for p in loop.net.parameters()),
        }
        if loop.ema is not None:
            checkpoint["ema"] = _cpu_state(loop.ema)
        save_checkpoint(loop.out, checkpoint)


class History(Callback):
    """``history.json``: every epoch's row so far, readable while the run goes on."""

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        io.write_json(loop.out / "history.json", state.history)


class Curves(Callback):
    """``curves.png``: loss and accuracy by epoch, redrawn every epoch."""

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        from ferkit.reports.training_figures import training_curves  # matplotlib: on first use

        title = f"{loop.cfg.model} - {loop.out.name}"
        io.save_figure(training_curves(state.history, title), loop.out / "curves.png", dpi=100)


class EpochLog(Callback):
    """A line per epoch: through tqdm under progress bars (so they are not torn), else
    straight to stderr, flushed (a background run's log shows each epoch as it ends)."""

    def __init__(self, bars: bool) -> None:
        self.say: Callable[[str], None] = tqdm.write if bars else _log

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        row = metrics
        self.say(
            f"epoch {row['epoch']}: loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}"
            + (f" (teachers {row['teacher_accuracy']:.3f})" if "teacher_accuracy" in row else "")
            + f" | val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.3f}"
            + (f" (ema; raw {row['val_accuracy_raw']:.3f})" if "val_accuracy_raw" in row else "")
            + f" | lr {row['lr']:.2g} | {row['images_per_second']:.0f} img/s"
            + (" | best" if state.best_epoch == row["epoch"] else "")
            + (" | early stop" if state.stopped_early else "")
        )


class BatchHook(Callback):
    """``train_network(on_batch=...)``: ``hook(epoch, batch)`` after each optimiser step."""

    def __init__(self, hook: Callable[[int, int], None]) -> None:
        self.hook = hook

    def on_batch_end(self, loop: Loop, epoch: int, batch: int) -> None:
        self.hook(epoch, batch)


class EpochHook(Callback):
    """``train_network(on_epoch=...)``: ``hook(history_row)`` once the epoch is saved; an
    exception from it stops training (how a tuner prunes a trial)."""

    def __init__(self, hook: Callable[[dict[str, float]], None]) -> None:
        self.hook = hook

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        self.hook(state.history[-1])


def standard_callbacks(
    progress: Progress,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> list[Callback]:
    """What every training run does at the end of an epoch, in order, plus the caller's hooks:
    ``progress`` ``True`` or ``"epochs"`` adds the log line (through tqdm under bars)."""
    callbacks: list[Callback] = [EarlyStopping(), Checkpoint(), History(), Curves()]
    if progress:
        callbacks.append(EpochLog(bars=progress is True))
    if on_batch is not None:
        callbacks.append(BatchHook(on_batch))
    if on_epoch is not None:
        callbacks.append(EpochHook(on_epoch))
    return callbacks
