"""Checks a run folder's card must pass before any file it names is opened.

A run folder may come from anywhere (a download, a shared drive), so its ``model.json`` is
untrusted input: every file it names must stay inside the folder, and the weights must match
the SHA-256 the card records. A card without that checksum (written by an older ferkit, or
edited) is refused rather than trusted; ``ferkit trust RUN_DIR`` verifies the weights load
safely and writes the checksum, so re-saving a run one trusts is one command.
No torch import here: scikit-learn runs go through these checks too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ferkit.errors import ModelFileError

CARD = "model.json"
# The side images are resized to, for scikit-learn runs and networks alike.
MAX_IMAGE_SIZE = 1024


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def trust_hint(run_dir: Path) -> str:
    """How to re-save a run one trusts: the command that writes its checksums."""
    return f"if you trust this run, re-save its checksums with `ferkit trust {run_dir}`"


def card_file(run_dir: Path, name: Any, what: str = "file") -> Path:
    """The path of ``name`` (a file the card names) inside ``run_dir``, or a FerkitError.

    Refuses what is not a plain relative name: absolute paths, drive letters, ``..``, and
    symlinks (of the file or a folder on the way) that resolve outside the run folder, so a
    card can never make ferkit open ``/etc/passwd`` or another run's files.
    """
    card_path = run_dir / CARD
    if not isinstance(name, str) or not name.strip():
        raise ModelFileError(f"{card_path}: the {what} entry must be a file name, got {name!r}")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in windows.parts:
        raise ModelFileError(
            f"{card_path}: the {what} {name!r} must be a file name inside the run folder"
        )
    path = run_dir / name
    root = run_dir.resolve()
    if not path.resolve().is_relative_to(root):
        raise ModelFileError(
            f"{card_path}: the {what} {name!r} resolves to {path.resolve()}, outside the run "
            f"folder {root} (a symlink leaving the folder)"
        )
    return path


def expected_sha256(run_dir: Path, card: Mapping[str, Any]) -> str:
    """The card's ``weights_sha256``; a card without a valid one is refused for every kind."""
    value = card.get("weights_sha256")
    if value is None:
        raise ModelFileError(
            f"{run_dir / CARD}: has no weights_sha256, so altered weights could not be "
            f"detected (a card from an older ferkit?); {trust_hint(run_dir)}"
        )
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ModelFileError(f"{run_dir / CARD}: weights_sha256 is not a SHA-256 hex digest")
    return value


def read_model_file(path: Path) -> bytes:
    """The bytes of model file ``path``, or a ModelFileError naming it when it is missing or
    cannot be read (permissions, an I/O error), instead of an OSError traceback."""
    if not path.is_file():
        raise ModelFileError(f"{path}: model file is missing")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file: {exc.strerror or exc}") from None


def checked_bytes(path: Path, expected: str) -> bytes:
    """The bytes of weights file ``path`` after checking them against the card's checksum.

    Returns the very bytes that were hashed, so callers parse what was verified (a file
    swapped after the check is never loaded).
    """
    data = read_model_file(path)
    if sha256(data) != expected:
        raise ModelFileError(
            f"{path}: weights do not match the checksum in model.json (altered or damaged file)"
        )
    return data
