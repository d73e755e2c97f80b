"""Input checks and colour conversion shared by the face pipeline.

Photos reach the pipeline as (H, W) gray or (H, W, 3) RGB uint8, the layout dlib and OpenCV take;
the (H, W, 1) layout of ferkit datasets is accepted too, so a decoded sample can be passed as is.
Gray conversion goes through Pillow's ``convert("L")`` (ITU-R 601 weights) because that is how
ferkit's data readers turn RGB files gray: a gray model then sees user photos converted exactly
like its training images.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from ferkit.errors import FerkitError

Color = Literal["gray", "rgb"]
COLORS: tuple[Color, ...] = ("gray", "rgb")


def check_image(image: object) -> np.ndarray:
    """``image`` as a C-contiguous (H, W) or (H, W, 3) uint8 array, or a FerkitError saying why.

    Only uint8 is accepted: rescaling other dtypes silently (0-1 floats, 16-bit) would give
    detectors a black or saturated image and an empty result instead of an error.
    """
    if not isinstance(image, np.ndarray):
        raise FerkitError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FerkitError(
            f"image must be uint8 (0-255), got dtype {image.dtype}; "
            "convert it first, e.g. np.clip(np.rint(x), 0, 255).astype(np.uint8)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise FerkitError(
            f"image must be (H, W) gray, (H, W, 1) gray or (H, W, 3) RGB, got shape {image.shape}"
        )
    if min(image.shape[:2]) < 1:
        raise FerkitError(f"image has no pixels: shape {image.shape}")
    return np.ascontiguousarray(image)


def check_color(color: str) -> Color:
    """``color`` if it is "gray" or "rgb", else a FerkitError listing both."""
    for known in COLORS:
        if color == known:
            return known
    raise FerkitError(f"color must be one of {', '.join(COLORS)}; got {color!r}")


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (H, W) uint8 luma, as Pillow's ``convert("L")``."""
    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(image, "RGB").convert("L"))


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (H, W, 3) uint8, repeating a gray channel."""
    if image.ndim == 3:
        return image
    return np.repeat(image[:, :, None], 3, axis=2)


def as_layout(image: np.ndarray, color: Color) -> np.ndarray:
    """A (H, W[, 3]) uint8 image in ferkit's dataset layout: (H, W, 1) gray or (H, W, 3) RGB."""
    if color == "gray":
        return to_gray(image)[:, :, None]
    return to_rgb(image)


def whole_image_crop(image: np.ndarray, size: int, color: str) -> np.ndarray:
    """``image`` as a (size, size, C) crop, converted and resized as the data layer does with
    dataset images (Pillow ``convert`` then bilinear ``resize``), for inputs that are faces:
    ``predict`` without detection, and a teacher of another input format (``--teacher``)."""
    pixels = check_image(image)
    picture = Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB")
    picture = picture.convert("L" if color == "gray" else "RGB")
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(picture, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array
