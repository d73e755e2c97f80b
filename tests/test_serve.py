"""``ferkit serve``: the JSON API, its limits and errors, a load test and the page in Chromium.

Most tests talk to the app through FastAPI's TestClient with the shipped ``affectnet-hog-svm``
(labels only); a tiny logistic-regression run covers the probability path. Hostile inputs
(truncated, empty, bombs, over-size bodies) must end in a JSON error with the right status,
never a crash or a hang. The load test and the browser test use a real uvicorn server on a
free loopback port. The astronaut's face lies in x 170-300, y 40-200 (tests/test_faces.py);
``HEAD`` crops the 256x256 square around it, which keeps detection fast.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="ferkit serve needs the 'serve' extra")
with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conftest import FACE_REGION
from ferkit.inference import Predictor
from ferkit.serve import create_app, server_config
from ferkit.serve.load import run_load

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHIPPED = "affectnet-hog-svm"


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor(SHIPPED)


@pytest.fixture(scope="module")
def client(shipped: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(shipped)) as test_client:
        yield test_client


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **kwargs: Any) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def post(client: TestClient, body: bytes, content_type: str = "image/png", name: str = "x.png"):
    return client.post("/api/predict", files={"image": (name, body, content_type)})


def inside(box: dict[str, int], region: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = region
    right, bottom = box["left"] + box["width"], box["top"] + box["height"]
    return x0 <= box["left"] and right <= x1 and y0 <= box["top"] and bottom <= y1


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height 8-bit gray pixels, with almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4)  # four rows; the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


# -- the API on the shipped model --------------------------------------------------------------


def test_health_names_the_model_and_limits(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["model"] == SHIPPED
    assert "happy" in health["classes"] and health["probabilities"] is False
    assert health["limits"]["max_bytes"] == 10 * 1024 * 1024


def test_page_is_self_contained(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for element in ('id="file"', 'id="webcam"', 'id="canvas"', 'id="faces"', 'role="status"'):
        assert element in html
    assert "<script src" not in html and "<link" not in html  # no CDN, nothing fetched
    assert "getUserMedia" in html and "/api/predict" in html


def test_cli_has_a_serve_command() -> None:
    from typer.testing import CliRunner

    from ferkit.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--model", "--host", "--port", "--max-mb"):
        assert option in result.output


def test_astronaut_has_one_face_in_the_face_region(
    client: TestClient, astronaut: np.ndarray
) -> None:
    response = post(client, encode(astronaut))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["model"]) == (512, 512, SHIPPED)
    assert body["ms"] > 0
    (face,) = body["faces"]
    assert inside(face["box"], FACE_REGION), face["box"]
    assert face["label"] == "happy"  # what `make demo` shows (tests/test_predict.py)
    assert face["score"] is None and face["probabilities"] is None  # an SVM: labels only
    assert face["quality"]["ok"] is True and face["quality"]["reasons"] == []


def test_raw_body_with_an_image_content_type(client: TestClient, head: np.ndarray) -> None:
    for content_type in ("image/jpeg", "application/octet-stream", "image/jpeg; charset=x"):
        response = client.post(
            "/api/predict", content=encode(head, "JPEG"), headers={"content-type": content_type}
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["faces"]) == 1


def test_zero_faces_is_an_empty_list(client: TestClient) -> None:
    flat = np.full((200, 300, 3), 120, dtype=np.uint8)
    response = post(client, encode(flat))
    assert response.status_code == 200
    assert response.json()["faces"] == []


def test_twenty_faces_in_one_photo(client: TestClient, head: np.ndarray) -> None:
    tile = np.asarray(Image.fromarray(head).resize((128, 128), Image.Resampling.BILINEAR))
    crowd = np.concatenate([np.concatenate([tile] * 5, axis=1)] * 4, axis=0)  # 5 x 4 = 20
    response = post(client, encode(crowd))
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 20
    cells = {(f["box"]["left"] // 128, f["box"]["top"] // 128) for f in faces}
    assert cells == {(x, y) for x in range(5) for y in range(4)}  # one face per tile


@pytest.mark.parametrize("kind", ["gray", "cmyk-jpeg", "rgba-png", "16-bit-png"])
def test_image_modes_decode(client: TestClient, head: np.ndarray, kind: str) -> None:
    if kind == "gray":
        body = encode(Image.fromarray(head).convert("L"))
    elif kind == "cmyk-jpeg":
        body = encode(Image.fromarray(head).convert("CMYK"), "JPEG", quality=95)
    elif kind == "rgba-png":
        body = encode(Image.fromarray(head).convert("RGBA"))
    else:
        gray16 = np.asarray(Image.fromarray(head).convert("L"), dtype=np.uint16) * 257
        body = encode(Image.fromarray(gray16))
        assert Image.open(io.BytesIO(body)).mode.startswith("I")  # really 16-bit
    response = post(client, body, "image/jpeg" if kind == "cmyk-jpeg" else "image/png")
    assert response.status_code == 200, response.text
    body_json = response.json()
    assert (body_json["width"], body_json["height"]) == (256, 256)
    assert len(body_json["faces"]) == 1


# -- bad inputs: JSON errors with the reason ---------------------------------------------------


def test_non_image_upload_is_refused(client: TestClient) -> None:
    as_text = post(client, b"hello, not a photo", "text/plain", "notes.txt")
    assert as_text.status_code == 415
    assert "unsupported content type text/plain" in as_text.json()["error"]
    disguised = post(client, b"hello, not a photo", "image/png", "fake.png")
    assert disguised.status_code == 400
    assert "not a decodable image" in disguised.json()["error"]


def test_content_type_checks(client: TestClient, head: np.ndarray) -> None:
    png = encode(head)
    raw_text = client.post("/api/predict", content=png, headers={"content-type": "text/plain"})
    assert raw_text.status_code == 415 and "text/plain" in raw_text.json()["error"]
    no_type = client.post("/api/predict", content=png, headers={"content-type": ""})
    assert no_type.status_code == 415 and "none" in no_type.json()["error"]
    svg = post(client, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "a.svg")
    assert svg.status_code == 415


def test_missing_field_is_422(client: TestClient, head: np.ndarray) -> None:
    wrong_name = client.post("/api/predict", files={"photo": ("a.png", encode(head), "image/png")})
    assert wrong_name.status_code == 422
    assert "'image'" in wrong_name.json()["error"]
    as_text = client.post("/api/predict", files={"image": (None, b"not a file")})
    assert as_text.status_code == 422 and "text value" in as_text.json()["error"]
    urlencoded = client.post("/api/predict", data={"image": "not a file"})
    assert urlencoded.status_code == 415  # a form without a file is no image either


def test_truncated_jpeg_is_400(client: TestClient, astronaut: np.ndarray) -> None:
    jpeg = encode(astronaut, "JPEG")
    response = post(client, jpeg[: len(jpeg) // 2], "image/jpeg", "cut.jpg")
    assert response.status_code == 400
    assert "truncated" in response.json()["error"]


def test_empty_file_is_400(client: TestClient) -> None:
    response = post(client, b"")
    assert response.status_code == 400
    assert "empty file" in response.json()["error"]
    raw = client.post("/api/predict", content=b"", headers={"content-type": "image/png"})
    assert raw.status_code == 400 and "empty file" in raw.json()["error"]


def test_fifty_megapixel_image_is_refused_quickly(client: TestClient) -> None:
    picture = Image.new("L", (7100, 7100), 128)  # 50.4 megapixels, a ~65 kB PNG
    body = encode(picture, compress_level=9)
    assert len(body) < 1_000_000
    start = time.monotonic()
    response = post(client, body)
    assert time.monotonic() - start < 20
    assert response.status_code == 413
    error = response.json()["error"]
    assert "7100x7100" in error and "exceeds the limit" in error


@pytest.mark.parametrize("size", [(6000, 6000), (100_000, 100_000)])
def test_png_bomb_is_refused_with_the_reason(client: TestClient, size: tuple[int, int]) -> None:
    body = png_bomb(*size)
    assert len(body) < 1000
    response = post(client, body)
    assert response.status_code == 413
    assert "decompression bomb" in response.json()["error"]


def test_declared_oversize_body_is_413(shipped: Predictor, head: np.ndarray) -> None:
    with TestClient(create_app(shipped, max_bytes=1000)) as small:
        raw = small.post(
            "/api/predict", content=encode(head), headers={"content-type": "image/png"}
        )
        assert raw.status_code == 413 and "1,000 bytes" in raw.json()["error"]
        form = post(small, encode(head))
        assert form.status_code == 413 and "1,000 bytes" in form.json()["error"]


async def _asgi_request(app: Any, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]):
    """POST to the ASGI app directly, feeding the body chunk by chunk; returns (status, body,
    bytes the app pulled from the body)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/predict",
        "raw_path": b"/api/predict",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def _asgi_post(app: Any, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]):
    return asyncio.run(_asgi_request(app, headers, chunks))


@pytest.mark.parametrize("multipart", [False, True])
def test_undeclared_oversize_body_is_not_read_to_the_end(
    shipped: Predictor, multipart: bool
) -> None:
    """A chunked 64 MiB upload (no Content-Length) is cut off just past the 100 kB limit."""
    app = create_app(shipped, max_bytes=100_000)
    chunk = b"\x00" * 65536
    if multipart:
        head = (
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        chunks = iter([head, *([chunk] * 1024)])
        content_type = b"multipart/form-data; boundary=b"
    else:
        chunks = iter([chunk] * 1024)
        content_type = b"image/png"
    status, body, pulled = _asgi_post(app, [(b"content-type", content_type)], chunks)
    assert status == 413, body
    assert "the image limit is 100,000 bytes" in body["error"]
    assert pulled < 100_000 + 64 * 1024 + 3 * 65536  # a few chunks past the limit, not 64 MiB


def test_slow_inference_times_out_with_504_and_busy_with_503(
    shipped: Predictor, head: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Predictor(shipped.run)
    original = slow.predict_file  # what the server calls on an upload

    def sleepy(path: Any) -> Any:
        time.sleep(1.5)
        return original(path)

    monkeypatch.setattr(slow, "predict_file", sleepy)
    app = create_app(slow, timeout_s=0.5, workers=1)
    png = encode(head)

    async def two_at_once() -> list[tuple[int, dict[str, Any], int]]:
        headers = [(b"content-type", b"image/png")]
        first = _asgi_request(app, headers, iter([png]))
        second = _asgi_request(app, headers, iter([png]))
        return await asyncio.gather(first, second)

    start = time.monotonic()
    results = asyncio.run(two_at_once())
    assert time.monotonic() - start < 5
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [503, 504], results
    errors = {status: body["error"] for status, body, _ in results}
    assert "did not finish within 0.5 s" in errors[504]
    assert "server busy" in errors[503]


# -- the probability path ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def proba_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw-pixel SVC (24x24 gray): arbitrary answers, but Platt probabilities."""
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC  # with probabilities; in the allow-list of ferkit runs

    from conftest import make_folders
    from ferkit.data import load_dataset
    from ferkit.features.raw import RawPixels
    from ferkit.models import save_sklearn_run

    root = tmp_path_factory.mktemp("serve-proba")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERKIT_CACHE_DIR", str(root / "cache"))
        train = load_dataset(make_folders(root / "d", per_class=4), progress=False).split("train")
        pipe = Pipeline(
            [
                ("features", RawPixels(progress=False, cache=False)),
                ("clf", SVC(probability=True, random_state=0)),
            ]
        )
        with warnings.catch_warnings():  # sklearn 1.9 deprecates probability=True, which
            warnings.simplefilter("ignore", FutureWarning)  # the allow-list's SVC still has
            pipe.fit(train.images, train.labels)
        card = {"classes": train.classes, "canonical": train.canonical}
        save_sklearn_run(root / "proba", pipe, {**card, "image_size": 24, "color": "gray"})
    return root / "proba"


def test_probabilities_come_back_per_face(proba_run: Path, head: np.ndarray) -> None:
    with TestClient(create_app(proba_run)) as proba:
        assert proba.get("/api/health").json()["probabilities"] is True
        response = post(proba, encode(head))
    assert response.status_code == 200, response.text
    (face,) = response.json()["faces"]
    probabilities = face["probabilities"]
    assert set(probabilities) == {"angry", "happy", "sad"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert face["label"] == max(probabilities, key=probabilities.get)
    assert face["score"] == probabilities[face["label"]]


# -- a real server: load test and the page in Chromium -----------------------------------------


@pytest.fixture(scope="module")
def server(shipped: Predictor) -> Iterator[str]:
    """uvicorn serving the shipped model on a free loopback port, in a thread, configured as
    ``ferkit serve`` configures it (header deadline, connection cap)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(create_app(shipped), log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)
    sock.close()


def test_sixteen_concurrent_clients_get_no_errors(server: str, head: np.ndarray) -> None:
    """16 clients x 6 requests here (benchmarks/serve_load.py runs the full 16 x 100)."""
    face = encode(Image.fromarray(head).resize((160, 160), Image.Resampling.BILINEAR))
    report = run_load(f"{server}/api/predict", face, clients=16, requests=6, deadline_s=90)
    summary = report.summary()
    print("load:", json.dumps(summary))
    assert report.completed == report.planned == 96, summary
    assert report.failed == 0, report.errors
    assert summary["p50_ms"] is not None and summary["p50_ms"] <= summary["p99_ms"]


def test_page_in_headless_chromium(
    server: str, astronaut: np.ndarray, tmp_path: Path, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    driver = chromium
    driver.get(server + "/")
    wait = WebDriverWait(driver, 60)
    wait.until(ec.text_to_be_present_in_element((By.ID, "model"), "affectnet-hog-svm"))
    driver.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#faces li.face")))
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#faces .label")]
    assert labels == ["happy"]
    canvas = driver.find_element(By.ID, "canvas")
    assert canvas.get_attribute("data-faces") == "1"
    assert canvas.get_attribute("width") == "512"
    assert "face 1: happy" in canvas.get_attribute("aria-label")
    assert "1 face(s)" in driver.find_element(By.ID, "status").text
    box = json.loads(
        driver.find_element(By.CSS_SELECTOR, "#faces li.face").get_attribute("data-box")
    )
    assert inside(box, FACE_REGION), box
    box_pixel = driver.execute_script(  # the box's left edge, drawn on the canvas
        "const b = arguments[0];"
        "return Array.from(document.getElementById('canvas').getContext('2d')"
        ".getImageData(b.left, b.top + Math.round(b.height / 2), 1, 1).data);",
        box,
    )
    assert box_pixel[1] > 120 and box_pixel[0] < 100, box_pixel  # green (#1e9e1e)
    shot = tmp_path / "page.png"
    assert driver.save_screenshot(str(shot))
    driver.save_screenshot("/tmp/serve-screenshot.png")
    driver.find_element(By.ID, "webcam").click()  # no camera here: a message, no crash
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Choose a photo instead"))
    assert "error" in driver.find_element(By.ID, "status").get_attribute("class")
    assert driver.find_elements(By.CSS_SELECTOR, "#faces .label")[0].text == "happy"
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert pixels.std() > 20  # a page with a photo, not a blank screen
