"""RetinaFace (MobileNet-0.25): a small CNN face detector that also gives 5 landmarks.

The graph ships inside ferkit (``faces/models/retinaface_mnet025.onnx``, 1.7 MB, MIT; see
``PROVENANCE.md`` there and ``tools/vendor_retinaface.py``), so nothing is downloaded at run
time. It is checked against :data:`MODEL_SHA256` before onnxruntime sees it: a damaged or
altered file is refused with a FerkitError, never run.

The network (biubug6/Pytorch_Retinaface) takes BGR pixels minus the per-channel mean
(104, 117, 127), unscaled, NCHW float32, and predicts at strides 8, 16 and 32, two square
anchors per cell (16/32, 64/128, 256/512 px): box offsets (centre in units of 0.1 anchor, size
as exp(0.2 * value) anchors), a face probability, and 5 points (the eye centres, the nose tip,
the mouth corners, in that order, image-left first) in the same units as the centre.
Pre- and post-processing here are ferkit's own (numpy, OpenCV's NMS).

Speed of the graph (dev-2c, one thread, loaded machine): 1.3 ms at 160x160, 4.5 ms at
320x320, 18.7 ms at 640x640. ``max_side`` bounds the side the network sees; the defaults
(``score`` 0.6, ``max_side`` 640) were chosen by benchmarks/detectors.py on synthetic scenes
(docs/BENCHMARKS.md, "Face detectors (issue 19)"): at 640 RetinaFace finds as many faces as
dlib-then-Haar with half the false positives at an eighth of the time; 320 and 480 lose
most faces under 80 px in 640x480 scenes.

Tiny images are enlarged to ``min_side`` (128) first: on 200 random FER2013 validation images
(48x48, the face filling the frame) RetinaFace at score 0.8 finds a face in 77 as they are,
155 at 64 px, 188 at 96, 194 at 128 and 160, 197 at 256 (AffectNet's 96x96: 198-200 at every
size); 128 costs about 7 ms per image. At the default score 0.6: 95 as they are, 196 at 128
(``benchmarks/detectors.py --crops 200``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.errors import FerkitError
from ferkit.faces.images import check_image, to_rgb
from ferkit.models.checks import sha256

if TYPE_CHECKING:  # detectors imports this module to register it: its names are taken late
    from ferkit.faces.detectors import Box

MODEL_FILE = Path(__file__).resolve().parent / "models" / "retinaface_mnet025.onnx"
MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)
# (stride, anchor sides in px) of the three prediction levels, in the graph's output order.
LEVELS = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
ALIGN = 32  # the coarsest stride: the padded input is a multiple of it, so every level tiles
DEFAULT_MAX_SIDE = 640
DEFAULT_MIN_SIDE = 128
DEFAULT_SCORE = 0.6
DEFAULT_NMS = 0.4

_lock = threading.Lock()
_sessions: dict[tuple[str, int | None], Any] = {}


def model_bytes(path: Path | None = None) -> bytes:
    """The vendored graph, checked against :data:`MODEL_SHA256` (FerkitError if it differs)."""
    path = MODEL_FILE if path is None else path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FerkitError(
            f"{path}: cannot read the RetinaFace model ({exc.strerror or exc}); reinstall ferkit"
        ) from None
    digest = sha256(data)
    if digest != MODEL_SHA256:
        raise FerkitError(
            f"{path}: the RetinaFace model does not match its recorded sha256 (got {digest[:12]}, "
            f"expected {MODEL_SHA256[:12]}): altered or damaged file, refused; reinstall ferkit"
        )
    return data


def session(threads: int | None = None, path: Path | None = None) -> Any:
    """The onnxruntime session for the checked graph, made once per (file, threads).

    One session is shared by all threads: onnxruntime's ``run`` is thread-safe.
    """
    path = MODEL_FILE if path is None else path
    key = (str(path), threads)
    with _lock:
        if key not in _sessions:
            from ferkit.models.onnx_run import make_session

            _sessions[key] = make_session(model_bytes(path), threads)
        return _sessions[key]


def anchors(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres (N, 2) and sides (N,) in pixels of a ``height`` x ``width`` input, in the
    graph's order: level by level, cells row by row, the two sizes of a cell together."""
    centres, sides = [], []
    for stride, sizes in LEVELS:
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        cells = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        centres.append(np.repeat(cells, len(sizes), axis=0))
        sides.append(np.tile(np.asarray(sizes, dtype=np.float64), len(cells)))
    return np.concatenate(centres), np.concatenate(sides)


def network_input(
    image: np.ndarray, max_side: int, min_side: int = DEFAULT_MIN_SIDE, upscale: float = 1.0
) -> tuple[np.ndarray, float]:
    """The NCHW float32 input for an RGB image and the factor it was scaled by.

    The image is scaled by ``upscale``, then so that its long side lies between ``min_side``
    and ``max_side`` (area interpolation to shrink, bilinear to enlarge). Enlarging a tiny
    image matters: a face that fills it, such as a 48-px dataset crop, is found far more often
    with room around the network's 16-px anchors (module doc). The image is then padded right
    and bottom to a multiple of 32 with the mean colour (zero after the mean is subtracted), so
    every prediction level has whole cells.
    """
    from ferkit.faces.detectors import import_cv2

    cv2 = import_cv2()
    height, width = image.shape[:2]
    long_side = max(height, width)
    scale = min(max(long_side * upscale, min_side), max_side) / long_side
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
    h, w = image.shape[:2]
    padded_h, padded_w = -(-h // ALIGN) * ALIGN, -(-w // ALIGN) * ALIGN
    tensor = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
    bgr = image[:, :, ::-1].astype(np.float32) - MEAN_BGR
    tensor[0, :, :h, :w] = bgr.transpose(2, 0, 1)
    return tensor, scale


def decode(
    outputs: list[np.ndarray], height: int, width: int, score: float, nms: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4: x, y, w, h), scores (N,) and points (N, 5, 2) in input pixels, after the
    score threshold and non-maximum suppression, best first."""
    loc, conf, marks = (np.asarray(o[0], dtype=np.float64) for o in outputs)
    centres, sides = anchors(height, width)
    probability = conf[:, 1]
    keep = np.flatnonzero(probability >= score)
    if keep.size == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    centres, sides, loc = centres[keep], sides[keep, None], loc[keep]
    middle = centres + loc[:, :2] * CENTRE_VARIANCE * sides
    size = sides * np.exp(loc[:, 2:] * SIZE_VARIANCE)
    boxes = np.concatenate([middle - size / 2, size], axis=1)
    points = centres[:, None, :] + marks[keep].reshape(-1, 5, 2) * CENTRE_VARIANCE * sides[:, None]
    probability = probability[keep]
    from ferkit.faces.detectors import import_cv2

    chosen = import_cv2().dnn.NMSBoxes(boxes.tolist(), probability.tolist(), score, nms)
    chosen = np.asarray(chosen, dtype=int).reshape(-1)
    order = chosen[np.argsort(-probability[chosen], kind="stable")]
    return boxes[order], probability[order], points[order]


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 through onnxruntime: face boxes plus 5 landmarks per face.

    ``score`` is the minimum face probability (0-1), ``nms`` the IoU above which the weaker of
    two boxes is dropped, ``max_side`` the long side large images are shrunk to before the
    network sees them (smaller: faster, but faces under about 30 px *after* shrinking are
    mostly missed: docs/BENCHMARKS.md), ``min_side`` the long side tiny images are enlarged
    to, ``upscale`` a factor applied first (2 with ``max_side=1280``: recall on 24-39 px
    pasted faces 0.52 instead of 0.12 and 0.85 overall instead of 0.61, for 5x the time; the
    result is still held within ``min_side``-``max_side``), ``threads`` onnxruntime's
    intra-op threads (None: the cores this process may use).
    The session is created on the first ``detect`` and shared.

    Each :class:`Box` carries ``landmarks``: the subject's right eye (image left), left eye,
    nose tip, right and left mouth corners, (x, y) image pixels; :func:`ferkit.faces.find_faces`
    aligns from them unless it is asked for dlib's 68 points.
    """

    def __init__(
        self,
        score: float = DEFAULT_SCORE,
        nms: float = DEFAULT_NMS,
        max_side: int = DEFAULT_MAX_SIDE,
        min_side: int = DEFAULT_MIN_SIDE,
        upscale: float = 1.0,
        threads: int | None = None,
    ) -> None:
        if not 0.0 <= float(score) <= 1.0 or not 0.0 < float(nms) <= 1.0:
            raise FerkitError(f"score must be in [0, 1] and nms in (0, 1], got {score!r}, {nms!r}")
        for name, side in (("max_side", max_side), ("min_side", min_side)):
            if not isinstance(side, int) or isinstance(side, bool) or side < 1:
                raise FerkitError(f"{name} must be a positive integer, got {side!r}")
        if min_side > max_side:
            raise FerkitError(f"min_side ({min_side}) must not exceed max_side ({max_side})")
        if not 0.0 < float(upscale) <= 8.0:
            raise FerkitError(f"upscale must be in (0, 8], got {upscale!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise FerkitError(f"threads must be a positive integer or None, got {threads!r}")
        self.score, self.nms = float(score), float(nms)
        self.max_side, self.min_side, self.threads = max_side, min_side, threads
        self.upscale = float(upscale)

    def detect(self, image: np.ndarray) -> list[Box]:
        image = to_rgb(check_image(image))
        tensor, scale = network_input(image, self.max_side, self.min_side, self.upscale)
        graph = session(self.threads)
        outputs = graph.run(None, {graph.get_inputs()[0].name: tensor})
        height, width = tensor.shape[2:]
        boxes, scores, points = decode(outputs, height, width, self.score, self.nms)
        return [
            box
            for b, s, p in zip(boxes / scale, scores, points / scale, strict=True)
            if (box := _to_box(b, float(s), p, image.shape)) is not None
        ]

    def __repr__(self) -> str:
        return (
            f"RetinaFaceDetector(score={self.score}, nms={self.nms}, max_side={self.max_side}, "
            f"min_side={self.min_side}, upscale={self.upscale}, threads={self.threads})"
        )


def _to_box(
    xywh: np.ndarray, score: float, points: np.ndarray, shape: tuple[int, ...]
) -> Box | None:
    """A whole-pixel Box (clipped to the image) carrying the 5 points, which are not clipped."""
    from ferkit.faces.detectors import Box

    x0, y0 = np.floor(xywh[:2]).astype(int)
    x1, y1 = np.ceil(xywh[:2] + xywh[2:]).astype(int)
    marks = tuple((float(x), float(y)) for x, y in points)
    return Box(int(x0), int(y0), int(x1 - x0), int(y1 - y0), score, marks).clip(shape)
