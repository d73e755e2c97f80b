"""One training process: the only one, or one DistributedDataParallel rank.

Both :func:`ferkit.training.deep.train_network` (one process) and
:mod:`ferkit.training.distributed` (one call per spawned rank) run :func:`run_worker`, so it
lives apart from both: the launcher imports it without importing the data loading of ``deep``,
and ``deep`` imports the launcher without a cycle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ferkit.models.card import ModelCard
from ferkit.models.torch_run import build_network
from ferkit.training.callbacks import standard_callbacks
from ferkit.training.config import PreparedData, TrainConfig, resolve_device
from ferkit.training.loop import Loop, Progress, TrainState


def run_worker(
    rank: int,
    world: int,
    cfg: TrainConfig,
    prepared: PreparedData,
    card: ModelCard,
    out: Path,
    saved: dict[str, Any] | None,
    progress: Progress,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> None:
    """One training process (the only one, or one DDP rank): build, maybe resume, loop."""
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.manual_seed(cfg.seed)
    model = build_network(architecture(cfg, prepared))
    if saved is None and cfg.init:
        from ferkit.training.finetune import load_init

        load_init(model, cfg.init)
    state = TrainState.from_checkpoint(saved) if saved is not None else TrainState()
    callbacks = standard_callbacks(progress, on_batch, on_epoch)
    loop = Loop(rank, world, cfg, prepared, card, out, model, device, progress, callbacks)
    loop.run(state, saved)


def architecture(cfg: TrainConfig, prepared: PreparedData) -> dict[str, Any]:
    """The saved architecture: the registered network, sized for the data, with the test-time
    steps (resampling and sharpness matching, flip averaging) it applies to every input."""
    kwargs: dict[str, Any] = dict(cfg.model_kwargs)
    if cfg.resample_via is not None:
        kwargs["resample_via"] = cfg.resample_via
    if prepared.sharpness_target is not None:
        kwargs["sharpness_target"] = prepared.sharpness_target
    if cfg.tta == "flip":
        kwargs["flip_average"] = True
    return {
        "name": cfg.model,
        "num_classes": len(prepared.classes),
        "in_channels": 1 if prepared.color == "gray" else 3,
        "image_size": prepared.image_size,
        "kwargs": kwargs,
    }
