"""Training img/s of ferkit's ``convnet`` (torch) vs the seed's Keras ConvNet on TensorFlow-CPU.

    .venv/bin/python benchmarks/keras_vs_torch.py [--batch 32] [--warmup 5] [--steps 20] \
        [--repeats 2] [--threads 2] [--keras-bf16] [--json OUT]

Both sides train the same four-layer ConvNet (Debnath et al. 2022) at 96x96 RGB with 8 classes
on one fixed synthetic batch (uniform random pixels, random labels): Adam at its default
learning rate, (categorical) cross-entropy, same batch size, same warm-up and timed step counts,
same thread count (torch intra/inter-op threads; TF intra/inter-op threads and OMP_NUM_THREADS).

* torch runs in this process with ferkit's venv: ``create_model("convnet", 8, 3, 96)`` in fp32
  (contiguous NCHW, no autocast) and in ferkit's training setting (channels_last + bf16
  autocast on CPU, the loss in fp32, as ``ferkit.training.loop.Loop._step`` does).
* Keras runs as a subprocess of ``.bench-venv/bin/python benchmarks/_keras_convnet.py`` (the
  notebook's ``Sequential`` built layer for layer, timed with ``train_on_batch``), in fp32 and,
  with ``--keras-bf16``, under the ``mixed_bfloat16`` policy. TensorFlow lives only in that
  venv; create it with the command printed when it is missing.

Each repeat runs every setting once, the order reversed on odd repeats (ABBA), so background
load on a shared machine falls on both frameworks; every run builds a fresh model and does its
own warm-up. The table gives the median img/s per setting over the repeats and its ratio to
Keras fp32. On a loaded machine the absolute img/s move with the load; the ratio, measured in
the same run, is the meaningful figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from _bench_env import bench_python, machine_note, torch_threads

KERAS_SCRIPT = Path(__file__).resolve().with_name("_keras_convnet.py")
TF_PIN = "tensorflow-cpu==2.21.0"
CREATE_VENV = f"python3.11 -m venv .bench-venv && .bench-venv/bin/pip install {TF_PIN} numpy"
IMAGE_SIZE, NUM_CLASSES, IN_CHANNELS = 96, 8, 3
BASELINE = ("keras", "float32")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="batch size (the seed's is 32)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per run")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=2, help="threads for both frameworks")
    parser.add_argument(
        "--keras-bf16", action="store_true", help="also time Keras under mixed_bfloat16"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    return parser.parse_args()


# -- torch ------------------------------------------------------------------------------------
def torch_run(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train ferkit's convnet on one fixed batch; ``setting`` is ``float32`` or ``ferkit``."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from ferkit.models.nets import create_model

    torch.manual_seed(args.seed)
    model = create_model(
        "convnet", num_classes=NUM_CLASSES, in_channels=IN_CHANNELS, image_size=IMAGE_SIZE
    )
    ferkit_mode = setting == "ferkit"
    memory = torch.channels_last if ferkit_mode else torch.contiguous_format
    model = model.to(memory_format=memory).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    x = x.contiguous(memory_format=memory)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if ferkit_mode:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step() -> None:
        with autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss.detach())  # the loop reads the loss every step
        int((logits.argmax(1) == y).sum())

    times = time_steps(step, args.warmup, args.steps)
    params = sum(p.numel() for p in model.parameters())
    bn_stats = sum(
        b.numel()
        for name, b in model.named_buffers()
        if name.endswith(("running_mean", "running_var"))
    )
    return {
        "framework": "torch",
        "setting": setting,
        "img_per_s": args.batch * args.steps / sum(times),
        "step_ms": [round(t * 1e3, 2) for t in times],
        "params": params,
        "bn_moving_stats": bn_stats,
    }


def time_steps(step: Callable[[], None], warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


# -- keras ------------------------------------------------------------------------------------
def keras_run(python: Path, policy: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        str(python),
        str(KERAS_SCRIPT),
        f"--batch={args.batch}",
        f"--warmup={args.warmup}",
        f"--steps={args.steps}",
        f"--threads={args.threads}",
        f"--image-size={IMAGE_SIZE}",
        f"--classes={NUM_CLASSES}",
        f"--policy={policy}",
        f"--seed={args.seed}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"keras run ({policy}) failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report -----------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    settings: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        settings.setdefault((run["framework"], run["setting"]), []).append(run)
    medians = {k: statistics.median(r["img_per_s"] for r in v) for k, v in settings.items()}
    base = medians.get(BASELINE)
    rows = []
    for key, group in settings.items():
        steps = [t for r in group for t in r["step_ms"]]
        rows.append(
            {
                "framework": key[0],
                "setting": key[1],
                "median_img_per_s": round(medians[key], 2),
                "runs_img_per_s": [round(r["img_per_s"], 2) for r in group],
                "median_step_ms": round(statistics.median(steps), 1),
                "best_step_ms": round(min(steps), 1),
                "ratio_vs_keras_fp32": round(medians[key] / base, 3) if base else None,
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    label = {
        ("torch", "float32"): "torch fp32 (NCHW)",
        ("torch", "ferkit"): "torch ferkit (bf16 autocast + channels_last)",
        ("keras", "float32"): "Keras/TF fp32",
        ("keras", "mixed_bfloat16"): "Keras/TF mixed_bfloat16",
    }
    lines = [
        "| setting | median img/s | runs (img/s) | median ms/step | best ms/step "
        "| ratio vs Keras fp32 |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        runs = ", ".join(f"{v:.1f}" for v in r["runs_img_per_s"])
        ratio = "" if r["ratio_vs_keras_fp32"] is None else f"{r['ratio_vs_keras_fp32']:.2f}"
        lines.append(
            f"| {label[(r['framework'], r['setting'])]} | {r['median_img_per_s']:.1f} | {runs} "
            f"| {r['median_step_ms']:.1f} | {r['best_step_ms']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    python = bench_python("Keras (TensorFlow-CPU)", CREATE_VENV)
    import torch

    torch_threads(args.threads)
    plan: list[tuple[str, str]] = [("torch", "float32"), ("torch", "ferkit"), BASELINE]
    if args.keras_bf16:
        plan.append(("keras", "mixed_bfloat16"))
    before = machine_note()
    runs: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for framework, setting in plan if rep % 2 == 0 else plan[::-1]:
            if framework == "torch":
                run = torch_run(setting, args)
            else:
                run = keras_run(python, setting, args)
            run["repeat"] = rep
            runs.append(run)
            print(
                f"repeat {rep}: {framework} {setting}: {run['img_per_s']:.1f} img/s",
                file=sys.stderr,
            )
    rows = summarise(runs)
    keras = next(r for r in runs if r["framework"] == "keras")
    torch_params = next(r for r in runs if r["framework"] == "torch")
    params = {
        "keras_count_params": keras["params"],
        "keras_trainable": keras["trainable_params"],
        "torch_parameters": torch_params["params"],
        "torch_bn_moving_stats": torch_params["bn_moving_stats"],
    }
    versions = {
        "torch": torch.__version__,
        "tensorflow": keras["tf_version"],
        "keras": keras["keras_version"],
        "python": platform.python_version(),
    }
    after = machine_note()
    print(markdown(rows))
    print()
    print(
        f"batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps per run, "
        f"{args.repeats} alternating repeats, {args.threads} threads; "
        f"Keras jit_compile={keras['jit_compile']}"
    )
    print(
        f"params: Keras count_params() {params['keras_count_params']:,} "
        f"(trainable {params['keras_trainable']:,}); torch parameters "
        f"{params['torch_parameters']:,} + BN running mean/var buffers "
        f"{params['torch_bn_moving_stats']:,} = "
        f"{params['torch_parameters'] + params['torch_bn_moving_stats']:,}"
    )
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"machine: {before['cpu']}, {before['cores']} cores, load average "
        f"{before['loadavg'][0]} before / {after['loadavg'][0]} after (shared machine)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "date": date.today().isoformat(),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "table": rows,
            "runs": runs,
            "params": params,
            "versions": versions,
            "machine_before": before,
            "machine_after": after,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
