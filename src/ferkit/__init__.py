"""ferkit: train, compare, explain and deploy facial-expression recognisers.

The everyday entry points are importable from here: :func:`create_model`, :func:`load_run`,
:func:`load_dataset`, :class:`Predictor` and the one-call :func:`predict`. They are imported on
first use (PEP 562), because ``import ferkit`` runs before every CLI command and must not pull
in torch, scikit-learn or onnxruntime (tests/test_cold_start.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ferkit.api import predict
    from ferkit.data import load_dataset
    from ferkit.inference import Predictor
    from ferkit.models.nets import create_model
    from ferkit.models.store import load_run

# name -> the module that defines it
_LAZY = {
    "create_model": "ferkit.models.nets",
    "load_dataset": "ferkit.data",
    "load_run": "ferkit.models.store",
    "Predictor": "ferkit.inference",
    "predict": "ferkit.api",
}

__all__ = ["Predictor", "__version__", "create_model", "load_dataset", "load_run", "predict"]


def __getattr__(name: str) -> Any:
    """Import a lazy export on first access, then keep it as a plain module attribute."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
