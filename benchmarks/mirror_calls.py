"""A shipped graph with the flip outside: the mirror view in the same session call as the batch
(one call of 2N) or in a second call (two of N), and no mirror at all (``--no-flip``).

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/mirror_calls.py [--model fer2013] \\
        [--batches 256 32 1] [--threads 2] [--rounds 6] [--faces 1024] [--inside OLD.onnx]

Random uint8 crops (timing only); the default backend's graph (the int8 one where shipped);
modes timed in alternating order per round, best and median faces/s reported with the
1-minute load average. Decides ``OnnxClassifier.MIRROR_ONE_CALL_MAX``. ``--inside`` adds a
graph with the flip inside (the one shipped before, e.g. ``git show REV:PATH > old.onnx``),
run as it is: the cost of the flip outside against it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _bench_env import machine_note

from ferkit.models import load_run
from ferkit.models.onnx_run import OnnxClassifier, make_session
from ferkit.weights import DEFAULT_MODEL

MODES = ("one call of 2N", "two calls of N", "no mirror")


def classifier(run_path: str, threads: int, mode: str) -> OnnxClassifier:
    run = load_run(run_path)
    entry = run.card["onnx_int8" if run.estimator.precision == "int8" else "onnx"]
    session = make_session(run.path / entry["file"], threads)
    estimator = OnnxClassifier(
        session, batch_size=4096, graph_flip=run.estimator.graph_flip, flip=mode != "no mirror"
    )
    # an instance attribute wins over the class's threshold
    estimator.MIRROR_ONE_CALL_MAX = 1 << 30 if mode == "one call of 2N" else 0
    return estimator


def rate(estimator: OnnxClassifier, faces: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(faces), batch):
        estimator.logits(faces[i : i + batch])
    return len(faces) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 32, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--faces", type=int, default=1024)
    parser.add_argument("--inside", default=None, help="a graph with the flip inside")
    args = parser.parse_args()
    run = load_run(args.model)
    shape = (args.faces, run.image_size, run.image_size, 1 if run.color == "gray" else 3)
    faces = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    print(machine_note())
    print(f"{args.model}: {run.estimator.precision} graph, flip {run.estimator.graph_flip}")
    estimators = {mode: classifier(args.model, args.threads, mode) for mode in MODES}
    if args.inside:
        session = make_session(args.inside, args.threads)
        estimators["flip inside (--inside)"] = OnnxClassifier(session, batch_size=4096)
    modes = list(estimators)
    for batch in args.batches:
        n = faces[: max(64, min(args.faces, batch * 8))] if batch == 1 else faces
        for estimator in estimators.values():
            rate(estimator, n[: max(batch, 32)], batch)  # warm-up
        load0 = os.getloadavg()[0]
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        for r in range(args.rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                rates[mode].append(rate(estimators[mode], n, batch))
        load1 = os.getloadavg()[0]
        cells = ", ".join(
            f"{mode}: {max(v):,.0f} (med {statistics.median(v):,.0f})" for mode, v in rates.items()
        )
        print(f"batch {batch}, {args.threads} threads: {cells}; load {load0:.2f}-{load1:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
