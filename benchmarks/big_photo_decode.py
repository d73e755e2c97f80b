"""Milliseconds per ``predict_image`` on a large JPEG: decoded in full vs at the reduced scale
detection needs (JPEG draft mode), on the same file, alternating.

    PYTHONPATH=src .venv/bin/python benchmarks/big_photo_decode.py [--megapixels 24 12] \\
        [--detect-mp 4 1] [--repeats 3] [--json runs/big-photo.json]

The photo is skimage's astronaut upscaled (bicubic) to about ``--megapixels`` and saved as a
JPEG (quality 92). "full" is the path before issue 19 (the file decoded at full resolution, then
shrunk to ``--detect-mp`` for the detector); "draft" decodes it at 1/2, 1/4 or 1/8 scale, the
largest reduction that keeps at least ``--detect-mp`` megapixels, and decodes in full only
when a face is too small there. Also timed alone: the decode itself. Each figure is the median
of ``--repeats`` alternating runs (after one warm-up), with the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _bench_env import machine_note, report
from PIL import Image

from ferkit.inference import Predictor
from ferkit.inference.inputs import read_image_scaled


class FullDecode(Predictor):
    """The predictor as it was: every file decoded at full resolution."""

    def _read(self, path: Path) -> Any:
        return read_image_scaled(path)


def make_photo(folder: Path, megapixels: float) -> Path:
    from skimage import data

    side = round((megapixels * 1e6) ** 0.5)
    path = folder / f"astronaut-{megapixels:g}mp.jpg"
    picture = Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BICUBIC)
    picture.save(path, quality=92)
    return path


def timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return 1000 * (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[24.0, 12.0])
    parser.add_argument("--detect-mp", type=float, nargs="+", default=[4.0, 1.0])
    parser.add_argument("--model", default=None, help="default: ferkit's default model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    before = machine_note()
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.megapixels:
            path = make_photo(Path(tmp), mp)
            for detect_mp in args.detect_mp:
                limit = int(detect_mp * 1e6)
                ways = {
                    "full": FullDecode(args.model, max_detect_pixels=limit),
                    "draft": Predictor(args.model, max_detect_pixels=limit),
                }
                decode = {"full": None, "draft": limit}
                labels = {name: p.predict_image(path) for name, p in ways.items()}  # warm-up
                times: dict[str, list[float]] = {f"{n}_{k}": [] for n in ways for k in "dp"}
                load0 = os.getloadavg()[0]
                for r in range(args.repeats):
                    for name in ways if r % 2 == 0 else list(ways)[::-1]:
                        wanted = decode[name]
                        times[f"{name}_d"].append(timed(read_image_scaled, path, wanted))
                        times[f"{name}_p"].append(timed(ways[name].predict_image, path))
                read = read_image_scaled(path, min_pixels=limit)
                row = {
                    "photo_mp": mp,
                    "detect_mp": detect_mp,
                    "decoded_at": f"1/{read.scale:g}",
                    "decode_full_ms": round(statistics.median(times["full_d"])),
                    "decode_draft_ms": round(statistics.median(times["draft_d"])),
                    "predict_full_ms": round(statistics.median(times["full_p"])),
                    "predict_draft_ms": round(statistics.median(times["draft_p"])),
                    "faces": [len(labels[n].faces) for n in ways],
                    "labels": [[f.label for f in labels[n].faces] for n in ways],
                    "boxes": [[f.box.left for f in labels[n].faces] for n in ways],
                    "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
                }
                rows.append(row)
                print(row, flush=True)
    lines = [
        "| photo | detect on | decoded at | decode full / draft (ms) | "
        "predict full / draft (ms) | speed-up | same faces and labels | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        same = r["labels"][0] == r["labels"][1] and r["faces"][0] == r["faces"][1]
        lines.append(
            f"| {r['photo_mp']:g} MP | {r['detect_mp']:g} MP | {r['decoded_at']} | "
            f"{r['decode_full_ms']} / {r['decode_draft_ms']} | "
            f"{r['predict_full_ms']} / {r['predict_draft_ms']} | "
            f"{r['predict_full_ms'] / max(r['predict_draft_ms'], 1):.2f}x | "
            f"{'yes' if same else 'NO'} | {r['load_1min'][0]}-{r['load_1min'][1]} |"
        )
    result = {"rows": rows, "machine_before": before, "machine_after": machine_note()}
    report(result, "\n".join(lines), args.json)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
