"""``ferkit serve``: a web service and a web page in front of one facial-expression model.

``create_app(model)`` is a FastAPI app (``POST /api/predict``, ``GET /api/health``, the page at
``/``); ``serve(...)`` runs it with uvicorn behind the guards of :mod:`ferkit.serve.server`
(header deadline, connection cap) and refuses a non-loopback address without a token. FastAPI,
uvicorn and python-multipart are the ``serve`` extra (``pip install 'ferkit[serve]'``):
importing this package without them raises a :class:`ferkit.errors.FerkitError` that says
so. docs/serve.md has the endpoints, limits, authentication and timeouts.
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
    import uvicorn  # noqa: F401  (the server, and the protocol the guards extend)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise FerkitError(
        f"ferkit serve needs FastAPI, uvicorn and python-multipart ({exc}): {INSTALL_HINT}"
    ) from None

from ferkit.serve.app import (  # noqa: E402
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WORKERS,
    IMAGE_TYPES,
    create_app,
)
from ferkit.serve.auth import TOKEN_ENV, check_exposure, check_token  # noqa: E402
from ferkit.serve.imaging import DEFAULT_MAX_DETECT_PIXELS, DEFAULT_MAX_FACES  # noqa: E402
from ferkit.serve.limits import MiB, ServeError  # noqa: E402
from ferkit.serve.server import (  # noqa: E402
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_KEEP_ALIVE_S,
    DEFAULT_MAX_CONNECTIONS,
    check_port,
    server_config,
)


def serve(
    model: str | os.PathLike[str] | Run | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int = DEFAULT_WORKERS,
    max_detect_pixels: int = DEFAULT_MAX_DETECT_PIXELS,
    max_faces: int = DEFAULT_MAX_FACES,
    token: str | None = None,
    insecure: bool = False,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    log_level: str = "info",
    flip: bool = True,
) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted (one process; ``workers``
    inference threads). Binds to loopback unless ``host`` says otherwise; any other address
    needs a ``token`` (``None``: the ``FERKIT_SERVE_TOKEN`` environment variable) unless
    ``insecure``, checked before the model is loaded. ``flip=False``: faces are scored
    without their mirror image (``Predictor(flip=False)``)."""
    import uvicorn

    token = check_token(token if token is not None else os.environ.get(TOKEN_ENV))
    check_exposure(host, token, insecure)
    check_port(host, port)
    app = create_app(
        model,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        timeout_s=timeout_s,
        workers=workers,
        max_detect_pixels=max_detect_pixels,
        max_faces=max_faces,
        token=token,
        flip=flip,
    )
    config = server_config(
        app,
        host=host,
        port=port,
        header_timeout_s=header_timeout_s,
        keep_alive_s=keep_alive_s,
        max_connections=max_connections,
        log_level=log_level,
    )
    uvicorn.Server(config).run()


__all__ = [
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_KEEP_ALIVE_S",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_DETECT_PIXELS",
    "DEFAULT_MAX_FACES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WORKERS",
    "IMAGE_TYPES",
    "TOKEN_ENV",
    "MiB",
    "ServeError",
    "check_exposure",
    "check_port",
    "check_token",
    "create_app",
    "serve",
    "server_config",
]
