"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

Everything ferkit saves (caches, reports, models) goes through a temp file in the same folder
and ``os.replace``, which is atomic on POSIX and Windows. A write that fails (read-only folder,
full disk) raises :class:`WriteError` naming the target, and commands check their ``--out``
folder up front with :func:`ensure_writable_dir`.
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

from ferkit.errors import FerkitError


class WriteError(FerkitError, OSError):
    """A file or folder ferkit must write cannot be written (read-only, full disk, a file in
    the way): a FerkitError, so the CLI prints one line naming the path, and still an OSError,
    so code that tolerates a failed write (the decode cache) goes on tolerating it."""

    def __init__(self, *args: object) -> None:
        # FerkitError's ValueError comes first in the MRO; OSError's own __init__ must still
        # parse (errno, strerror), or errno and strerror would stay None
        OSError.__init__(self, *args)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


@contextlib.contextmanager
def _writing(target: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an OSError raised while writing ``target`` into a WriteError naming it."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot write to {target}: {_reason(exc)}") from exc


def ensure_writable_dir(folder: str | os.PathLike[str], what: str = "--out") -> Path:
    """Create ``folder`` (and its parents) and prove it takes a file, before any long work:
    a read-only or full disk is one line naming the folder and the reason, checked up front
    instead of a traceback after an hour of training. A probe file is written, synced and
    removed; the folder is left in place."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(f"cannot write to {folder}: it is a file ({what} must be a folder)")
    with _writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ferkit-probe-", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)  # a full disk refuses data, not always the file
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    return folder


def ensure_writable_file(target: str | os.PathLike[str], what: str = "--out") -> Path:
    """:func:`ensure_writable_dir` for the folder a file will be written in."""
    target = Path(target)
    if target.is_dir():
        raise WriteError(f"cannot write to {target}: it is a folder ({what} names a file)")
    ensure_writable_dir(target.parent, what)
    return target


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
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
    try:
        with _writing(target):  # ENOSPC while the caller writes is this target's failure too
            yield Path(tmp)
            # mkstemp makes the file 0600; give it the mode a plain open() would (0666 - umask)
            # so reports and models can be shared like any other file the user writes.
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_with(
    target: str | os.PathLike[str], mode: str, write: Callable[[IO[Any]], object]
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
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_record) + "\n")


def _record(obj: Any) -> Any:
    """A typed record (:mod:`ferkit.records`) as its JSON object; anything else is refused
    as json.dumps refuses it."""
    if callable(to_dict := getattr(obj, "to_dict", None)):
        return to_dict()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def save_npy(target: str | os.PathLike[str], array: np.ndarray) -> None:
    _write_with(target, "wb", lambda fh: np.save(fh, array, allow_pickle=False))


def save_figure(fig: Any, target: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically; the format follows the target's extension."""
    target = Path(target)
    fmt = target.suffix.lstrip(".") or "png"
    _write_with(target, "wb", lambda fh: fig.savefig(fh, format=fmt, **kwargs))
    return target
