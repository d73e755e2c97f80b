"""The HTTP face of :class:`ferkit.inference.Predictor`: POST a photo, get its faces as JSON.

One predictor is loaded when the app is created and shared by every request (its face
detectors are per thread). Uploads are read under a byte limit, decoded by the data layer's
:func:`ferkit.data.images.decode_image` (EXIF rotation and 16-bit, CMYK, alpha handling as
``ferkit predict``, under the server's own pixel limit) and run on a bounded pool of worker
threads with a per-request timeout. Faces are looked for on a copy of at most
``max_detect_pixels`` (a large JPEG decoded at reduced scale for it, as ``ferkit predict``
does) and at most ``max_faces`` are analysed (:mod:`ferkit.serve.imaging`). Every failure,
the framework's own and unexpected ones included, is ``{"error": "..."}`` with a status that
says whose fault it is (docs/serve.md lists them). With a ``token`` every path but the page
needs it (:mod:`ferkit.serve.auth`). There is no Swagger page (it loads its script from a
CDN): the OpenAPI document is ``/api/openapi.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ferkit.errors import FerkitError, OptionError
from ferkit.faces.scale import scaled_box
from ferkit.inference import Predictor
from ferkit.inference.inputs import UnreadableInputError
from ferkit.inference.results import FaceResult
from ferkit.models.store import Run
from ferkit.serve.auth import BearerAuth, check_token
from ferkit.serve.imaging import (
    DEFAULT_MAX_DETECT_PIXELS,
    DEFAULT_MAX_FACES,
    BoundedDetector,
    bounded_predictor,
    upright_size,
)
from ferkit.serve.limits import (
    ClosingBoundary,
    InferenceGate,
    MiB,
    ServeError,
    check_declared_length,
    limited_receive,
    multipart_boundary,
    too_large,
)

logger = logging.getLogger("ferkit.serve")

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


def _in_upload_pixels(face: FaceResult, sx: float, sy: float, size: tuple[int, int]) -> FaceResult:
    """``face`` (in the decoded image's full-size pixels) with its box and landmarks in the
    upload's as its header says, clipped inside: a no-op unless the two sizes disagree."""
    if (sx, sy) == (1.0, 1.0):
        return face
    landmarks = None if face.landmarks is None else face.landmarks * np.array([sx, sy])
    box = scaled_box(face.box, sx, sy, *size)
    return dataclasses.replace(face, box=box, landmarks=landmarks)


class ServeState:
    """What every request shares: the predictor, the limits and the worker pool."""

    def __init__(
        self,
        predictor: Predictor,
        max_bytes: int,
        max_pixels: int,
        gate: InferenceGate,
        detector: BoundedDetector,
    ) -> None:
        self.predictor = predictor
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.gate = gate
        self.detector = detector

    def health(self) -> dict[str, Any]:
        model = self.predictor.describe()
        return {
            "status": "ok",
            "model": model["name"],
            "classes": model["classes"],
            "probabilities": model["probabilities"],
            "flip_averaged": model["flip_averaged"],
            "limits": {
                "max_bytes": self.max_bytes,
                "max_pixels": self.max_pixels,
                "timeout_s": self.gate.timeout_s,
                "workers": self.gate.workers,
                "max_detect_pixels": self.predictor.max_detect_pixels,
                "max_faces": self.detector.max_faces,
            },
        }

    def predict_file(self, path: Path) -> dict[str, Any]:
        """Decode and predict on a worker thread; decoding is CPU work too, so it is timed and
        bounded with the rest. The predictor decodes the file: a large JPEG at the reduced
        scale detection needs, in full only when a face is too small there."""
        start = time.perf_counter()
        width, height = upright_size(path)
        try:
            result, read = self.predictor.predict_file(path)
        except UnreadableInputError as exc:
            status = 413 if exc.problem.kind in _TOO_LARGE_KINDS else 400
            raise ServeError(status, exc.problem.reason) from None
        if not width or not height:
            width, height = result.width, result.height
        sx, sy = width / result.width, height / result.height
        faces = [_in_upload_pixels(f, sx, sy, (width, height)) for f in result.faces]
        # the copy's size in the pixels decoded at the server's limit, as before drafts: scaled
        # by the reduction a JPEG over ``max_pixels`` is forced to, not by a chosen draft's
        forced = 1.0 if read.draft else read.scale
        document: dict[str, Any] = {
            "model": self.predictor.run.name,
            "width": width,
            "height": height,
            "faces": [_quality(face.to_dict()) for face in faces],
        }
        if self.predictor.detect:
            scanned = self.detector.last()
            document["faces_found"] = scanned.found
            document["detection"] = {
                "width": round(scanned.width * forced * sx),
                "height": round(scanned.height * forced * sy),
            }
            if scanned.found > len(faces):
                document["notes"] = [
                    f"{scanned.found} faces found; the {len(faces)} largest were analysed "
                    f"(the server's limit is {self.detector.max_faces} per image)"
                ]
        document["ms"] = round((time.perf_counter() - start) * 1000, 1)
        return document


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
    boundary = multipart_boundary(request.headers.get("content-type", ""))
    closing = ClosingBoundary(receive, boundary or b"")
    counted = Request(request.scope, closing)
    try:
        form = await counted.form(max_files=1, max_fields=16)
    except StarletteHTTPException as exc:  # malformed multipart: starlette's own reason
        raise ServeError(400, f"bad multipart form: {exc.detail}") from None
    try:
        if not closing.seen:
            raise ServeError(
                400,
                "bad multipart form: the body ended before its closing boundary "
                f"(--{(boundary or b'').decode('latin-1')}--): an incomplete upload",
            )
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
            size = dest.tell()
        document = await state.gate.run(state.predict_file, path, cost=size)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse(document)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, FastAPI's own and unexpected ones included, as ``{"error": "..."}``."""

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code in (404, 405):  # name what was asked for
            message = f"{message}: {request.method} {request.url.path}"
        return _error(exc.status_code, message, exc.headers)  # keeps Allow on a 405

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "; ".join(str(e.get("msg", e)) for e in exc.errors()))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the traceback goes to the server's log (uvicorn logs the re-raised exception too);
        # the client learns only that it was not its fault
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal server error ({type(exc).__name__}); see the server log")


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
    max_detect_pixels: int = DEFAULT_MAX_DETECT_PIXELS,
    max_faces: int = DEFAULT_MAX_FACES,
    token: str | None = None,
    detect: bool = True,
    classify_rejected: bool = False,
    flip: bool = True,
) -> FastAPI:
    """The ferkit web service: ``POST /api/predict``, ``GET /api/health`` and the page at ``/``.

    ``model`` is what :class:`Predictor` takes (``None``: the default model) or a ready
    predictor; it is loaded here, once, so a bad model fails at startup, not on the first
    request. ``max_bytes`` bounds an upload, ``max_pixels`` a decoded image, ``timeout_s``
    the wait for a worker and for the answer; ``workers`` requests are predicted at once.
    Faces are searched on a copy of at most ``max_detect_pixels`` and at most ``max_faces``
    (the largest) are analysed per image. ``token``: every path but the page needs
    ``Authorization: Bearer <token>``. ``flip=False``: faces are scored without their mirror
    image (see :class:`Predictor`).
    """
    if max_bytes < 1 or max_pixels < 1:
        raise OptionError("max_bytes and max_pixels must be >= 1")
    predictor = (
        model
        if isinstance(model, Predictor)
        else Predictor(model, detect=detect, classify_rejected=classify_rejected, flip=flip)
    )
    predictor, detector = bounded_predictor(predictor, max_detect_pixels, max_faces, max_pixels)
    gate = InferenceGate(workers, timeout_s)
    state = ServeState(predictor, max_bytes, max_pixels, gate, detector)
    page = _page()

    app = FastAPI(
        title="ferkit",
        summary="Facial-expression recognition: the faces of a photo and their emotions.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: nothing offline, so none
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.serve = state
    _install_error_handlers(app)
    if token is not None:
        checked = check_token(token)
        if checked is None:  # an empty token would lock everyone out, or worse, no one
            raise FerkitError("the serve token is empty")
        app.add_middleware(BearerAuth, token=checked)

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
