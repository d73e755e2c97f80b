"""Models shipped inside the package, loadable by name: ``load_run("affectnet-hog-svm")``.

Each is an ordinary run folder (``model.json`` + ``model.safetensors`` for networks or
``model.skops`` for scikit-learn pipelines) whose card also says the exact command that trained
it and what it scored on the validation split, so the weights can be re-created and checked
rather than trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ferkit import io
from ferkit.errors import FerkitError, did_you_mean

WEIGHTS_DIR = Path(__file__).resolve().parent
# Per-file size cap for a shipped model: keeps the wheel and the repository small.
MAX_SHIPPED_BYTES = 25 * 2**20


def shipped_models() -> list[str]:
    """Names of the shipped models (folders here holding a model card)."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/model.json"))


def shipped_cards() -> list[dict[str, Any]]:
    """Each shipped model's card with its ``name``, for listings (``ferkit models``)."""
    cards = []
    for name in shipped_models():
        card = json.loads((WEIGHTS_DIR / name / "model.json").read_text())
        cards.append({**card, "name": name})
    return cards


def shipped_path(name: str) -> Path:
    """The run folder of shipped model ``name``; an unknown name lists the shipped ones."""
    path = WEIGHTS_DIR / name
    if name and "/" not in name and (path / "model.json").is_file():
        return path
    known = ", ".join(shipped_models()) or "none"
    hint = did_you_mean(name, shipped_models())
    raise FerkitError(
        f"{name}: no such run folder, and not a shipped model{hint} (shipped: {known})"
    )


def ship_run(
    run_dir: str | Path,
    name: str,
    command: str,
    metrics: dict[str, Any] | None = None,
    dest: Path = WEIGHTS_DIR,
) -> Path:
    """Copy run ``run_dir`` to ``dest/name`` as a shipped model, its card extended with the
    ``command`` that trained it and the validation ``metrics`` it reached.

    The run is loaded first (so a damaged or untrusted file is never shipped) and each file
    must stay under ``MAX_SHIPPED_BYTES``.
    """
    from ferkit.models.store import CARD, load_run  # the store imports this module

    run = load_run(run_dir)
    weights = run.path / str(run.card.get("weights", ""))
    if not weights.is_file():
        raise FerkitError(f"{run.path}: the card names no weights file")
    if weights.stat().st_size > MAX_SHIPPED_BYTES:
        raise FerkitError(
            f"{weights}: {weights.stat().st_size / 2**20:.1f} MiB is over the "
            f"{MAX_SHIPPED_BYTES / 2**20:.0f} MiB limit for a shipped model"
        )
    target = dest / name
    target.mkdir(parents=True, exist_ok=True)
    io.write_bytes(target / weights.name, weights.read_bytes())
    card = {**run.card, "name": name, "command": command}
    card.pop("onnx", None)  # only the weights file is shipped, not an ONNX export of it
    if metrics:
        card["validation"] = metrics
    io.write_json(target / CARD, card)
    for extra in ("train.json", "history.json"):
        if (run.path / extra).is_file():
            io.write_bytes(target / extra, (run.path / extra).read_bytes())
    return target
