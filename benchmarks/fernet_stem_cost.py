"""Inference cost of fernet's stage-1 resolution: ``stem=24`` (shipped fer2013) vs ``stem=48``.

    .venv/bin/python benchmarks/fernet_stem_cost.py [--threads 1] [--seconds 2] [--batches 1 64]

Both networks are built untrained (the cost does not depend on the weights) for FER2013's input
(1x48x48, 7 classes) with flip averaging on, as the shipped model runs, and timed with torch in
inference mode: each (batch, stem) pair runs for ``--seconds`` after one warm-up call, twice,
and the faster round is kept. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch

from ferkit.models.nets import create_model


def per_batch_ms(model: torch.nn.Module, x: torch.Tensor, seconds: float) -> float:
    """Mean milliseconds of one forward pass, over as many passes as fit in ``seconds``."""
    with torch.inference_mode():
        model(x)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            model(x)
            n += 1
    return (time.perf_counter() - start) / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = {
        stem: create_model(
            "fernet", num_classes=7, in_channels=1, image_size=48, stem=stem, flip_average=True
        ).eval()
        for stem in (24, 48)
    }
    print(
        "| batch | stem=24 ms/batch | stem=48 ms/batch | stem=24 faces/s | stem=48 faces/s | cost |"
    )
    print("|---|---|---|---|---|---|")
    for batch in args.batches:
        x = torch.randn(batch, 1, 48, 48)
        best = {
            stem: min(per_batch_ms(m, x, args.seconds) for _ in range(2))
            for stem, m in nets.items()
        }
        print(
            f"| {batch} | {best[24]:.2f} | {best[48]:.2f} | {batch / best[24] * 1000:.0f} | "
            f"{batch / best[48] * 1000:.0f} | {best[48] / best[24]:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
