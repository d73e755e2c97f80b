"""Training throughput (images/s) of every registered network on this CPU.

    .venv/bin/python benchmarks/net_speed.py [--models fernet cnn10] [--batch 64] [--threads 2]
        [--warmup 3] [--steps 10]

For each model at 48x48 gray and 96x96 RGB (7 classes) it times full training steps the way
ferkit trains: channels_last tensors, ``torch.autocast("cpu", dtype=torch.bfloat16)`` for
forward and loss, backward, and an Adam step, on random data. ``--warmup`` untimed steps
let oneDNN pick and cache its kernels first. Prints a markdown table; the numbers depend on the
machine and on whatever else it is running.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from ferkit.models.nets import create_model, list_models

INPUTS = ((1, 48), (3, 96))  # (channels, side): FER2013-style gray, AffectNet-style RGB
NUM_CLASSES = 7


def train_throughput(
    name: str, channels: int, side: int, batch: int, warmup: int, steps: int
) -> tuple[float, int]:
    """(images per second over ``steps`` timed training steps, parameter count)."""
    torch.manual_seed(0)
    model = create_model(name, NUM_CLASSES, channels, side).to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, channels, side, side).to(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    return batch * steps / elapsed, sum(p.numel() for p in model.parameters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    header = ["model"]
    for channels, side in INPUTS:
        color = "gray" if channels == 1 else "RGB"
        header += [f"params {side}px {color}", f"img/s {side}px {color}"]
    print(f"batch {args.batch}, {args.threads} threads, bf16 autocast, channels_last, Adam\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.models:
        cells = [name]
        for channels, side in INPUTS:
            rate, params = train_throughput(
                name, channels, side, args.batch, args.warmup, args.steps
            )
            cells += [f"{params / 1e6:.2f}M", f"{rate:.0f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
