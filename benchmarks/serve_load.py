"""Load test of ``ferkit serve``: 16 concurrent clients x 100 requests, p50/p99 and throughput.

    .venv/bin/python benchmarks/serve_load.py [--clients 16] [--requests 100] [--size 160]
        [--model affectnet-hog-svm] [--workers 2] [--json OUT]

Starts the real server (uvicorn, one process, ``--workers`` inference threads) in a subprocess
on a free loopback port, waits for /api/health, then every client POSTs the astronaut's face
(skimage's photo, cropped to her head and resized to ``--size`` pixels square, a PNG) as a
multipart upload on its own keep-alive connection. Latency is per request as the client sees
it (upload, queueing, decode, detection, classification, JSON). Prints one JSON document;
exits 1 if any request failed. The server process gets the same CPU affinity as this one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from ferkit.serve.load import run_load

HEAD = (slice(0, 256), slice(96, 352))  # the astronaut's head (tests/test_predict.py)


def face_png(size: int) -> bytes:
    head = Image.fromarray(np.ascontiguousarray(data.astronaut()[HEAD]))
    buffer = io.BytesIO()
    head.resize((size, size), Image.Resampling.BILINEAR).save(buffer, "PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    code = (
        "from ferkit.serve import serve; "
        f"serve({model!r}, port={port}, workers={workers}, log_level='warning')"
    )
    env = {k: v for k, v in os.environ.items() if k != "FERKIT_SERVE_TOKEN"}  # no token: loopback
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float = 120) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            return httpx.get(f"{url}/api/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer /api/health in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--size", type=int, default=160, help="side of the face image, px")
    parser.add_argument("--model", default="affectnet-hog-svm")
    parser.add_argument("--workers", type=int, default=2, help="server inference threads")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds, whole run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    body = face_png(args.size)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args.model, port, args.workers)
    try:
        health = wait_healthy(url, server)
        run_load(f"{url}/api/predict", body, clients=2, requests=3)  # warm-up, not counted
        report = run_load(
            f"{url}/api/predict",
            body,
            clients=args.clients,
            requests=args.requests,
            deadline_s=args.deadline,
        )
    finally:
        server.terminate()
        server.wait(30)
    document = {
        "benchmark": "serve_load",
        "date": date.today().isoformat(),
        "model": health["model"],
        "server_workers": args.workers,
        "image": f"astronaut head {args.size}x{args.size} PNG, {len(body):,} bytes, multipart",
        **report.summary(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    text = json.dumps(document, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if report.failed == 0 and report.completed == report.planned else 1


if __name__ == "__main__":
    sys.exit(main())
