"""``ferkit serve`` and large JPEG uploads (issue 19): faces are searched on the JPEG decoded at
1/2, 1/4 or 1/8 scale, and the upload is decoded in full only when a face found there is too
small to cut from it, as ``ferkit predict`` does.

A spy on the decoder (as :func:`ferkit.inference.inputs.read_image_scaled` calls it, and as the
server called it before) records every decode: the ``min_pixels`` asked for, the shape given.
The reference is the path before: the server's own predictor on the upload decoded in full at
the server's pixel limit. The uploads are a 4000x3000 gradient with skimage's astronaut pasted
in (the shipped SVM calls her happy); her face lies in ``FACE_REGION`` of the 512x512 photo.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="ferkit serve needs the 'serve' extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conftest import FACE_REGION
from ferkit.data import images
from ferkit.inference import Predictor
from ferkit.inference import inputs as inputs_module
from ferkit.serve import app as app_module
from ferkit.serve import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DETECT = 2_000_000  # the server's default --detect-mp
MAX_PIXELS = 16_000_000  # the server's default decode limit
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Predictor("affectnet-hog-svm"))) as test_client:
        yield test_client


def serving(client: TestClient) -> Predictor:
    predictor: Predictor = client.app.state.serve.predictor  # type: ignore[attr-defined]
    return predictor


def photo(
    astronaut: np.ndarray, scale: float, at: tuple[int, int], size: tuple[int, int] = (4000, 3000)
) -> np.ndarray:
    """A gradient of ``size`` (width, height) with the astronaut resized by ``scale`` at ``at``."""
    width, height = size
    rows = np.linspace(60, 190, height, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 50, width, dtype=np.float32)[None, :, None]
    canvas = np.broadcast_to(rows + cols, (height, width, 3)).astype(np.uint8)
    side = round(512 * scale)
    face = Image.fromarray(astronaut).resize((side, side), Image.Resampling.BILINEAR)
    x, y = at
    canvas[y : y + side, x : x + side] = np.asarray(face)
    return canvas


def face_region(scale: float, at: tuple[int, int]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = FACE_REGION
    return at[0] + x0 * scale, at[1] + y0 * scale, at[0] + x1 * scale, at[1] + y1 * scale


def jpeg(pixels: np.ndarray, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def post(client: TestClient, body: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
    response = client.post("/api/predict", files={"image": ("x", body, content_type)})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def spy_decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int | None, tuple[int, ...]]]:
    """Every decode of an upload: (min_pixels asked for, the shape decoded)."""
    calls: list[tuple[int | None, tuple[int, ...]]] = []
    real = images.decode_image

    def spy(path: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        pixels = real(path, *args, **kwargs)
        calls.append((kwargs.get("min_pixels"), pixels.shape))
        return pixels

    monkeypatch.setattr(inputs_module, "decode_image", spy)
    monkeypatch.setattr(app_module, "decode_image", spy, raising=False)  # the server before
    return calls


def reference(client: TestClient, body: bytes, tmp_path: Any) -> dict[str, Any]:
    """What the server answered before drafts: the upload decoded in full at the server's
    limit, faces searched on a copy shrunk from it."""
    path = tmp_path / "upload.jpg"
    path.write_bytes(body)
    pixels = images.decode_image(path, max_pixels=MAX_PIXELS)
    result = serving(client).predict_image(pixels)
    return {"width": pixels.shape[1], "height": pixels.shape[0], "faces": result.faces}


def close(box: dict[str, int], theirs: Any, tolerance: int = 4) -> bool:
    ours = (box["left"], box["top"], box["width"], box["height"])
    return all(
        abs(a - b) <= tolerance
        for a, b in zip(ours, (theirs.left, theirs.top, theirs.width, theirs.height), strict=True)
    )


def inside(box: dict[str, int], region: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = region
    right, bottom = box["left"] + box["width"], box["top"] + box["height"]
    return x0 <= box["left"] and right <= x1 and y0 <= box["top"] and bottom <= y1


def test_big_jpeg_upload_is_searched_on_a_draft_and_never_decoded_in_full(
    client: TestClient, astronaut: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 MP, faces searched on 2 MP: decoded once, at 1/2 (2000x1500), where her face's box
    (~180 px) is big enough to cut. Same box (to a draft pixel or two) and label as before."""
    scale, at = 4.0, (1200, 800)
    body = jpeg(photo(astronaut, scale, at))
    calls = spy_decodes(monkeypatch)
    document = post(client, body)
    assert calls == [(DETECT, (1500, 2000, 3))]
    assert (document["width"], document["height"]) == (4000, 3000)
    (face,) = document["faces"]
    assert inside(face["box"], face_region(scale, at)), face["box"]
    assert face["label"] == "happy"
    assert document["faces_found"] == 1
    scanned = document["detection"]
    assert scanned["width"] * scanned["height"] <= DETECT * 1.01
    before = reference(client, body, tmp_path)
    (theirs,) = before["faces"]
    assert close(face["box"], theirs.box), (face["box"], theirs.box)
    assert face["label"] == theirs.label
    assert face["quality"]["face_px"] == pytest.approx(theirs.quality.face_px, rel=0.05)


def test_small_face_in_the_draft_is_cut_from_one_full_decode(
    client: TestClient, astronaut: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Her face's box, ~190 px in the upload, is ~95 px in the 1/2 draft, under 1.5x the SVM's
    96 px input: the upload is decoded in full once, for the crop (not searched again)."""
    scale, at = 2.0, (2600, 1000)
    body = jpeg(photo(astronaut, scale, at))
    calls = spy_decodes(monkeypatch)
    document = post(client, body)
    assert calls == [(DETECT, (1500, 2000, 3)), (None, (3000, 4000, 3))]
    (face,) = document["faces"]
    assert inside(face["box"], face_region(scale, at)), face["box"]
    (theirs,) = reference(client, body, tmp_path)["faces"]
    assert close(face["box"], theirs.box), (face["box"], theirs.box)
    assert face["label"] == theirs.label == "happy"
    assert face["quality"]["ok"] and theirs.quality.ok


def test_exif_rotated_jpeg_is_drafted_and_boxed_as_before(
    client: TestClient, astronaut: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored 4000x3000 turned a quarter, tagged orientation 6: shown (and answered) as
    3000x4000 with her upright; the draft is rotated like the full decode."""
    scale, at = 4.0, (800, 1500)
    upright = photo(astronaut, scale, at, size=(3000, 4000))
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # 90 ccw; orientation 6 turns it back
    body = jpeg(stored, orientation=6)
    calls = spy_decodes(monkeypatch)
    document = post(client, body)
    assert calls == [(DETECT, (2000, 1500, 3))]
    assert (document["width"], document["height"]) == (3000, 4000)
    (face,) = document["faces"]
    assert inside(face["box"], face_region(scale, at)), face["box"]
    before = reference(client, body, tmp_path)
    assert (before["width"], before["height"]) == (3000, 4000)
    (theirs,) = before["faces"]
    assert close(face["box"], theirs.box), (face["box"], theirs.box)
    assert face["label"] == theirs.label == "happy"


def test_png_upload_is_decoded_in_full(
    client: TestClient, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PNG has no reduced decoding: one full decode, the face found as before."""
    scale, at = 2.0, (900, 500)
    buffer = io.BytesIO()
    Image.fromarray(photo(astronaut, scale, at, size=(2400, 1800))).save(buffer, "PNG")
    calls = spy_decodes(monkeypatch)
    document = post(client, buffer.getvalue(), "image/png")
    assert calls == [(DETECT, (1800, 2400, 3))]
    assert (document["width"], document["height"]) == (2400, 1800)
    (face,) = document["faces"]
    assert inside(face["box"], face_region(scale, at)), face["box"]
    assert face["label"] == "happy"
