"""``fer`` side of ``fer_vs_ferkit.py``: time ``FER(mtcnn=False).detect_emotions`` end to end.

Runs under the benchmark's own venv (TensorFlow and ``fer`` are not ferkit dependencies)::

    .bench-venv/bin/python benchmarks/_fer_worker.py IMAGE_LIST [--threads 1] \
        [--backend tflite|keras] [--warmup 3] [--passes 1]

``IMAGE_LIST`` is a text file with one image path per line. The detector is built once (Haar
cascade, fer's default), then ``--warmup`` images go through ``detect_emotions`` untimed, then
every image, ``--passes`` times over, is read with ``cv2.imread`` and passed to
``detect_emotions`` inside the timed loop, as a user's end-to-end call would. Prints one JSON
line on stdout. Uses only numpy / OpenCV / TensorFlow / fer, never ferkit.

``--backend tflite`` is what ``FER(mtcnn=False)`` does in fer 25.x (its quantised
``emotion_model_quantized.tflite``, one face per interpreter call); ``--backend keras`` is
``FER(mtcnn=False, use_tflite=False)``, the original Keras ``emotion_model.hdf5`` (the only
model in fer releases before 25). Threads: TF intra/inter-op threads and OMP_NUM_THREADS are
set before TensorFlow starts, OpenCV's with ``cv2.setNumThreads``, and for TFLite the
interpreter fer caches is created here with ``num_threads`` (fer itself leaves it to TFLite).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_list", type=Path, help="text file, one image path per line")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", choices=("tflite", "keras"), default="tflite")
    parser.add_argument("--warmup", type=int, default=3, help="untimed images first")
    parser.add_argument("--passes", type=int, default=1, help="timed passes over the list")
    return parser.parse_args()


def keras_version() -> str | None:
    try:
        import keras
    except ImportError:
        return None
    return str(keras.__version__)


def main() -> int:
    args = parse_args()
    paths = [line.strip() for line in args.image_list.read_text().splitlines() if line.strip()]
    if not paths:
        raise SystemExit(f"{args.image_list}: no image paths")
    # threads: must be fixed before TensorFlow creates its thread pools
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import logging
    import warnings

    warnings.filterwarnings("ignore")  # tf.lite.Interpreter deprecation, Keras input structure
    import cv2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cv2.setNumThreads(args.threads)

    import fer

    try:
        from fer import FER
    except ImportError:  # fer 25.10.3's __init__ does not re-export FER
        from fer.fer import FER
    logging.getLogger("fer").setLevel(logging.WARNING)

    use_tflite = args.backend == "tflite"
    if use_tflite:
        # fer caches one interpreter on the class; creating it here sets its thread count
        model_path = Path(fer.__file__).with_name("data") / "emotion_model_quantized.tflite"
        interpreter = tf.lite.Interpreter(model_path=str(model_path), num_threads=args.threads)
        interpreter.allocate_tensors()
        FER._tflite_interpreter_cache = interpreter
    detector = FER(mtcnn=False, use_tflite=use_tflite)

    for path in paths[: args.warmup]:
        detector.detect_emotions(cv2.imread(path))

    faces = 0
    per_image: list[int] = []
    boxes: list[list[list[int]]] = []  # first pass: each image's boxes, [x, y, w, h]
    start = time.perf_counter()
    for _ in range(args.passes):
        for path in paths:
            image = cv2.imread(path)
            if image is None:
                raise SystemExit(f"{path}: cv2.imread could not read it")
            found = detector.detect_emotions(image)
            faces += len(found)
            per_image.append(len(found))
            if len(boxes) < len(paths):
                boxes.append([[int(v) for v in face["box"]] for face in found])
    seconds = time.perf_counter() - start
    images = len(paths) * args.passes
    print(
        json.dumps(
            {
                "images": images,
                "seconds": seconds,
                "images_per_second": images / seconds,
                "faces": faces,
                "faces_per_image": per_image[: len(paths)],
                "boxes_per_image": boxes,
                "threads": args.threads,
                "backend": args.backend,
                "intra_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "tf_version": tf.__version__,
                "keras_version": keras_version(),
                "fer_version": fer.__version__,
                "opencv_version": cv2.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
