"""The HTTP face of :class:`ferkit.inference.Predictor`: POST a photo, get its faces as JSON.

One predictor is loaded when the app is created and shared by every request (its face
detectors are per thread). Uploads are read under a byte limit, decoded by the data layer's
:func:`ferkit.data.images.decode_image` (the same pixel limit, EXIF rotation and 16-bit, CMYK,
alpha handling as ``ferkit predict``) and run on a bounded pool of worker threads with a
per-request timeout. Every failure is ``{"error": "..."}`` with a status that says whose fault
it is (docs/serve.md lists them).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ferkit.data.images import ImageProblem, decode_image
from ferkit.inference import Predictor
from ferkit.models.store import Run
from ferkit.serve.limits import (
    InferenceGate,
    MiB,
    ServeError,
    check_declared_length,
    limited_receive,
    too_large,
)

DEFAULT_MAX_BYTES = 10 * MiB
# A 16-megapixel photo (4608x3456) still fits; past that, face detection alone costs seconds
# per request on a CPU. Larger JPEGs are decoded at a reduced scale by the decoder instead.
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_WORKERS = 2
FIELD = "image"
# Multipart boundaries and part headers around the image: a few hundred bytes in practice.
MULTIPART_OVERHEAD = 64 * 1024
CHUNK = 64 * 1024

# What the decoder reads. application/octet-stream is accepted too: the decoder identifies the
# format from the bytes, and that is what curl and many clients send for an unknown file.
IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/pjpeg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
        "image/gif",
        "image/tiff",
        "image/x-portable-anymap",
        "image/x-portable-graymap",
        "image/x-portable-pixmap",
        "application/octet-stream",
    }
)
# Decoder failures that are the image's size, not its bytes: answered 413, like a big body.
_TOO_LARGE_KINDS = frozenset({"image-too-large"})


def _media_type(value: str | None) -> str:
    """``image/png`` from ``image/png; charset=...``, lowercased; empty when absent."""
    return (value or "").split(";", 1)[0].strip().lower()


def _check_image_type(media: str, where: str) -> None:
    if media not in IMAGE_TYPES:
        shown = media or "none"
        raise ServeError(
            415,
            f"unsupported content type {shown} for {where}: send a JPEG, PNG, WebP, BMP, GIF, "
            f"TIFF or PNM image (multipart field {FIELD!r}, or the raw bytes with an image "
            "content type)",
        )


def _page() -> str:
    return resources.files("ferkit.serve").joinpath("static/index.html").read_text("utf-8")


def _quality(face: dict[str, Any]) -> dict[str, Any]:
    """Every face gets ``quality.ok`` and ``reasons``, also when none was assessed (no detection),
    so a client never has to test for null before reading them."""
    quality = face.get("quality") or {"ok": True, "reasons": []}
    return {**face, "quality": quality}


class ServeState:
    """What every request shares: the predictor, the limits and the worker pool."""

    def __init__(
        self, predictor: Predictor, max_bytes: int, max_pixels: int, gate: InferenceGate
    ) -> None:
        self.predictor = predictor
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.gate = gate

    def health(self) -> dict[str, Any]:
        model = self.predictor.describe()
        return {
            "status": "ok",
            "model": model["name"],
            "classes": model["classes"],
            "probabilities": model["probabilities"],
            "limits": {
                "max_bytes": self.max_bytes,
                "max_pixels": self.max_pixels,
                "timeout_s": self.gate.timeout_s,
                "workers": self.gate.workers,
            },
        }

    def predict_file(self, path: Path) -> dict[str, Any]:
        """Decode and predict on a worker thread; decoding is CPU work too, so it is timed and
        bounded with the rest."""
        start = time.perf_counter()
        try:
            pixels = decode_image(path, color="rgb", max_pixels=self.max_pixels)
        except ImageProblem as exc:
            status = 413 if exc.kind in _TOO_LARGE_KINDS else 400
            raise ServeError(status, exc.reason) from None
        result = self.predictor.predict_image(pixels)
        return {
            "model": self.predictor.run.name,
            "width": result.width,
            "height": result.height,
            "faces": [_quality(face.to_dict()) for face in result.faces],
            "ms": round((time.perf_counter() - start) * 1000, 1),
        }


async def _save_stream(request: Request, dest: Any, limit: int) -> int:
    """Copy a raw body to ``dest`` chunk by chunk, never holding more than a chunk."""
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        dest.write(chunk)
    return total


async def _save_multipart(request: Request, dest: Any, limit: int) -> int:
    """Copy the ``image`` file field to ``dest``; the form is parsed from a counted channel."""
    receive = limited_receive(request.receive, limit + MULTIPART_OVERHEAD, shown=limit)
    counted = Request(request.scope, receive)
    try:
        form = await counted.form(max_files=1, max_fields=16)
    except StarletteHTTPException as exc:  # malformed multipart: starlette's own reason
        raise ServeError(400, f"bad multipart form: {exc.detail}") from None
    try:
        upload = form.get(FIELD)
        if not isinstance(upload, UploadFile):
            got = "a text value" if upload is not None else "nothing"
            raise ServeError(422, f"the form needs a file in the field {FIELD!r} (got {got})")
        _check_image_type(_media_type(upload.content_type), f"the {FIELD!r} file")
        total = 0
        while chunk := await upload.read(CHUNK):
            total += len(chunk)
            if total > limit:
                raise too_large(limit)
            dest.write(chunk)
        return total
    finally:
        await form.close()


async def _receive_upload(request: Request, state: ServeState, dest: Any) -> None:
    """The upload's bytes into ``dest`` (a temp file), or the ServeError that says why not."""
    media = _media_type(request.headers.get("content-type"))
    multipart = media == "multipart/form-data"
    if not multipart:
        _check_image_type(media, "the request body")
    limit = state.max_bytes + (MULTIPART_OVERHEAD if multipart else 0)
    check_declared_length(request.headers, limit, shown=state.max_bytes)
    save = _save_multipart if multipart else _save_stream
    await save(request, dest, state.max_bytes)


async def _predict(request: Request) -> JSONResponse:
    state: ServeState = request.app.state.serve
    fd, name = tempfile.mkstemp(prefix="ferkit-serve-", suffix=".upload")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as dest:
            try:
                await asyncio.wait_for(_receive_upload(request, state, dest), state.gate.timeout_s)
            except TimeoutError:
                raise ServeError(408, "the upload did not arrive in time") from None
        document = await state.gate.run(state.predict_file, path)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse(document)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, FastAPI's own included, as ``{"error": "..."}``."""

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(str(e.get("msg", e)) for e in exc.errors()))


_PREDICT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {FIELD: {"type": "string", "format": "binary"}},
                    "required": [FIELD],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def create_app(
    model: str | os.PathLike[str] | Run | Predictor | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int = DEFAULT_WORKERS,
    detect: bool = True,
    classify_rejected: bool = False,
) -> FastAPI:
    """The ferkit web service: ``POST /api/predict``, ``GET /api/health`` and the page at ``/``.

    ``model`` is what :class:`Predictor` takes (``None``: the default model) or a ready
    predictor; it is loaded here, once, so a bad model fails at startup, not on the first
    request. ``max_bytes`` bounds an upload, ``max_pixels`` a decoded image, ``timeout_s``
    the wait for a worker and for the answer; ``workers`` requests are predicted at once.
    """
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be >= 1")
    predictor = (
        model
        if isinstance(model, Predictor)
        else Predictor(model, detect=detect, classify_rejected=classify_rejected)
    )
    state = ServeState(predictor, max_bytes, max_pixels, InferenceGate(workers, timeout_s))
    page = _page()

    app = FastAPI(
        title="ferkit",
        summary="Facial-expression recognition: the faces of a photo and their emotions.",
    )
    app.state.serve = state
    _install_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """The model being served, its classes and the server's limits."""
        return state.health()

    @app.post("/api/predict", openapi_extra=_PREDICT_DOC)
    async def predict(request: Request) -> JSONResponse:
        """The faces of one image: multipart field ``image``, or the raw bytes."""
        return await _predict(request)

    return app
