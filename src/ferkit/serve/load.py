"""A load test against a running ``ferkit serve``: N clients, M requests each, latencies.

Used by tests/test_serve.py (a few requests per client) and benchmarks/serve_load.py (the full
16 x 100). Each client is a thread with its own keep-alive connection, as a browser tab or a
service would be; a deadline stops the run even when the server stalls, so the caller always
gets a report rather than a hang.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class LoadReport:
    """What a load run measured; ``errors`` holds the first few failures verbatim."""

    clients: int
    requests_per_client: int
    completed: int
    failed: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    errors: list[str] = field(default_factory=list)

    @property
    def planned(self) -> int:
        return self.clients * self.requests_per_client

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(self.latencies_ms, q))

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        del out["latencies_ms"]
        ok = self.completed - self.failed
        out.update(
            wall_s=round(self.wall_s, 2),
            planned=self.planned,
            p50_ms=_round(self.percentile(50)),
            p90_ms=_round(self.percentile(90)),
            p99_ms=_round(self.percentile(99)),
            max_ms=_round(max(self.latencies_ms, default=None)),
            throughput_rps=round(ok / self.wall_s, 2) if self.wall_s > 0 else None,
        )
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _client(
    url: str, body: bytes, content_type: str, count: int, deadline: float, timeout_s: float
) -> tuple[list[float], list[str], int]:
    """One client's latencies (ms, successful requests), errors and requests made."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    made = 0
    with httpx.Client(timeout=timeout_s) as client:
        for _ in range(count):
            if time.monotonic() >= deadline:
                break
            made += 1
            start = time.perf_counter()
            try:
                response = client.post(url, files={"image": ("face.png", body, content_type)})
                elapsed = (time.perf_counter() - start) * 1000
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
                response.json()
            except Exception as exc:  # every failure is counted, none stops the run
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(elapsed)
    return latencies, errors, made


def run_load(
    url: str,
    body: bytes,
    *,
    content_type: str = "image/png",
    clients: int = 16,
    requests: int = 100,
    deadline_s: float = 600.0,
    request_timeout_s: float = 60.0,
) -> LoadReport:
    """POST ``body`` to ``url`` (``.../api/predict``) from ``clients`` concurrent clients,
    ``requests`` times each; clients stop starting requests after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    start = time.perf_counter()
    with ThreadPoolExecutor(clients, thread_name_prefix="load-client") as pool:
        futures = [
            pool.submit(_client, url, body, content_type, requests, deadline, request_timeout_s)
            for _ in range(clients)
        ]
        outcomes = [future.result() for future in futures]
    wall = time.perf_counter() - start
    latencies = [ms for lat, _, _ in outcomes for ms in lat]
    errors = [err for _, errs, _ in outcomes for err in errs]
    completed = sum(made for _, _, made in outcomes)
    return LoadReport(clients, requests, completed, len(errors), wall, latencies, errors[:10])
