"""Keras side of ``keras_vs_torch.py``: time training steps of the seed notebook's ConvNet.

Runs under the benchmark's own venv (TensorFlow is not a ferkit dependency)::

    .bench-venv/bin/python benchmarks/_keras_convnet.py --batch 32 --warmup 5 --steps 20

It builds the notebook's four-layer ConvNet (Debnath et al. 2022) exactly as the seed does
(same layers, ``input_shape=(96, 96, 3)`` on the first Conv2D, softmax head, ``Adam()`` and
``categorical_crossentropy`` with the ``accuracy`` metric), then times ``train_on_batch`` on one
fixed synthetic batch of uniform random pixels and one-hot labels. Prints one JSON line on
stdout. Uses only numpy / tensorflow, never ferkit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--policy", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def build_convnet(image_size: int, num_classes: int):  # -> keras.Sequential (imported late)
    """The notebook's ``convnet_model``, layer for layer (only the input size and the class
    count are parameters; the seed's values are 96 and 8)."""
    from tensorflow.keras.layers import (
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        MaxPooling2D,
    )
    from tensorflow.keras.models import Sequential

    # 1st convolution layer
    convnet_model = Sequential()
    convnet_model.add(
        Conv2D(64, kernel_size=(3, 3), activation="relu", input_shape=(image_size, image_size, 3))
    )
    convnet_model.add(Conv2D(64, kernel_size=(3, 3), activation="relu"))
    convnet_model.add(BatchNormalization())
    convnet_model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    convnet_model.add(Dropout(0.5))
    # 2nd convolution layer
    convnet_model.add(Conv2D(64, (3, 3), activation="relu"))
    convnet_model.add(Conv2D(64, (3, 3), activation="relu"))
    convnet_model.add(BatchNormalization())
    convnet_model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    convnet_model.add(Dropout(0.5))
    # 3rd convolution layer
    convnet_model.add(Conv2D(128, (3, 3), activation="relu"))
    convnet_model.add(Conv2D(128, (3, 3), activation="relu"))
    convnet_model.add(BatchNormalization())
    convnet_model.add(MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    convnet_model.add(Flatten())
    # fully connected neural networks
    convnet_model.add(Dense(1024, activation="relu"))
    convnet_model.add(Dropout(0.2))
    convnet_model.add(Dense(1024, activation="relu"))
    convnet_model.add(Dropout(0.2))
    convnet_model.add(Dense(num_classes, activation="softmax"))
    return convnet_model


def main() -> int:
    args = parse_args()
    # threads: must be fixed before TensorFlow creates its thread pools
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import warnings

    warnings.filterwarnings("ignore")  # Keras 3 warns about input_shape= on a layer
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from tensorflow import keras
    from tensorflow.keras.optimizers import Adam

    keras.mixed_precision.set_global_policy(args.policy)
    keras.utils.set_random_seed(args.seed)
    model = build_convnet(args.image_size, args.classes)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(), metrics=["accuracy"])

    rng = np.random.default_rng(args.seed)
    side = args.image_size
    x = tf.constant(rng.random((args.batch, side, side, 3), dtype=np.float32))
    labels = rng.integers(0, args.classes, args.batch)
    y = tf.constant(np.eye(args.classes, dtype=np.float32)[labels])

    for _ in range(args.warmup):
        model.train_on_batch(x, y)  # returns python floats: the step has finished
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    total = sum(times)
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    print(
        json.dumps(
            {
                "framework": "keras",
                "setting": args.policy,
                "img_per_s": args.batch * args.steps / total,
                "step_ms": [round(t * 1e3, 2) for t in times],
                "params": int(model.count_params()),
                "trainable_params": trainable,
                "tf_version": tf.__version__,
                "keras_version": keras.__version__,
                "jit_compile": bool(getattr(model, "jit_compile", False)),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
                "intra_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
