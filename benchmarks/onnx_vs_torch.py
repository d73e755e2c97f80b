"""Faces classified per second: torch vs onnxruntime on the same network, at several batch sizes.

    .venv/bin/python benchmarks/onnx_vs_torch.py [--model fernet] [--size 48] [--color gray] \\
        [--batches 1 8 32 128] [--images 512] [--repeats 3] [--threads 1] [--out runs/onnx-bench]

Throughput does not depend on what the weights are, so the network is freshly initialised (no
training needed) and saved as an ordinary run; the ONNX file is exported from that run with
``export_onnx`` and the two backends are the very estimators ``load_run`` returns
(``backend="torch"`` / ``backend="onnx"``). Both get the same uint8 face crops and the same
thread count. For each batch size: ``--images`` crops are classified in batches of that size,
``--repeats`` times after one warm-up pass; the best pass is reported (the least disturbed by
other processes). Prints JSON rows and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from ferkit import io
from ferkit.models import load_run
from ferkit.models.nets import create_model
from ferkit.models.onnx_export import export_onnx
from ferkit.models.torch_run import save_torch_run

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def make_run(out: Path, model: str, size: int, color: str, seed: int) -> Path:
    """A run folder holding a freshly initialised network, exported to ONNX beside it."""
    torch.manual_seed(seed)
    channels = 1 if color == "gray" else 3
    net = create_model(model, len(CLASSES), channels, size).eval()
    card = {
        "name": out.name,
        "classes": CLASSES,
        "canonical": CLASSES,
        "image_size": size,
        "color": color,
        "mean": [0.5] * channels,
        "std": [0.25] * channels,
    }
    save_torch_run(out, net, card)
    export_onnx(out)
    return out


def best_rate(predict, images: np.ndarray, batch: int, repeats: int) -> float:
    """Images per second of the fastest of ``repeats`` passes (after one warm-up pass)."""

    def one_pass() -> float:
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            predict(images[i : i + batch])
        return time.perf_counter() - start

    one_pass()
    return len(images) / min(one_pass() for _ in range(repeats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fernet")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--color", choices=["gray", "rgb"], default="gray")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/onnx-bench"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    run_dir = make_run(
        args.out / f"{args.model}-{args.size}-{args.color}",
        args.model,
        args.size,
        args.color,
        args.seed,
    )
    torch_est = load_run(run_dir, backend="torch").estimator
    onnx_est = load_run(run_dir, backend="onnx").estimator
    from ferkit.models.onnx_run import make_session

    onnx_est.session = make_session(run_dir / "model.onnx", threads=args.threads)
    channels = 1 if args.color == "gray" else 3
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, (args.images, args.size, args.size, channels), dtype=np.uint8)
    diff = float(
        np.abs(torch_est.predict_proba(images[:64]) - onnx_est.predict_proba(images[:64])).max()
    )
    rows = []
    for batch in args.batches:
        torch_est.batch_size = onnx_est.batch_size = batch
        t = best_rate(torch_est.predict_proba, images, batch, args.repeats)
        o = best_rate(onnx_est.predict_proba, images, batch, args.repeats)
        row = {
            "model": args.model,
            "input": f"{args.size}x{args.size} {args.color}",
            "batch": batch,
            "torch_img_s": round(t, 1),
            "onnxruntime_img_s": round(o, 1),
            "ratio": round(o / t, 2),
            "threads": args.threads,
            "max_abs_diff": diff,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "date": date.today().isoformat(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    lines = [
        "| model | input | batch | torch (faces/s) | onnxruntime (faces/s) | onnxruntime / torch |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['input']} | {r['batch']} | {r['torch_img_s']} | "
            f"{r['onnxruntime_img_s']} | {r['ratio']}x |"
        )
    io.write_text(args.out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
