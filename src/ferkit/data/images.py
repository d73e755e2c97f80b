"""Decode one image file into a fixed-size uint8 array, or say exactly why it cannot be.

Pillow reads the header lazily, so the pixel count is checked before any pixel is decoded:
a decompression bomb is refused up front, and a large JPEG is decoded at a reduced scale
(``draft``) instead of at full size.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Color = Literal["rgb", "gray"]
# A face's box as YOLO writes it: centre x, centre y, width, height, as fractions of the image.
Box = tuple[float, float, float, float]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}
)
# 100 megapixels: a 48 MP phone photo (8064x6048) or a 61 MP camera photo decodes at full size
# (300 MB as RGB); a file declaring more is refused as a possible decompression bomb, except a
# JPEG, which is decoded at a reduced scale instead (and says so, see ``decoded_scale``).
DEFAULT_MAX_PIXELS = 100_000_000
# JPEG can be decoded at 1/2, 1/4 or 1/8 scale, so memory stays bounded up to 64x the limit.
_JPEG_DRAFT_FACTOR = 64


# What Pillow raises on a hostile or damaged file, at open or at decode: besides OSError, a
# ValueError ("Decompressed data too large" for a huge PNG text chunk), SyntaxError (bad
# headers), struct.error, EOFError, and index/type/arithmetic errors from crafted fields.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
)


@dataclass(frozen=True)
class ImageProblem(Exception):
    """Why a file could not become a sample; ``kind`` is a stable machine-readable code."""

    kind: str
    reason: str

    def __str__(self) -> str:
        return self.reason


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True when the file extension is one ferkit decodes."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16-bit and float images to 8 bits instead of clipping them to white."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        out = (arr.astype(np.uint32) >> 8).astype(np.uint8)
    else:
        arr = arr.astype(np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out = np.nan_to_num((arr - lo) * scale).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out)


def _normalise_mode(img: Image.Image, color: Color) -> Image.Image:
    """Bring any Pillow mode (palette, alpha, CMYK, 16-bit...) to L or RGB."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if color == "gray" else "RGB"
    return img if img.mode == target else img.convert(target)


def crop_box(width: int, height: int, box: Box) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) around a YOLO box, inside the image: squared so
    that resizing to size x size does not stretch the face, shifted (not cut) at the edges."""
    cx, cy, w, h = box
    side = max(w * width, h * height, 1.0)
    sx, sy = min(side, width), min(side, height)
    left = min(max(cx * width - sx / 2, 0.0), width - sx)
    top = min(max(cy * height - sy / 2, 0.0), height - sy)
    return round(left), round(top), round(left + sx), round(top + sy)


def check_regular_file(path: str | os.PathLike[str]) -> int:
    """The size in bytes of ``path``, or :class:`ImageProblem` when it is not a regular file.

    Checked with ``os.stat`` before anything opens it: ``open()`` on a FIFO named ``.jpg``
    blocks for ever, and a socket or device is no image either."""
    try:
        st = os.stat(path)
    except OSError as exc:
        from ferkit.data.scan import path_kind  # the same words a folder scan uses

        kind, reason = path_kind(path)
        if kind in ("dir", "file"):  # raced: gone between the two calls
            kind, reason = "unreadable-file", f"cannot read file: {exc.strerror or exc}"
        raise ImageProblem(kind, reason) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageProblem("not-a-regular-file", "a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        from ferkit.data.scan import path_kind

        raise ImageProblem(*path_kind(path))
    return st.st_size


def _decode_problem(exc: BaseException) -> ImageProblem:
    """The per-file problem for any decode failure Pillow raises (see DECODE_ERRORS)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return ImageProblem("image-too-large", "not enough memory to decode the image")
    if "decompressed data too large" in text.lower():
        return ImageProblem(
            "corrupt-image",
            f"a metadata chunk is too large to decompress safely ({text})",
        )
    if "truncat" in text.lower():
        return ImageProblem("truncated-image", f"truncated image: {text}")
    return ImageProblem("corrupt-image", f"corrupt image data: {text}")


def _open_checked(
    path: Path,
    size: int | None,
    max_pixels: int,
    box: Box | None = None,
    min_pixels: int | None = None,
) -> Image.Image:
    """Open lazily and refuse what is empty, unidentifiable or too large to decode safely.

    ``min_pixels`` (JPEG only): decode at the largest reduction (1/2, 1/4, 1/8) that still
    gives at least that many pixels, for a caller that needs no more (face detection)."""
    nbytes = check_regular_file(path)
    if nbytes == 0:
        raise ImageProblem("empty-file", "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageProblem(
            "image-too-large",
            f"image too large to decode safely (possible decompression bomb): {exc}",
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageProblem(
            "corrupt-image", "not a decodable image (unknown format or corrupt header)"
        ) from exc
    except OSError as exc:
        raise ImageProblem("unreadable-file", f"cannot read file: {exc}") from exc
    except DECODE_ERRORS as exc:
        raise _decode_problem(exc) from exc
    width, height = img.size
    pixels = width * height
    limit = max_pixels * (_JPEG_DRAFT_FACTOR if img.format == "JPEG" else 1)
    if pixels > limit:
        img.close()
        raise ImageProblem(
            "image-too-large",
            f"image too large: {width}x{height} = {pixels:,} pixels exceeds the limit of "
            f"{limit:,} (possible decompression bomb)",
        )
    if img.format == "JPEG" and (size is not None or pixels > max_pixels):
        # JPEG decodes at 1/2..1/8 scale for free; a face cropped later needs its own pixels
        scale = 1.0 if box is None else max(box[2], box[3], 1e-3)
        if size is not None:
            target = (math.ceil(size / scale), math.ceil(size / scale))
        else:  # the least reduction (1/2, 1/4, 1/8) that fits the limit
            factor = next((f for f in (2, 4, 8) if pixels / (f * f) <= max_pixels), 8)
            target = _draft_target(width, height, factor)
        img.draft(img.mode, target)
    elif img.format == "JPEG" and min_pixels is not None and box is None:
        factor = max(f for f in (1, 2, 4, 8) if f == 1 or pixels / (f * f) >= min_pixels)
        if factor > 1:
            img.draft(img.mode, _draft_target(width, height, factor))
    return img


def _draft_target(width: int, height: int, factor: int) -> tuple[int, int]:
    """The size to ask ``Image.draft`` for to get 1/``factor`` scale: Pillow picks the scale
    ``min(width // w, height // h)``, so the target is rounded down (a ceiling would make
    4899 // 2450 = 1 and decode an odd-sized photo in full)."""
    return max(1, width // factor), max(1, height // factor)


def decode_image(
    path: str | os.PathLike[str],
    size: int | None = None,
    color: Color = "rgb",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: Box | None = None,
    min_pixels: int | None = None,
) -> np.ndarray:
    """Decode ``path`` into an (H, W, C) uint8 array, C = 3 for rgb and 1 for gray.

    ``size`` resizes to size x size (as the notebook's ``cv2.resize``); ``box`` first crops the
    square around that face (:func:`crop_box`, in the upright image, as YOLO tools label it).
    ``min_pixels`` lets a large JPEG decode at 1/2, 1/4 or 1/8 scale (JPEG's free reduced
    decoding) as long as at least that many pixels remain; other formats decode in full.
    Raises :class:`ImageProblem` with the reason when the file is not a usable image.
    """
    path = Path(path)
    img = _open_checked(path, size, max_pixels, box, min_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd EXIF/ICC data; we still decode
            img.load()
            img = ImageOps.exif_transpose(img) or img
            if box is not None:
                img = img.crop(crop_box(img.width, img.height, box))
            img = _normalise_mode(img, color)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except DECODE_ERRORS as exc:
        raise _decode_problem(exc) from exc
    finally:
        img.close()
    return arr[:, :, None] if arr.ndim == 2 else arr


# Everything peek_image turns into "unreadable": a named tuple so the type checker sees exception
# classes (it cannot follow a star-unpacked tuple inside an ``except`` clause).
_PEEK_ERRORS: tuple[type[BaseException], ...] = (
    ImageProblem,
    Image.DecompressionBombError,
    *DECODE_ERRORS,
)


def peek_image(path: str | os.PathLike[str]) -> tuple[int, int, str] | None:
    """(width, height, mode) from the header without decoding, or None if unreadable (or not
    a regular file: a FIFO would block the ``open``)."""
    try:
        check_regular_file(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size[0], img.size[1], img.mode
    except _PEEK_ERRORS:
        return None
