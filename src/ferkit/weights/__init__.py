"""Models shipped inside the package, loadable by name: ``load_run("fer2013")``.

Each is an ordinary run folder (``model.safetensors`` + ``model.json``) whose card also says
the exact command that trained it, so the weights can be re-created rather than trusted.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.errors import FerkitError

WEIGHTS_DIR = Path(__file__).resolve().parent


def shipped_models() -> list[str]:
    """Names of the shipped models (folders here holding a model card)."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/model.json"))


def shipped_path(name: str) -> Path:
    """The run folder of shipped model ``name``; an unknown name lists the shipped ones."""
    path = WEIGHTS_DIR / name
    if name and "/" not in name and (path / "model.json").is_file():
        return path
    known = ", ".join(shipped_models()) or "none"
    raise FerkitError(f"{name}: no such run folder, and not a shipped model (shipped: {known})")
