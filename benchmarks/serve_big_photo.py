"""``ferkit serve`` and big photos: one 4600x3450 JPEG, then 8 at once beside a small request.

    .venv/bin/python benchmarks/serve_big_photo.py [--model affectnet-hog-svm] [--workers 2]

Starts the app with uvicorn on a free loopback port (in this process, default limits), POSTs
one 16-megapixel JPEG (a gradient with skimage's astronaut, 3x, at (1500, 1000): the photo of
tests/test_serve_security.py) and times it; then sends 8 of them at once and, 0.5 s later, the
astronaut's 256x256 head, and times that small request. Prints one JSON document. Runs on an
older ferkit too (without ``server_config``), to measure before and after a change.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import uvicorn
from PIL import Image
from skimage import data

from ferkit.serve import create_app


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def big_photo() -> bytes:
    rows = np.linspace(60, 190, 3450, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 50, 4600, dtype=np.float32)[None, :, None]
    canvas = np.broadcast_to(rows + cols, (3450, 4600, 3)).astype(np.uint8)
    face = Image.fromarray(data.astronaut()).resize((1536, 1536), Image.Resampling.BILINEAR)
    canvas[1000:2536, 1500:3036] = np.asarray(face)
    return encode(canvas, "JPEG")


def start(app: object) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        from ferkit.serve import server_config

        config = server_config(app, log_level="warning")
    except ImportError:  # before the serve hardening
        config = uvicorn.Config(app, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/api/predict"


def timed_post(url: str, body: bytes, kind: str) -> tuple[int, float, dict]:
    begin = time.perf_counter()
    response = httpx.post(url, files={"image": ("x", body, kind)}, timeout=120)
    seconds = time.perf_counter() - begin
    document = response.json()
    summary = {k: v for k, v in document.items() if k != "faces"}
    summary["boxes"] = [face["box"] for face in document.get("faces", [])]
    return response.status_code, round(seconds, 2), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="affectnet-hog-svm")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    server, url = start(create_app(args.model, workers=args.workers))
    photo = big_photo()
    head = encode(np.ascontiguousarray(data.astronaut()[0:256, 96:352]), "PNG")
    timed_post(url, head, "image/png")  # warm-up: detector models loaded
    one = timed_post(url, photo, "image/jpeg")
    with ThreadPoolExecutor(9) as pool:
        bigs = [pool.submit(timed_post, url, photo, "image/jpeg") for _ in range(8)]
        time.sleep(0.5)
        small = pool.submit(timed_post, url, head, "image/png").result()
        eight = [future.result() for future in bigs]
    server.should_exit = True
    report = {
        "photo_bytes": len(photo),
        "one_big": {"status": one[0], "seconds": one[1], **one[2]},
        "eight_big": {
            "statuses": sorted(status for status, _, _ in eight),
            "slowest_s": max(seconds for _, seconds, _ in eight),
        },
        "small_beside_eight_big": {"status": small[0], "seconds": small[1]},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
