"""The epoch loop shared by single-process and DistributedDataParallel training.

Every rank runs the same code on its shard of each epoch's permutation; validation metrics are
summed over ranks, so every rank takes the same early-stopping and learning-rate decisions
without extra messages. What happens at the end of an epoch besides the learning-rate step
(early stopping, checkpoints, history and curves, the log line, a tuner's hook) is a
:class:`Callback` the loop calls at fixed points (:mod:`ferkit.training.callbacks` has them);
callbacks run on rank 0 only, except those that take a decision every rank must share.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ferkit.errors import FerkitError
from ferkit.models.card import ModelCard
from ferkit.models.torch_run import load_state
from ferkit.training.augment import augment, build_augmentation
from ferkit.training.checkpoint import CHECKPOINT
from ferkit.training.config import PreparedData, TrainConfig

# True: progress bars and a line per epoch; "epochs": the lines only (logs); False: silent
Progress = bool | Literal["epochs"]


@dataclass
class TrainState:
    """What survives between epochs besides the tensors: history and early-stopping counters."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> TrainState:
        return cls(
            epoch=int(saved["epoch"]),
            history=json.loads(saved["history"]),
            best_accuracy=float(saved["best_accuracy"]),
            best_epoch=int(saved["best_epoch"]),
            bad_epochs=int(saved["bad_epochs"]),
            stopped_early=bool(saved.get("stopped_early", False)),
        )


class Callback:
    """What the loop calls at fixed points of training; every method does nothing here, a
    subclass overrides the ones it needs (as Keras and Lightning callbacks do, but two points).

    The loop passes itself, so a callback reaches the network, optimiser, config and run folder
    (``loop.net``, ``loop.optimizer``, ``loop.cfg``, ``loop.out``). Under DDP a callback runs on
    rank 0 only, unless ``every_rank`` is true: then it must decide the same on every rank from
    the metrics, which are already summed over ranks (early stopping).
    """

    every_rank = False

    def on_batch_end(self, loop: Loop, epoch: int, batch: int) -> None:
        """After optimiser step ``batch`` (from 0) of ``epoch`` (from 1)."""

    def on_epoch_end(self, loop: Loop, state: TrainState, metrics: dict[str, float]) -> None:
        """After ``state.epoch``'s validation and learning-rate step, its row appended to
        ``state.history`` (rounded; ``metrics`` is the same row unrounded), in list order.
        Setting ``state.stopped_early`` ends training after this epoch's callbacks; raising
        ends it at once (a tuner pruning a trial)."""


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CPU (AMX) and on CUDA when supported, else fp16 on CUDA."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", dtype=torch.bfloat16)


class Loop:
    """Owns the model, optimiser and scheduler of one rank and runs epochs until done."""

    def __init__(
        self,
        rank: int,
        world: int,
        cfg: TrainConfig,
        data: PreparedData,
        card: ModelCard,
        out: Path,
        model: nn.Module,
        device: torch.device,
        progress: Progress,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.rank, self.world, self.cfg, self.data = rank, world, cfg, data
        self.card, self.out, self.device = card, out, device
        self.progress = progress is True and rank == 0  # bars
        self.callbacks = [cb for cb in callbacks if rank == 0 or cb.every_rank]
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        # Module.to takes memory_format (documented; _parse_to reads it): torch's overloads omit it
        self.net = model.to(device=device, memory_format=memory)  # type: ignore[call-overload]
        self.model: nn.Module = self.net
        if world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.net)
        self.memory = memory
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
        self.augment = build_augmentation(cfg.augment).to(device)
        self.teachers: nn.Module | None = None  # --distill-views augmented
        if data.teachers is not None:
            self.teachers = data.teachers.to(device=device, memory_format=memory)  # type: ignore[call-overload]
        self.teacher_correct = 0  # this epoch's views the teachers got right (augmented views)
        weight = torch.tensor(data.loss_weights, device=device) if data.loss_weights else None
        self.loss_weight = weight
        self.rng = np.random.default_rng(cfg.seed)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.ema = self._ema()
        use_scaler = device.type == "cuda" and cfg.bf16 and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    # -- construction -----------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        cfg = self.cfg
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
            )
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _scheduler(self) -> Any:
        if self.cfg.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=self.cfg.epochs, eta_min=self.cfg.lr * 1e-3
            )
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="min",
            factor=self.cfg.plateau_factor,
            patience=self.cfg.plateau_patience,
        )

    def _ema(self) -> AveragedModel | None:
        """``--ema``: the moving average of the weights and BatchNorm buffers, started at the
        initial weights (the first update copies them), so after n steps it is exactly
        ``decay**n * w0 + sum((1 - decay) * decay**(n-k) * w_k)``. The copy keeps the
        network's device and memory format (channels_last), so it validates as fast."""
        if self.cfg.ema <= 0:
            return None
        ema = AveragedModel(
            self.net, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema), use_buffers=True
        )
        ema.module.to(memory_format=self.memory)  # type: ignore[call-overload]
        ema.module.eval().requires_grad_(False)  # it only ever validates and is saved
        ema.update_parameters(self.net)
        return ema

    def _restart_ema(self) -> None:
        """Start the average afresh from the network's current weights."""
        assert self.ema is not None
        self.ema.n_averaged.zero_()
        self.ema.update_parameters(self.net)

    # -- batches ----------------------------------------------------------------------------
    def _inputs(self, pixels: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 NHWC -> augmented, normalised float NCHW on the device."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if train:
            x = augment(self.augment, x)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory)

    def _shard(self, epoch: int) -> torch.Tensor:
        """This rank's sample order for ``epoch``: seeded, equal length on every rank."""
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.data.y_train), generator=gen)
        per_rank = len(perm) // self.world
        return perm[self.rank : per_rank * self.world : self.world]

    def _batches(self, order: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
        # drop the last incomplete batch: BatchNorm on a batch of one fails, and DDP ranks
        # must take the same number of steps
        for start in range(0, len(order) - size + 1, size):
            yield order[start : start + size]

    def _loss(
        self, logits: torch.Tensor, target: torch.Tensor, soft: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy with the labels; with ``--teacher``, mixed with the distillation loss
        against the teachers' soft targets (``cfg.distill`` is their weight)."""
        hard = F.cross_entropy(
            logits.float(),
            target,
            weight=self.loss_weight,
            label_smoothing=self.cfg.label_smoothing,
        )
        if soft is None:
            return hard
        alpha = self.cfg.distill
        return (1 - alpha) * hard + alpha * distillation_loss(
            logits, soft, self.cfg.distill_temperature
        )

    def _step(
        self, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None = None
    ) -> tuple[float, int]:
        """One optimiser step; returns (summed loss, correct count) for the epoch means.
        ``soft``: the batch's soft targets (``--teacher``), mixed along with the labels; with
        teachers that score the views (``--distill-views augmented``) they score the view as
        mixed, whose target needs no mixing."""
        lam, partner = 1.0, None
        if self.cfg.mixup > 0:
            lam = float(self.rng.beta(self.cfg.mixup, self.cfg.mixup))
            partner = torch.randperm(len(y), device=x.device)
            x = lam * x + (1 - lam) * x[partner]
        if self.teachers is not None:
            soft = self._teach(x, y)
        with _autocast(self.device, self.cfg.bf16):
            logits = self.model(x)
        loss = self._loss(logits, y, soft)
        if partner is not None:
            other = soft  # scored by the teachers on the mixed view: no mixing needed
            if soft is not None and self.teachers is None:
                other = soft[partner]
            loss = lam * loss + (1 - lam) * self._loss(logits, y[partner], other)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:  # every rank: DDP keeps the weights equal on all of them
            self.ema.update_parameters(self.net)
        correct = int((logits.argmax(1) == y).sum())
        return float(loss.detach()) * len(y), correct

    def _teach(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The teachers' probabilities on this batch of views (counting how many they get
        right: the epoch's ``teacher_accuracy``, against the first label of a mixed view)."""
        assert self.teachers is not None
        with torch.no_grad(), _autocast(self.device, self.cfg.bf16):
            soft = self.teachers(x)  # float probabilities
        self.teacher_correct += int((soft.argmax(1) == y).sum())
        return soft

    # -- epochs -----------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        epoch_seed = self.cfg.seed * 7919 + epoch * 104_729 + self.rank
        torch.manual_seed(epoch_seed)  # kornia draws from torch's global generator
        self.rng = np.random.default_rng(epoch_seed)
        order = self._shard(epoch)
        size = self.cfg.batch_size // self.world
        steps = len(order) // size
        bar = tqdm(
            self._batches(order, size),
            total=steps,
            disable=not self.progress,
            desc=f"epoch {epoch}/{self.cfg.epochs}",
            leave=False,
            unit="batch",
        )
        loss_sum, correct, seen = 0.0, 0, 0
        self.teacher_correct = 0
        start = time.perf_counter()
        for i, idx in enumerate(bar):
            x = self._inputs(self.data.x_train[idx], train=True)
            y = self.data.y_train[idx].to(self.device)
            soft = self.data.soft_train
            soft = None if soft is None else soft[idx].to(self.device)
            batch_loss, batch_correct = self._step(x, y, soft)
            loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
            if self.progress and i % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            for callback in self.callbacks:
                callback.on_batch_end(self, epoch, i)
        seconds = time.perf_counter() - start
        totals = self._all_sum([loss_sum, correct, seen, self.teacher_correct])
        row = {
            "train_loss": totals[0] / max(totals[2], 1),
            "train_accuracy": totals[1] / max(totals[2], 1),
            "seconds": seconds,
            "images_per_second": totals[2] / max(seconds, 1e-9),
        }
        if self.teachers is not None:
            row["teacher_accuracy"] = totals[3] / max(totals[2], 1)
        return row

    def validation(self) -> dict[str, float]:
        """The epoch's validation row: the network's, or with ``--ema`` the average's (what
        early stopping and the saved model go by) plus the network's own as
        ``val_loss_raw`` / ``val_accuracy_raw``."""
        raw = self.validate()
        if self.ema is None:
            return raw
        self._share_ema_buffers()
        row = self.validate(self.ema.module)
        return {**row, "val_loss_raw": raw["val_loss"], "val_accuracy_raw": raw["val_accuracy"]}

    def _share_ema_buffers(self) -> None:
        """Under DDP each rank's BatchNorm statistics (hence their averages) follow its own
        batches; rank 0's, the ones saved, are given to all before validation, so every
        rank scores the model that is saved."""
        if self.world > 1 and self.ema is not None:
            for buffer in self.ema.module.buffers():
                dist.broadcast(buffer, src=0)

    @torch.no_grad()
    def validate(self, net: nn.Module | None = None) -> dict[str, float]:
        """Validation loss and accuracy of ``net`` (the network by default); with several
        datasets, each one's accuracy too (``val_accuracy/<dataset>``), so a model trained
        on all is judged on each."""
        self.model.eval()
        net = self.net if net is None else net
        net.eval()
        n = len(self.data.y_val)
        idx = torch.arange(self.rank, n, self.world)
        source = self.data.val_source
        groups = len(self.data.sources) if source is not None else 0
        loss_sum, correct = 0.0, 0
        hits, seen = (
            torch.zeros(groups, dtype=torch.float64),
            torch.zeros(groups, dtype=torch.float64),
        )
        for start in range(0, len(idx), 256):
            part = idx[start : start + 256]
            x = self._inputs(self.data.x_val[part], train=False)
            y = self.data.y_val[part].to(self.device)
            with _autocast(self.device, self.cfg.bf16):
                logits = net(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            right = (logits.argmax(1) == y).cpu()
            correct += int(right.sum())
            if source is not None:
                which = source[part]
                hits += torch.bincount(which, weights=right.double(), minlength=groups)
                seen += torch.bincount(which, minlength=groups).double()
        totals = self._all_sum([loss_sum, correct, len(idx), *hits.tolist(), *seen.tolist()])
        row = {"val_loss": totals[0] / totals[2], "val_accuracy": totals[1] / totals[2]}
        for i, name in enumerate(self.data.sources[:groups]):
            if totals[3 + groups + i] > 0:  # a dataset without val samples of these classes
                row[f"val_accuracy/{name}"] = totals[3 + i] / totals[3 + groups + i]
        return row

    def _all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def run(self, state: TrainState, saved: dict[str, Any] | None) -> TrainState:
        """Epochs from ``state.epoch + 1`` until the last one or early stopping."""
        if saved is not None:
            self._restore(saved)
        while state.epoch < self.cfg.epochs and not state.stopped_early:
            epoch = state.epoch + 1
            row = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update(self.train_epoch(epoch))
            row.update(self.validation())
            if not math.isfinite(row["train_loss"]):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss is not finite)")
            # the learning rate steers the network, not its average: plateau goes by its loss
            self._schedule(row.get("val_loss_raw", row["val_loss"]))
            state.epoch = epoch
            state.history.append({k: _round(v) for k, v in row.items()})
            for callback in self.callbacks:
                callback.on_epoch_end(self, state, row)
        return state

    def _schedule(self, val_loss: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        else:
            self.scheduler.step()

    # -- resuming ---------------------------------------------------------------------------
    def _restore(self, saved: dict[str, Any]) -> None:
        """Model, optimiser and scheduler state from a validated checkpoint; a state that does
        not fit them (another architecture or optimiser) is a FerkitError naming the file."""
        path = self.out / CHECKPOINT
        load_state(self.net, saved["model"], path)
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise FerkitError(f"{path}: optimiser or scheduler state does not fit: {exc}") from exc
        if self.ema is None:
            return
        if "ema" in saved:
            load_state(self.ema, saved["ema"], path)
            return
        self._restart_ema()
        if self.rank == 0:
            _log(
                f"warning: {path}: was written without --ema; the average of the weights "
                f"starts now, from epoch {saved['epoch']}'s weights (the best so far, "
                f"{saved['best_accuracy']:.4f}, was the network's own)"
            )


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teachers || student), both softened by ``temperature`` (the T^2 keeps the
    gradient's scale as T changes, as in Hinton et al.). ``soft``: the teachers' probabilities
    (:mod:`ferkit.training.distill`)."""
    log_student = F.log_softmax(logits.float() / temperature, dim=1)
    teacher = F.softmax(torch.log(soft.clamp_min(1e-12)) / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * temperature**2


def _log(line: str) -> None:
    """One line to stderr, flushed at once: a background run's log shows every epoch as it
    ends, not when a buffer fills."""
    print(line, file=sys.stderr, flush=True)


def _round(value: float) -> float:
    """Six significant digits: enough for curves, and a 1e-7 learning rate stays visible."""
    return float(f"{float(value):.6g}")
