"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

Everything ferkit saves (caches, reports, models) goes through a temp file in the same folder
and ``os.replace``, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so reading it later from a worker thread
# could briefly change the mode of files other threads create.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside ``target``; it replaces ``target`` only if the block succeeds.

    ``suffix`` ends the temp file's name: writers that pick a format from the extension (OpenCV's
    ``VideoWriter``) need the target's own, e.g. ``suffix=".mp4"``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file 0600; give it the mode a plain open() would (0666 - umask) so
        # reports and models can be shared like any other file the user writes.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_with(
    target: str | os.PathLike[str], mode: str, write: Callable[[IO[Any]], None]
) -> None:
    with atomic_path(target) as tmp, open(tmp, mode) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(target: str | os.PathLike[str], text: str) -> None:
    _write_with(target, "w", lambda fh: fh.write(text))


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    _write_with(target, "wb", lambda fh: fh.write(data))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(target: str | os.PathLike[str], array: np.ndarray) -> None:
    _write_with(target, "wb", lambda fh: np.save(fh, array, allow_pickle=False))


def save_figure(fig: Any, target: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically; the format follows the target's extension."""
    target = Path(target)
    fmt = target.suffix.lstrip(".") or "png"
    _write_with(target, "wb", lambda fh: fig.savefig(fh, format=fmt, **kwargs))
    return target
