"""``ferkit serve``: a web service and a web page in front of one facial-expression model.

``create_app(model)`` is a FastAPI app (``POST /api/predict``, ``GET /api/health``, the page at
``/``); ``serve(...)`` runs it with uvicorn. FastAPI, uvicorn and python-multipart are the
``serve`` extra (``pip install 'ferkit[serve]'``): importing this package without them raises a
:class:`ferkit.errors.FerkitError` that says so. docs/serve.md has the endpoints and limits.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ferkit.errors import FerkitError

if TYPE_CHECKING:
    from ferkit.models.store import Run

INSTALL_HINT = "pip install 'ferkit[serve]'"

try:
    import fastapi  # noqa: F401
    import python_multipart  # noqa: F401  (FastAPI's form parser)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise FerkitError(
        f"ferkit serve needs FastAPI and python-multipart ({exc}): {INSTALL_HINT}"
    ) from None

from ferkit.serve.app import (  # noqa: E402
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WORKERS,
    IMAGE_TYPES,
    create_app,
)
from ferkit.serve.limits import MiB, ServeError  # noqa: E402


def serve(
    model: str | os.PathLike[str] | Run | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int = DEFAULT_WORKERS,
    log_level: str = "info",
) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted (one process; ``workers``
    inference threads). Binds to loopback unless ``host`` says otherwise."""
    try:
        import uvicorn
    except ImportError as exc:
        raise FerkitError(f"ferkit serve needs uvicorn ({exc}): {INSTALL_HINT}") from None
    app = create_app(
        model, max_bytes=max_bytes, max_pixels=max_pixels, timeout_s=timeout_s, workers=workers
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WORKERS",
    "IMAGE_TYPES",
    "MiB",
    "ServeError",
    "create_app",
    "serve",
]
