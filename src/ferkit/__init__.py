"""ferkit: train, compare, explain and deploy facial-expression recognisers.

The everyday entry points are importable from here: :func:`create_model`, :func:`load_run`,
:func:`load_dataset`, :class:`Predictor` and the one-call :func:`predict`. They are imported on
first use (PEP 562), because ``import ferkit`` runs before every CLI command and must not pull
in torch, scikit-learn or onnxruntime (tests/test_cold_start.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
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


def lazy_exports(package: str, lazy: dict[str, str]) -> Callable[[str], Any]:
    """A package's PEP 562 ``__getattr__``: each name in ``lazy`` (name -> defining module) is
    imported on first access, then kept as a plain attribute of ``package``. For packages whose
    exports pull in heavy modules that a command may never need."""

    def __getattr__(name: str) -> Any:
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(lazy[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
