"""The training checkpoint: written with its SHA-256, read back only if it matches and is whole.

``checkpoint.pt`` (``torch.save``, loaded with ``weights_only=True``) is what ``--resume``
continues from, so a damaged or altered one must be a clear error, not a ``KeyError`` deep in
the loop or a silently resumed wrong state. Its SHA-256 lives in a small sidecar,
``checkpoint.sha256.json``. The crash window between the two writes is closed by order: the
sidecar first gets the new hash *next to* the previous one, then the checkpoint is replaced,
then the sidecar is trimmed to the new hash. A kill -9 anywhere leaves a checkpoint whose hash
the sidecar lists. Both writes are atomic (``ferkit.io``); the temp files an interrupted write
leaves behind are removed when the run is resumed (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import torch

from ferkit import io
from ferkit.errors import FerkitError, ModelFileError
from ferkit.models.checks import CARD, sha256, trust_hint
from ferkit.training.config import CHECKPOINT, SIDECAR

_KEEP = 4  # hashes kept while a write is in flight (repeated crashes in the window included)
# ferkit.io.atomic_path's temp names: "." + target name + "." + 8 mkstemp characters + ".tmp"
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _recorded(out: Path) -> list[str]:
    """The hashes the sidecar lists (empty when there is none or it is unreadable)."""
    try:
        entry = json.loads((out / SIDECAR).read_text())
    except (OSError, ValueError):
        return []
    hashes = entry.get("sha256") if isinstance(entry, dict) else None
    return [h for h in hashes if isinstance(h, str)] if isinstance(hashes, list) else []


def _write_sidecar(out: Path, hashes: list[str]) -> None:
    io.write_json(out / SIDECAR, {"file": CHECKPOINT, "sha256": hashes[:_KEEP]})


def save_checkpoint(out: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` and its hash so that no crash leaves an unverifiable checkpoint."""
    buffer = BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    digest = sha256(data)
    _write_sidecar(out, [digest, *(h for h in _recorded(out) if h != digest)])
    io.write_bytes(out / CHECKPOINT, data)
    _write_sidecar(out, [digest])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_of(saved: dict[str, Any], key: str, kind: type) -> bool:
    try:
        return isinstance(json.loads(saved[key]), kind)
    except (TypeError, ValueError):
        return False


def _tensors(saved: dict[str, Any], key: str) -> bool:
    value = saved[key]
    return isinstance(value, dict) and all(
        isinstance(n, str) and isinstance(t, torch.Tensor) for n, t in value.items()
    )


_CHECKS: dict[str, tuple[str, Callable[[dict[str, Any], str], bool]]] = {
    "epoch": ("an integer >= 0", lambda s, k: type(s[k]) is int and s[k] >= 0),
    "model": ("a dict of tensors", _tensors),
    "optimizer": ("a dict", lambda s, k: isinstance(s[k], dict)),
    "scheduler": ("a dict", lambda s, k: isinstance(s[k], dict)),
    "history": ("a JSON list", lambda s, k: _json_of(s, k, list)),
    "config": ("a JSON object", lambda s, k: _json_of(s, k, dict)),
    "best_accuracy": ("a number", lambda s, k: _number(s[k])),
    "best_epoch": ("an integer >= 0", lambda s, k: type(s[k]) is int and s[k] >= 0),
    "bad_epochs": ("an integer >= 0", lambda s, k: type(s[k]) is int and s[k] >= 0),
}
_OPTIONAL = {"stopped_early": bool, "finished": bool, "parameters": int, "data": str}


def validate_checkpoint(saved: Any, path: Path) -> dict[str, Any]:
    """``saved`` if it has every key the loop reads, each of the right type; else a
    FerkitError naming ``path`` and what is wrong."""
    if not isinstance(saved, dict):
        raise FerkitError(f"{path}: not a ferkit checkpoint (holds a {type(saved).__name__})")
    missing = [key for key in _CHECKS if key not in saved]
    if missing:
        raise FerkitError(f"{path}: not a ferkit checkpoint (lacks {', '.join(missing)})")
    for key, (what, ok) in _CHECKS.items():
        if not ok(saved, key):
            raise FerkitError(f"{path}: checkpoint entry {key!r} must be {what}")
    for key, kind in _OPTIONAL.items():
        if key in saved and type(saved[key]) is not kind:
            raise FerkitError(f"{path}: checkpoint entry {key!r} must be a {kind.__name__}")
    if "ema" in saved and not _tensors(saved, "ema"):  # --ema: the average's state
        raise FerkitError(f"{path}: checkpoint entry 'ema' must be a dict of tensors")
    return saved


def read_checkpoint_bytes(path: Path) -> bytes:
    """The checkpoint's bytes, or a FerkitError for a folder, an empty or unreadable file."""
    if path.is_dir():
        raise FerkitError(f"{path}: is a folder, not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FerkitError(f"{path}: cannot read the checkpoint: {exc}") from exc
    if not data:
        raise FerkitError(f"{path}: the checkpoint is empty (0 bytes; an interrupted write?)")
    return data


def parse_checkpoint(data: bytes, path: Path) -> dict[str, Any]:
    """Checkpoint bytes -> the validated dict (``weights_only``: no code runs)."""
    try:
        saved = torch.load(BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types on a damaged or foreign file
        raise FerkitError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    return validate_checkpoint(saved, path)


def load_checkpoint(out: Path) -> dict[str, Any]:
    """The run's checkpoint after checking its hash against the sidecar and its structure."""
    path = out / CHECKPOINT
    data = read_checkpoint_bytes(path)
    recorded = _recorded(out)
    if not recorded:
        raise FerkitError(
            f"{path}: no checksum recorded for it ({SIDECAR} is missing or unreadable: "
            f"written by an older ferkit?); {trust_hint(out)}, or delete it to start over"
        )
    if sha256(data) not in recorded:
        raise FerkitError(
            f"{path}: does not match the checksum in {SIDECAR} (altered or damaged file); "
            f"delete it to start the run over, or {trust_hint(out)}"
        )
    return parse_checkpoint(data, path)


def trust_checkpoint(out: Path, force: bool = False) -> str:
    """Validate the run's checkpoint and record its hash; a line saying what was done.

    A checkpoint whose recorded hash differs is only trusted with ``force``.
    """
    path = out / CHECKPOINT
    data = read_checkpoint_bytes(path)
    parse_checkpoint(data, path)
    digest, recorded = sha256(data), _recorded(out)
    if digest in recorded:
        return f"{path}: checksum already recorded"
    if recorded and not force:
        raise FerkitError(
            f"{path}: does not match the checksum in {SIDECAR} (changed since it was "
            "written); pass --force to trust the file as it is now"
        )
    _write_sidecar(out, [digest])
    return f"{path}: checksum recorded in {SIDECAR}"


def trust_run(run_dir: str | Path, force: bool = False) -> list[str]:
    """``ferkit trust``: record the checksums of the run's weights and of its training
    checkpoint (whichever it has); the lines say what was done."""
    from ferkit.models.trust import trust_card  # loads the model store: only for this command

    run_dir = Path(run_dir)
    lines = []
    if (run_dir / CARD).is_file():
        lines.append(trust_card(run_dir, force))
    if (run_dir / CHECKPOINT).exists():
        lines.append(trust_checkpoint(run_dir, force))
    if not lines:
        raise ModelFileError(f"{run_dir}: not a ferkit run (no {CARD} or {CHECKPOINT})")
    return lines


def remove_stale_temps(out: Path, log: Callable[[str], None]) -> list[Path]:
    """Delete the temp files (``.<name>.XXXXXXXX.tmp``) interrupted atomic writes left in
    ``out`` (a kill -9 mid-checkpoint leaves one as big as the checkpoint); each is logged."""
    removed = []
    for path in sorted(out.glob(".*.tmp")):
        if path.is_file() and _TEMP.match(path.name):
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            log(f"removed {path} ({size / 2**20:.1f} MiB), left by an interrupted write")
            removed.append(path)
    return removed
