"""``--nproc N``: DistributedDataParallel over N local processes (gloo on CPU, NCCL on GPUs).

The parent loads and decodes the data once; the uint8 tensors move to shared memory, so the
workers do not each hold a copy. Each rank trains on its shard with batch/N images per step,
keeping the global batch the same as a single-process run.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ferkit.models.card import ModelCard
from ferkit.training.config import PreparedData, TrainConfig, resolve_device
from ferkit.training.loop import Progress
from ferkit.training.worker import run_worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    rank: int,
    world: int,
    port: int,
    cfg: TrainConfig,
    prepared: PreparedData,
    card: ModelCard,
    out: Path,
    saved: dict[str, Any] | None,
    progress: Progress,
) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    backend = "nccl" if resolve_device(cfg.device).type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        run_worker(rank, world, cfg, prepared, card, out, saved, progress)
    finally:
        dist.destroy_process_group()


def spawn(
    cfg: TrainConfig,
    prepared: PreparedData,
    card: ModelCard,
    out: Path,
    saved: dict[str, Any] | None,
    progress: Progress,
) -> None:
    """Run ``cfg.nproc`` ranks and wait; an exception in any rank is raised here."""
    for tensor in (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val):
        tensor.share_memory_()
    torch.manual_seed(cfg.seed)
    mp.spawn(
        _worker,
        args=(cfg.nproc, _free_port(), cfg, prepared, card, out, saved, progress),
        nprocs=cfg.nproc,
        join=True,
    )
