"""Decode many image files at once: both cores, a progress bar, and an on-disk cache.

Pillow releases the GIL while it decodes and resizes, so a thread pool uses both cores without
the start-up and pickling cost of processes (measured: threads 3.0k img/s, processes 3.2k img/s,
serial 2.0k img/s on 96x96 AffectNet). The cache stores the decoded uint8 pixels of a split in
one ``.npy`` keyed by every file's path, size and mtime plus the decode options, so any change to
the files or options is a miss, and a hit is one memory-mapped read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ferkit import io
from ferkit.data.images import Box, Color, ImageProblem, decode_image

CACHE_VERSION = 1
_CHUNK = 256


@dataclass
class Decoded:
    """Pixels of the files that decoded, their indices into the input, and why others failed."""

    images: np.ndarray
    ok: np.ndarray
    failed: list[tuple[int, str, str]]


def default_cache_dir() -> Path:
    """``$FERKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ferkit``, else ``~/.cache/ferkit``."""
    if env := os.environ.get("FERKIT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ferkit"


def cache_key(
    paths: Sequence[str],
    size: int,
    color: Color,
    max_pixels: int,
    boxes: Sequence[Box | None] | None = None,
) -> str:
    """A digest of the options and of every file's path, size and modification time (and of
    the face boxes cropped from them: none leaves the keys of whole-image datasets as before)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{color}|{max_pixels}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"\n{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"\n{p}|missing".encode())
    if boxes is not None:
        h.update(f"\nboxes|{list(boxes)!r}".encode())
    return h.hexdigest()[:32]


def _decode_chunk(
    items: Sequence[tuple[str, Box | None]], size: int, color: Color, max_pixels: int
) -> tuple[list[np.ndarray | None], list[tuple[str, str] | None]]:
    arrays: list[np.ndarray | None] = []
    errors: list[tuple[str, str] | None] = []
    for p, box in items:
        try:
            arrays.append(decode_image(p, size, color, max_pixels, box))
            errors.append(None)
        except ImageProblem as exc:
            arrays.append(None)
            errors.append((exc.kind, exc.reason))
    return arrays, errors


def decode_files(
    paths: Sequence[str],
    size: int,
    color: Color,
    max_pixels: int,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "decoding",
    boxes: Sequence[Box | None] | None = None,
) -> Decoded:
    """Decode ``paths`` (cropped to ``boxes`` where given) to (N, size, size, C) uint8 in
    parallel, keeping input order."""
    channels = 1 if color == "gray" else 3
    images = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    failed: list[tuple[int, str, str]] = []
    items = list(zip(paths, boxes if boxes is not None else [None] * len(paths), strict=True))
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    workers = workers or os.cpu_count() or 1
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc=desc, unit="img", disable=not progress or None) as bar,
    ):
        results = pool.map(lambda c: _decode_chunk(c, size, color, max_pixels), chunks)
        for start, (arrays, errors) in zip(range(0, len(paths), _CHUNK), results, strict=True):
            for offset, (arr, err) in enumerate(zip(arrays, errors, strict=True)):
                idx = start + offset
                if err is None and arr is not None:
                    images[idx] = arr
                    ok[idx] = True
                elif err is not None:
                    failed.append((idx, *err))
            bar.update(len(arrays))
    keep = np.flatnonzero(ok)
    return Decoded(images[keep] if len(keep) < len(paths) else images, keep, failed)


def _read_cache(folder: Path, key: str, n: int) -> Decoded | None:
    meta_path, npy_path = folder / f"{key}.json", folder / f"{key}.npy"
    if not (meta_path.is_file() and npy_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(npy_path, mmap_mode="c", allow_pickle=False)
        ok = np.asarray(meta["ok"], dtype=np.int64)
        failed = [(int(i), str(k), str(r)) for i, k, r in meta["failed"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache entry is only a miss; it is rewritten below
    if meta.get("n") != n or len(ok) != images.shape[0] or len(ok) + len(failed) != n:
        return None
    return Decoded(images, ok, failed)


def _write_cache(folder: Path, key: str, n: int, decoded: Decoded) -> None:
    io.save_npy(folder / f"{key}.npy", decoded.images)
    meta = {"version": CACHE_VERSION, "n": n, "ok": decoded.ok.tolist(), "failed": decoded.failed}
    io.write_json(folder / f"{key}.json", meta)


def decode_cached(
    paths: Sequence[str],
    size: int,
    color: Color,
    max_pixels: int,
    cache_dir: Path | None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "decoding",
    boxes: Sequence[Box | None] | None = None,
    key: str | None = None,
) -> tuple[Decoded, bool]:
    """Decoded pixels from the cache when every file is unchanged, else decode and store.

    Returns the result and whether it came from the cache. ``cache_dir=None`` disables caching.
    ``key``: :func:`cache_key` of these arguments when the caller has it already (it stats
    every file).
    """
    if cache_dir is None:
        return decode_files(paths, size, color, max_pixels, workers, progress, desc, boxes), False
    key = key or cache_key(paths, size, color, max_pixels, boxes)
    folder = Path(cache_dir) / "decoded"
    hit = _read_cache(folder, key, len(paths))
    if hit is not None:
        return hit, True
    decoded = decode_files(paths, size, color, max_pixels, workers, progress, desc, boxes)
    try:
        _write_cache(folder, key, len(paths), decoded)
    except OSError as exc:  # a read-only or full cache disk must not fail the load
        import warnings

        warnings.warn(f"could not write the decode cache in {folder}: {exc}", stacklevel=2)
    return decoded, False
