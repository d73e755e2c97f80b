"""End-to-end images/s of ferkit's ``Predictor.predict_image`` vs the ``fer`` package.

    .venv/bin/python benchmarks/fer_vs_ferkit.py [--images DIR] [--limit N] [--repeats 3] \
        [--threads 1] [--passes 2] [--warmup 3] [--fer-backend both|tflite|keras] \
        [--model NAME_OR_RUN] [--json OUT]

Both sides take the same image files, on the same machine, in the same run, with the same
thread count, and go from a path on disk to emotions for every face found:

* ferkit, in this process with ferkit's venv: ``ferkit.inference.Predictor(model)`` is built
  once outside the timing, then ``predictor.predict_image(path)`` for each path is timed
  (decoding, detection, landmarks, alignment, quality gate, classification). ``--model``
  defaults to the shipped ``fer2013`` network when it ships, else ferkit's default model
  (``Predictor(None)``; ``affectnet-hog-svm`` today). Threads: ``torch.set_num_threads`` /
  ``set_num_interop_threads``, ``cv2.setNumThreads``, ``FERKIT_THREADS`` (ferkit's onnxruntime
  sessions: detector and classifier) and a threadpoolctl limit on BLAS/OpenMP.
* fer (Justin Shenk's FER, PyPI ``fer``), as a subprocess of ``.bench-venv/bin/python
  benchmarks/_fer_worker.py``: ``FER(mtcnn=False)`` built once, then ``cv2.imread(path)`` +
  ``detect_emotions(image)`` for each path is timed. ``--fer-backend tflite`` is fer 25.x's
  default (its quantised TFLite model), ``keras`` is ``use_tflite=False`` (the original Keras
  ``emotion_model.hdf5``); ``both`` (the default) times each. TensorFlow and fer live only in
  that venv; create it with the commands printed when it is missing.

The pipelines are not the same work: ferkit detects with dlib's HOG detector, falls back to
OpenCV's Haar cascade, then fits 68 landmarks, aligns and frames each face and passes it
through a quality gate before classifying; fer runs OpenCV's Haar cascade only (no landmarks,
no alignment, no gate) and classifies a padded gray 64x64 box. The two detectors can also find
different faces, so the table reports the faces each side found per pass next to its speed.

Default images: scikit-image's astronaut (PNG and JPEG) plus its camera (PNG), chelsea, coffee
and rocket photos (JPEG), written to a temporary folder; only the astronaut and the cameraman
are people, so most of the set times the no-face path of each detector. Give real photos with
``--images DIR`` (every .jpg/.jpeg/.png/.bmp/.webp in it, sorted; ``--limit`` keeps the first N).
Each side first predicts ``--warmup`` images untimed, then times ``--passes`` passes over all
of them. Each repeat runs every side once, the order reversed on odd repeats (ABBA), so
background load falls on both; the table gives the median images/s over the repeats and
ferkit's images/s divided by each side's. On a loaded machine absolute images/s move with the
load; the ratio, measured in the same run, is the meaningful figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from _bench_env import bench_python, machine_note, torch_threads

FER_SCRIPT = Path(__file__).resolve().with_name("_fer_worker.py")
TF_PIN = "tensorflow-cpu==2.21.0"
FER_PIN = "fer==25.10.3"
CREATE_VENV = (
    f"python3.11 -m venv .bench-venv && .bench-venv/bin/pip install {TF_PIN} "
    f"'opencv-python-headless<5' pillow 'setuptools<81' && "
    f".bench-venv/bin/pip install --no-deps {FER_PIN}"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# (scikit-image dataset, file written): the default image set
DEFAULT_IMAGES = (
    ("astronaut", "astronaut.png"),
    ("astronaut", "astronaut.jpg"),
    ("camera", "camera.png"),
    ("chelsea", "chelsea.jpg"),
    ("coffee", "coffee.jpg"),
    ("rocket", "rocket.jpg"),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of photos to use")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N images")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=1, help="threads for both sides")
    parser.add_argument("--passes", type=int, default=2, help="timed passes over the images")
    parser.add_argument("--warmup", type=int, default=3, help="untimed images before timing")
    parser.add_argument(
        "--fer-backend", choices=("both", "tflite", "keras"), default="both", help="fer model"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="ferkit model (run folder or shipped name); default: fer2013 if shipped, "
        "else ferkit's default model",
    )
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    args = parser.parse_args()
    for name in ("repeats", "threads", "passes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


# -- images -----------------------------------------------------------------------------------
def write_default_images(folder: Path) -> list[Path]:
    import cv2
    import skimage.data

    paths = []
    for dataset, name in DEFAULT_IMAGES:
        pixels = getattr(skimage.data, dataset)()
        if pixels.ndim == 3:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        path = folder / name
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        if not cv2.imwrite(str(path), pixels, params):
            raise SystemExit(f"could not write {path}")
        paths.append(path)
    return paths


def collect_images(args: argparse.Namespace, scratch: Path) -> list[Path]:
    if args.images is None:
        paths = write_default_images(scratch)
    else:
        if not args.images.is_dir():
            raise SystemExit(f"{args.images}: not a folder")
        paths = sorted(
            p.resolve()
            for p in args.images.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if args.limit is not None:
        paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"{args.images}: no {'/'.join(IMAGE_SUFFIXES)} images")
    return paths


# -- ferkit -----------------------------------------------------------------------------------
def backend_of(predictor: object) -> str:
    """What classifies: ``onnx int8``, ``onnx fp32``, or the run's own estimator (torch, skops)."""
    run = predictor.run  # type: ignore[attr-defined]
    backend = getattr(run, "backend", None) or run.kind
    precision = getattr(getattr(run, "estimator", None), "precision", None)
    return f"{backend} {precision}" if precision else str(backend)


def ferkit_model(name: str | None) -> str | None:
    """``--model``, else ``fer2013`` when it ships, else ``None`` (ferkit's default model)."""
    if name is not None:
        return name
    from ferkit.weights import shipped_models

    return "fer2013" if "fer2013" in shipped_models() else None


def ferkit_run(predictor: Any, paths: list[Path], passes: int) -> dict[str, Any]:
    faces = classified = 0
    per_image: list[int] = []
    boxes: list[list[list[int]]] = []  # first pass: each image's boxes, [x, y, w, h]
    start = time.perf_counter()
    for _ in range(passes):
        for path in paths:
            result = predictor.predict_image(path)
            faces += len(result.faces)
            classified += sum(f.classified for f in result.faces)
            per_image.append(len(result.faces))
            if len(boxes) < len(paths):
                boxes.append(
                    [[f.box.left, f.box.top, f.box.width, f.box.height] for f in result.faces]
                )
    seconds = time.perf_counter() - start
    images = len(paths) * passes
    return {
        "side": "ferkit",
        "images": images,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "faces": faces,
        "classified": classified,
        "faces_per_image": per_image[: len(paths)],
        "boxes_per_image": boxes,
    }


# -- fer --------------------------------------------------------------------------------------
def fer_run(
    python: Path, backend: str, image_list: Path, args: argparse.Namespace
) -> dict[str, Any]:
    cmd = [
        str(python),
        str(FER_SCRIPT),
        str(image_list),
        f"--threads={args.threads}",
        f"--backend={backend}",
        f"--warmup={args.warmup}",
        f"--passes={args.passes}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"fer run ({backend}) failed with exit code {done.returncode}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["side"] = f"fer {backend}"
    run["classified"] = run["faces"]
    return run


# -- report -----------------------------------------------------------------------------------


def passes_of(run: dict[str, Any]) -> int:
    return run["images"] // len(run["faces_per_image"])


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sides: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        sides.setdefault(run["side"], []).append(run)
    medians = {k: statistics.median(r["images_per_second"] for r in v) for k, v in sides.items()}
    ferkit = medians["ferkit"]
    rows = []
    for side, group in sides.items():
        rows.append(
            {
                "side": side,
                "median_images_per_second": round(medians[side], 3),
                "runs_images_per_second": [round(r["images_per_second"], 3) for r in group],
                "median_ms_per_image": round(1e3 / medians[side], 1),
                "faces_per_pass": sum(group[0]["faces_per_image"]),
                # fer classifies every face it finds; ferkit only those passing its gate
                "classified_per_pass": group[0]["classified"] // passes_of(group[0]),
                "faces_per_image": group[0]["faces_per_image"],
                "boxes_per_image": group[0].get("boxes_per_image"),
                "ratio_ferkit_over_this": round(ferkit / medians[side], 3),
            }
        )
    return rows


def _centre_in(box: list[int], truth: list[int]) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return truth[0] <= cx < truth[0] + truth[2] and truth[1] <= cy < truth[1] + truth[3]


def score_against_truth(rows: list[dict[str, Any]], paths: list[Path], truth_file: Path) -> None:
    """Add ``true_faces`` (true faces with a found box centred inside) and ``false_boxes`` (found
    boxes centred in no true face) to each row, from a ``boxes.json`` written by
    ``benchmarks/_scenes.py`` (file name -> [{"box": [x, y, w, h]}, ...])."""
    truth = json.loads(truth_file.read_text())
    for row in rows:
        hit = false = total = 0
        for path, found in zip(paths, row["boxes_per_image"] or [], strict=False):
            faces = [t["box"] for t in truth.get(path.name, [])]
            total += len(faces)
            hit += sum(any(_centre_in(b, t) for b in found) for t in faces)
            false += sum(not any(_centre_in(b, t) for t in faces) for b in found)
        row.update(true_faces=hit, truth_total=total, false_boxes=false)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| side | median images/s | runs (images/s) | median ms/image | faces per pass "
        "| ferkit / this |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        runs = ", ".join(f"{v:.2f}" for v in r["runs_images_per_second"])
        lines.append(
            f"| {r['side']} | {r['median_images_per_second']:.2f} | {runs} "
            f"| {r['median_ms_per_image']:.1f} | {r['faces_per_pass']} "
            f"({r['classified_per_pass']} classified) "
            f"| {r['ratio_ferkit_over_this']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    python = bench_python("fer (TensorFlow-CPU + fer)", CREATE_VENV)
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    torch_threads(args.threads)
    cv2.setNumThreads(args.threads)
    os.environ["FERKIT_THREADS"] = str(args.threads)  # ferkit's onnxruntime sessions
    import ferkit
    from ferkit.inference import Predictor

    backends = ["tflite", "keras"] if args.fer_backend == "both" else [args.fer_backend]
    plan = ["ferkit", *backends]
    before = machine_note()
    with (
        tempfile.TemporaryDirectory(prefix="fer_vs_ferkit_") as tmp,
        threadpool_limits(args.threads),
    ):
        scratch = Path(tmp)
        paths = collect_images(args, scratch)
        image_list = scratch / "images.txt"
        image_list.write_text("".join(f"{p}\n" for p in paths))
        print(f"{len(paths)} images: {', '.join(p.name for p in paths)}", file=sys.stderr)

        start = time.perf_counter()
        predictor = Predictor(ferkit_model(args.model))
        load_s = time.perf_counter() - start
        for path in paths[: args.warmup]:
            predictor.predict_image(path)

        runs: list[dict[str, Any]] = []
        for rep in range(args.repeats):
            for side in plan if rep % 2 == 0 else plan[::-1]:
                if side == "ferkit":
                    run = ferkit_run(predictor, paths, args.passes)
                else:
                    run = fer_run(python, side, image_list, args)
                run["repeat"] = rep
                runs.append(run)
                print(
                    f"repeat {rep}: {run['side']}: {run['images_per_second']:.2f} images/s",
                    file=sys.stderr,
                )
    rows = summarise(runs)
    fer_info = next(r for r in runs if r["side"] != "ferkit")
    model = predictor.describe()
    versions = {
        "ferkit": ferkit.__version__,
        "torch": torch.__version__,
        "opencv (ferkit)": cv2.__version__,
        "fer": fer_info["fer_version"],
        "tensorflow": fer_info["tf_version"],
        "keras": fer_info["keras_version"],
        "opencv (fer)": fer_info["opencv_version"],
        "python": platform.python_version(),
    }
    after = machine_note()
    today = date.today().isoformat()
    truth_file = args.images / "boxes.json" if args.images else None
    if truth_file is not None and truth_file.is_file():  # scenes from benchmarks/_scenes.py
        score_against_truth(rows, paths, truth_file)
        for row in rows:
            print(
                f"{row['side']}: {row['true_faces']} of {row['truth_total']} true faces found, "
                f"{row['false_boxes']} boxes on no true face (first pass, box centre in face)"
            )
    print(markdown(rows))
    print()
    source = f"--images {args.images}" if args.images else "scikit-image default set"
    print(
        f"{today}: {len(paths)} images ({source}), "
        f"{args.warmup} warm-up images + {args.passes} timed passes per run, "
        f"{args.repeats} alternating repeats, {args.threads} threads"
    )
    print(
        f"ferkit model {model['name']} ({model['kind']} run on {backend_of(predictor)}, "
        f"{model['image_size']}px "
        f"{model['color']}), detector {predictor.detector_name}, loaded in {load_s:.1f}s "
        f"(untimed); fer FER(mtcnn=False): Haar cascade"
    )
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"machine: {before['cpu']}, {before['cores']} cores, load average "
        f"{before['loadavg'][0]} before / {after['loadavg'][0]} after (shared machine)"
    )
    print(json.dumps({"date": today, "table": rows}))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "date": today,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "images": [str(p) if args.images else p.name for p in paths],
            "table": rows,
            "runs": runs,
            "ferkit_model": model,
            "ferkit_load_s": round(load_s, 2),
            "versions": versions,
            "machine_before": before,
            "machine_after": after,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
