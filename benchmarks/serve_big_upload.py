"""Milliseconds for ``ferkit serve`` to answer one large JPEG upload: decoded in full (before
issue 19's serve fast path) vs at the reduced scale detection needs (JPEG draft mode).

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/serve_big_upload.py \\
        [--megapixels 24 12] [--repeats 5] [--max-mp 16] [--model NAME] [--json FILE]

The app runs in this process (FastAPI's TestClient; the server's default limits: a 16 MP
decode limit, ``--max-mp``, i.e. ``create_app(max_pixels=...)``, and faces searched on 2 MP).
The photo is a 4:3 gradient with skimage's astronaut pasted in at 4x (a 2048 px square; her
face's box ~370 px), a JPEG at quality 90, POSTed as a multipart upload. "full" is the server
as it was: the upload decoded at full resolution (within the decode limit) and shrunk for the
detector; "draft" is the server now: a JPEG decoded at 1/2, 1/4 or 1/8 scale (the largest
reduction that keeps 2 MP), decoded again in full only when a face is too small there. A JPEG
over the decode limit is decoded at a reduced scale by both (the limit forces it), so there
the two run the same code. Each figure is the median of ``--repeats`` alternating requests
(after one warm-up each), client wall time and the server's own ``ms``, with the 1-minute
load average.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _bench_env import machine_note, report
from PIL import Image

from ferkit.inference import Predictor
from ferkit.inference.inputs import ReadImage, read_image_scaled
from ferkit.serve import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


class FullDecode(Predictor):
    """The server's predictor as it was: every upload decoded at full resolution (up to the
    server's pixel limit) before faces are searched on a shrunk copy."""

    def _read(self, path: Path) -> ReadImage:
        return read_image_scaled(path, max_pixels=self.max_pixels)


def make_photo(megapixels: float) -> bytes:
    from skimage import data

    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    rows = np.linspace(60, 190, height, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 50, width, dtype=np.float32)[None, :, None]
    canvas = np.broadcast_to(rows + cols, (height, width, 3)).astype(np.uint8)
    face = Image.fromarray(data.astronaut()).resize((2048, 2048), Image.Resampling.BILINEAR)
    x, y = (width - 2048) // 2, (height - 2048) // 2
    canvas[y : y + 2048, x : x + 2048] = np.asarray(face)
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def post(client: TestClient, body: bytes) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    response = client.post("/api/predict", files={"image": ("photo.jpg", body, "image/jpeg")})
    wall = 1000 * (time.perf_counter() - start)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return wall, document


def decoded_at(predictor: Predictor, body: bytes) -> str:
    """The scale ``predictor``'s server decodes ``body`` at for detection, e.g. ``1/2``."""
    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(body)
        file.flush()
        read = predictor._read(Path(file.name))
    return f"1/{round(read.scale)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[24.0, 12.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-mp", type=float, default=16.0, help="the server's decode limit")
    parser.add_argument("--model", default=None, help="default: ferkit's default model")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    before = machine_note()
    ways = {"full": FullDecode(args.model), "draft": Predictor(args.model)}
    limit = int(args.max_mp * 1e6)
    clients = {n: TestClient(create_app(p, max_pixels=limit)) for n, p in ways.items()}
    rows = []
    for mp in args.megapixels:
        body = make_photo(mp)
        answers = {name: post(client, body)[1] for name, client in clients.items()}  # warm-up
        wall: dict[str, list[float]] = {name: [] for name in ways}
        server: dict[str, list[float]] = {name: [] for name in ways}
        load0 = os.getloadavg()[0]
        for r in range(args.repeats):
            for name in ways if r % 2 == 0 else list(ways)[::-1]:
                ms, document = post(clients[name], body)
                wall[name].append(ms)
                server[name].append(document["ms"])
        faces = {n: [(f["box"], f["label"]) for f in a["faces"]] for n, a in answers.items()}
        row = {
            "photo": f"{answers['full']['width']}x{answers['full']['height']}",
            "photo_mp": mp,
            "max_mp": args.max_mp,
            "bytes": len(body),
            "wall_full_ms": round(statistics.median(wall["full"])),
            "wall_draft_ms": round(statistics.median(wall["draft"])),
            "server_full_ms": round(statistics.median(server["full"])),
            "server_draft_ms": round(statistics.median(server["draft"])),
            "decoded_at": {n: decoded_at(clients[n].app.state.serve.predictor, body) for n in ways},
            "wall_ms": {n: [round(v) for v in wall[n]] for n in ways},
            "faces": faces,
            "same_answer": [lb for _, lb in faces["full"]] == [lb for _, lb in faces["draft"]],
            "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
        }
        rows.append(row)
        print(row, flush=True)
    for client in clients.values():
        client.close()
    lines = [
        "| upload | decoded at, full / draft | full / draft, client (ms) | "
        "full / draft, server `ms` | speed-up | same faces and labels | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['photo']} ({r['photo_mp']:g} MP), limit {r['max_mp']:g} MP | "
            f"{r['decoded_at']['full']} / "
            f"{r['decoded_at']['draft']} | {r['wall_full_ms']:,} / "
            f"{r['wall_draft_ms']:,} | {r['server_full_ms']:,} / {r['server_draft_ms']:,} | "
            f"{r['wall_full_ms'] / max(r['wall_draft_ms'], 1):.2f}x | "
            f"{'yes' if r['same_answer'] else 'NO'} | {r['load_1min'][0]}-{r['load_1min'][1]} |"
        )
    result = {"rows": rows, "machine_before": before, "machine_after": machine_note()}
    report(result, "\n".join(lines), args.json)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
