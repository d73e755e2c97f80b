"""The bad-input corpus (issue 22, section 5): every kind of hostile or odd input, written on the
fly (nothing binary is committed), laid out for each command, run through the real CLI and judged.

``write_corpus(folder)`` writes the inputs ``ferkit predict`` and ``ferkit serve`` get;
``class_folder_dataset``, ``yolo_dataset`` and ``hostile_yaml_datasets`` lay the same kinds out
for ``inspect`` and ``evaluate``. Every :class:`Case` says what must happen to it: ``"ok"`` (a
good image that must be processed: the astronaut's face in every encoding ferkit reads, a 1x1
pixel, a 48-megapixel photo) or ``"reject"`` (reported with a reason, never a traceback, a hang
or a silent drop).

The ``run_*`` functions run one command as a subprocess under a time limit and the ``judge_*``
functions turn its output into one :class:`Verdict` per case, so that tests/test_hostile_corpus.py
and benchmarks/hostile_inputs.py judge exactly alike.

Unreadable files and folders: the tests run as root in CI, where ``chmod 000`` blocks nothing, so
the CLI is started through :func:`cli_main`, which makes every opening or listing of a denied path
fail with ``PermissionError`` as the kernel would for another user (and the paths are ``chmod 000``
too, for a non-root run).
"""

from __future__ import annotations

import contextlib
import errno
import io as _io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
DENY_ENV = "FERKIT_HOSTILE_DENY"

# where a case is tried
PREDICT = "predict"
FOLDERS = "inspect-folders"
YOLO = "inspect-yolo"
EVALUATE = "evaluate"
SERVE = "serve"
COMMANDS = (PREDICT, FOLDERS, YOLO, EVALUATE, SERVE)
EVERYWHERE = frozenset(COMMANDS)
ON_DISK = frozenset({PREDICT, FOLDERS, YOLO, EVALUATE})  # a file-system oddity: nothing to POST

# outcomes: the first two are right, the rest are failures
OK = "ok"  # a good input processed
CLEAR = "clear error"  # a bad input reported with a reason
TRACEBACK = "traceback"
HANG = "hang"  # killed at the time limit
DROP = "silent drop"  # not mentioned anywhere
WRONG = "wrong outcome"  # a good input refused, a bad one processed, a wrong reason or size
FAILURES = (TRACEBACK, HANG, DROP, WRONG)

# reasons that must say what is wrong (the issue found wrong ones: a FIFO "missing", an
# unreadable class folder "empty-class")
UNREADABLE = r"(?i)permission|unreadable|cannot read|denied|not readable"
LINK = r"(?i)link|loop"
NOT_REGULAR = r"(?i)regular|fifo|pipe|special"
MISSING = r"(?i)no such|missing|not exist|does not"

BIG = (8000, 6000)  # a 48-megapixel phone photo: legal
LABEL_LINE = "1 0.5 0.5 1.0 1.0\n"  # class 1 (happy) of the YOLO datasets, the whole image
YOLO_NAMES = ("angry", "happy", "sad")


@dataclass(frozen=True)
class Case:
    """One input and what must happen to it.

    ``path`` is what a report must name (the file, the link or the folder); ``aliases`` are
    other paths a report may name instead (a YOLO image's label file). ``face``: the astronaut's
    face is in it and must be found. ``size``: the (width, height) a result must report.
    ``reason``: a pattern the reason of a rejection must match. ``commands``: where it is tried.
    """

    name: str
    path: Path
    expect: str  # "ok" or "reject"
    commands: frozenset[str] = EVERYWHERE
    face: bool = False
    size: tuple[int, int] | None = None
    reason: str | None = None
    aliases: tuple[Path, ...] = ()


@dataclass
class Corpus:
    """The cases laid out under ``root``; ``inputs`` are what goes on the command line (or the
    dataset folder), ``denied`` the paths that must read as unreadable."""

    root: Path
    cases: list[Case]
    inputs: list[Path]
    denied: list[Path] = field(default_factory=list)

    def for_command(self, command: str) -> list[Case]:
        return [case for case in self.cases if command in case.commands]


# -- building blocks ---------------------------------------------------------------------------


@cache
def head() -> np.ndarray:
    """A 256x304 RGB cut of skimage's astronaut around her face (found in about 0.1 s)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:256, 96:400])


def encode(image: Image.Image | np.ndarray, fmt: str, **kwargs: Any) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = _io.BytesIO()
    picture.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noise(seed: int, shape: tuple[int, int] = (256, 304)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(side: int = 30_000) -> bytes:
    """A PNG whose header claims side x side gray pixels, with almost no data."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def ztxt_png(text_bytes: int = 50 * 1024 * 1024) -> bytes:
    """The astronaut as a PNG with a zTXt chunk that inflates to ``text_bytes`` (50 MB; 50 KB
    on disk), placed before the pixels, where Pillow reads it on open."""
    png = encode(head(), "PNG")
    payload = b"Comment\x00\x00" + zlib.compress(b"\x00" * text_bytes, 9)
    at = png.index(b"IDAT") - 4
    return png[:at] + png_chunk(b"zTXt", payload) + png[at:]


def exif_rotated() -> bytes:
    """Stored on its side, EXIF orientation 6: upright (304x256) only once the tag is applied."""
    stored = Image.fromarray(head()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=90, exif=exif.tobytes())


def sixteen_bit() -> bytes:
    gray = np.asarray(Image.fromarray(head()).convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


def float_tiff() -> bytes:
    gray = np.asarray(Image.fromarray(head()).convert("L"), dtype=np.float32) / 255.0
    return encode(Image.fromarray(gray, "F"), "TIFF")


def alpha_png() -> bytes:
    rgba = np.dstack([head(), np.full(head().shape[:2], 255, np.uint8)])
    rgba[:8, :, 3] = 0  # a transparent strip: composited on white
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(head()), noise(1), noise(2)]
    extra = {"loop": 0} if fmt == "GIF" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **extra)


def big(fmt: str) -> bytes:
    """A flat-colour 8000x6000 photo: legal, and quick to encode."""
    picture = Image.new("RGB", BIG, (150, 120, 100))
    options = {"quality": 80} if fmt == "JPEG" else {"compress_level": 1}
    return encode(picture, fmt, **options)


def truncated_jpeg() -> bytes:
    data = encode(head(), "JPEG", quality=90)
    return data[: len(data) // 2]


def tiny_video() -> bytes:
    """Six 64x64 frames of noise as an MP4 (OpenCV's mp4v); a valid video with no face."""
    import tempfile

    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clip.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 64))
        for seed in range(6):
            writer.write(np.asarray(noise(seed, (64, 64)))[:, :, ::-1].copy())
        writer.release()
        return Path(path).read_bytes()


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>\n'
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>\n"


# -- the kinds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How to make one kind at any place: ``content`` (regular file bytes) or ``make`` (a link,
    a FIFO, a folder); ``deny`` makes it unreadable; ``name`` is its file name."""

    kind: str
    name: str
    expect: str
    content: Callable[[], bytes] | None = None
    make: Callable[[Path], None] | None = None
    deny: bool = False
    commands: frozenset[str] = EVERYWHERE
    face: bool = False
    size: tuple[int, int] | None = None
    reason: str | None = None


def _jpeg() -> bytes:
    return encode(head(), "JPEG", quality=90)


def _symlink(target: str, directory: bool = False) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target, target_is_directory=directory)


def _locked_folder(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "inside.jpg").write_bytes(_jpeg())


def _bytes(data: bytes) -> Callable[[], bytes]:
    return lambda: data


HEAD_SIZE = (304, 256)
SPECS: tuple[Spec, ...] = (
    # good images: the astronaut in every encoding ferkit reads, and the odd sizes
    Spec("jpeg", "ok-astronaut.jpg", "ok", _jpeg, face=True, size=HEAD_SIZE),
    Spec("png", "ok-astronaut-png.png", "ok", lambda: encode(head(), "PNG"), face=True),
    Spec("16-bit png", "ok-16bit.png", "ok", sixteen_bit, face=True, size=HEAD_SIZE),
    Spec(
        "cmyk jpeg",
        "ok-cmyk.jpg",
        "ok",
        lambda: encode(Image.fromarray(head()).convert("CMYK"), "JPEG", quality=90),
        face=True,
    ),
    Spec(
        "palette png",
        "ok-palette.png",
        "ok",
        lambda: encode(Image.fromarray(head()).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        face=True,
    ),
    Spec("alpha png", "ok-alpha.png", "ok", alpha_png, face=True),
    Spec("exif-rotated jpeg", "ok-exif-rotated.jpg", "ok", exif_rotated, face=True, size=HEAD_SIZE),
    Spec("animated gif", "ok-animated.gif", "ok", lambda: animated("GIF"), face=True),
    Spec("animated webp", "ok-animated-webp.webp", "ok", lambda: animated("WEBP"), face=True),
    Spec("apng", "ok-apng.png", "ok", lambda: animated("PNG"), face=True),
    Spec(
        "multipage tiff",
        "ok-multipage.tiff",
        "ok",
        lambda: encode(Image.fromarray(head()), "TIFF", save_all=True, append_images=[noise(3)]),
        face=True,
    ),
    Spec("float tiff", "ok-float.tif", "ok", float_tiff, face=True, size=HEAD_SIZE),
    Spec("1x1 png", "ok-1x1.png", "ok", lambda: encode(np.zeros((1, 1, 3), np.uint8), "PNG")),
    Spec("unicode name", "ok-ünïcødé-笑顔.jpg", "ok", _jpeg, face=True),
    Spec("newline name", "ok-new\nline.jpg", "ok", _jpeg, face=True),
    Spec("8000x6000 jpeg", "ok-8000x6000.jpg", "ok", lambda: big("JPEG"), size=BIG),
    Spec("8000x6000 png", "ok-8000x6000-png.png", "ok", lambda: big("PNG"), size=BIG),
    Spec(
        "image in a sub-folder",
        "sub/ok-in-sub.jpg",
        "ok",
        _jpeg,
        face=True,
        commands=EVERYWHERE - {YOLO},  # YOLO images/ holds files only (reported as a folder)
    ),
    Spec("mp4 video", "ok-clip.mp4", "ok", tiny_video, commands=frozenset({PREDICT})),
    # bad contents
    Spec("zero-byte", "zero-byte.jpg", "reject", _bytes(b"")),
    Spec("truncated jpeg", "truncated.jpg", "reject", truncated_jpeg),
    Spec("random bytes", "random-bytes.png", "reject", lambda: os.urandom(4096)),
    Spec("html named .jpg", "html-page.jpg", "reject", _bytes(HTML)),
    Spec("pdf named .png", "document-pdf.png", "reject", _bytes(PDF)),
    Spec("svg named .png", "drawing-svg.png", "reject", _bytes(SVG)),
    Spec("png bomb", "bomb-30000x30000.png", "reject", png_bomb),
    Spec("png with a 50 MB zTXt chunk", "ztxt-50mb.png", "reject", ztxt_png),
    Spec("zero-byte mp4", "zero.mp4", "reject", _bytes(b"")),
    Spec("corrupt mp4", "corrupt.mp4", "reject", lambda: b"\x00\x00\x00\x18ftypmp42" + bytes(999)),
    # file-system oddities
    Spec(
        "fifo named .jpg",
        "fifo.jpg",
        "reject",
        make=lambda p: os.mkfifo(p),
        commands=ON_DISK,
        reason=NOT_REGULAR,
    ),
    Spec(
        "symlink loop (a)",
        "loop-a.jpg",
        "reject",
        make=_symlink("loop-b.jpg"),
        commands=ON_DISK,
        reason=LINK,
    ),
    Spec(
        "symlink loop (b)",
        "loop-b.jpg",
        "reject",
        make=_symlink("loop-a.jpg"),
        commands=ON_DISK,
        reason=LINK,
    ),
    Spec(
        "broken link",
        "broken-link.jpg",
        "reject",
        make=_symlink("does-not-exist.jpg"),
        commands=ON_DISK,
    ),
    Spec(
        "folder link to its parent",
        "up",
        "reject",
        make=_symlink("..", directory=True),
        commands=ON_DISK,
        reason=LINK,
    ),
    Spec(
        "unreadable file",
        "unreadable.jpg",
        "reject",
        _jpeg,
        deny=True,
        commands=ON_DISK,
        reason=UNREADABLE,
    ),
    Spec(
        "unreadable sub-folder",
        "locked",
        "reject",
        make=_locked_folder,
        deny=True,
        commands=ON_DISK,
        reason=UNREADABLE,
    ),
)

# given to predict by name only (a folder walk never sees a missing path)
NAMED_SPECS: tuple[Spec, ...] = (
    Spec(
        "unreadable file given by name",
        "unreadable-named.jpg",
        "reject",
        _jpeg,
        deny=True,
        commands=frozenset({PREDICT}),
        reason=UNREADABLE,
    ),
    Spec(
        "fifo given by name",
        "fifo-named.jpg",
        "reject",
        make=lambda p: os.mkfifo(p),
        commands=frozenset({PREDICT}),
        reason=NOT_REGULAR,
    ),
    Spec(
        "broken link given by name",
        "broken-named.jpg",
        "reject",
        make=_symlink("does-not-exist.jpg"),
        commands=frozenset({PREDICT}),
    ),
    Spec(
        "missing path",
        "missing.jpg",
        "reject",
        make=lambda p: None,
        commands=frozenset({PREDICT}),
        reason=MISSING,
    ),
)


SAD_SPECS = tuple(Spec(f"jpeg (sad {i})", f"sad-{i}.jpg", "ok", _jpeg, face=True) for i in range(2))
LOCKED_CLASS = Spec(
    "unreadable class folder",
    "surprise",
    "reject",
    make=_locked_folder,
    deny=True,
    commands=ON_DISK,
    reason=UNREADABLE,
)
LABEL_KINDS = (  # YOLO: good photos whose label files are hostile
    ("label file of 20,000 faces", "many-faces.jpg", 20_000),
    ("label file of 2.1 MB", "huge-label.jpg", 2_100_000 // len(LABEL_LINE) + 1),
)
YAML_KINDS = ("data.yaml billion laughs", "data.yaml 5000-deep brackets")


def kinds(command: str) -> list[str]:
    """The kinds tried on ``command``, known before anything is written (test ids)."""
    names = [s.kind for s in SPECS + NAMED_SPECS if command in s.commands]
    if command in (FOLDERS, EVALUATE):
        names += [s.kind for s in SAD_SPECS] + [LOCKED_CLASS.kind]
    if command == YOLO:
        names += [kind for kind, _, _ in LABEL_KINDS] + list(YAML_KINDS)
    return names


@cache
def _content(spec: Spec) -> bytes:
    assert spec.content is not None
    return spec.content()


def place(spec: Spec, path: Path, denied: list[Path]) -> Case:
    """Write ``spec`` at ``path`` and return its case."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.content is not None:
        path.write_bytes(_content(spec))
    elif spec.make is not None:
        spec.make(path)
    if spec.deny:
        deny(path, denied)
    return Case(spec.kind, path, spec.expect, spec.commands, spec.face, spec.size, spec.reason)


def deny(path: Path, denied: list[Path]) -> None:
    """Make ``path`` unreadable (for root too, through :func:`cli_main`)."""
    path.chmod(0)
    denied.append(path)


def _specs(specs: Iterable[Spec], skip: Iterable[str]) -> list[Spec]:
    left_out = set(skip)
    return [spec for spec in specs if spec.kind not in left_out]


def write_corpus(folder: Path, skip: Iterable[str] = ()) -> Corpus:
    """Every kind under ``folder/images`` (walked by predict, posted to serve; no two files
    share a stem, as YOLO labels need) plus the inputs
    given by name under ``folder/named``; ``inputs`` is predict's command line. ``skip``
    leaves kinds out (to see past one that stops a whole run)."""
    images, named = folder / "images", folder / "named"
    images.mkdir(parents=True)
    denied: list[Path] = []
    cases = [place(spec, images / spec.name, denied) for spec in _specs(SPECS, skip)]
    by_name = _specs(NAMED_SPECS, skip)
    cases += [place(spec, named / spec.name, denied) for spec in by_name]
    inputs = [images] + [named / spec.name for spec in by_name]
    return Corpus(folder, cases, inputs, denied)


def release(corpus: Corpus) -> None:
    """Give the denied paths their permissions back, so the folder can be removed."""
    for path in corpus.denied:
        with contextlib.suppress(OSError):
            path.chmod(0o755)


# -- dataset layouts ---------------------------------------------------------------------------


def class_folder_dataset(folder: Path, skip: Iterable[str] = ()) -> Corpus:
    """Every kind in ``happy/``, two more photos in ``sad/``, and an unreadable class folder
    ``surprise/``: a folder of class folders without splits (evaluate scores all of it)."""
    denied: list[Path] = []
    (folder / "happy").mkdir(parents=True)
    cases = [
        place(spec, folder / "happy" / spec.name, denied)
        for spec in _specs(SPECS, skip)
        if spec.commands & {FOLDERS, EVALUATE}
    ]
    cases += [place(spec, folder / "sad" / spec.name, denied) for spec in SAD_SPECS]
    for spec in _specs([LOCKED_CLASS], skip):
        cases.append(place(spec, folder / spec.name, denied))
    only = frozenset({FOLDERS, EVALUATE})
    return Corpus(folder, [replace(c, commands=c.commands & only) for c in cases], [folder], denied)


def _label_for(image: Path) -> Path:
    return image.parent.parent / "labels" / (Path(image.name).stem + ".txt")


def yolo_dataset(folder: Path, skip: Iterable[str] = ()) -> Corpus:
    """A YOLO dataset (``train`` only): every kind in ``train/images`` with a one-face label
    (the file-system oddities too), plus two good photos whose labels are hostile: 20,000 faces,
    and 2.1 MB of them."""
    images = folder / "train" / "images"
    denied: list[Path] = []
    images.mkdir(parents=True)
    cases = []
    for spec in _specs(SPECS, skip):
        if YOLO not in spec.commands:
            continue
        case = place(spec, images / spec.name, denied)
        if Path(spec.name).suffix:  # a link or a FIFO named .jpg gets a label like an image
            label = _label_for(case.path)
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(LABEL_LINE)
            cases.append(replace(case, aliases=(label,)))
        else:  # YOLO ignores any folder inside images/: saying so is reason enough
            cases.append(replace(case, reason=None))
    for kind, name, lines in LABEL_KINDS:
        if kind in set(skip):
            continue
        path = images / name
        path.write_bytes(_jpeg())
        _label_for(path).write_text(LABEL_LINE * lines)
        cases.append(Case(kind, path, "reject", frozenset({YOLO}), aliases=(_label_for(path),)))
    names = ", ".join(f'"{n}"' for n in YOLO_NAMES)
    (folder / "data.yaml").write_text(f'train: "./train/images"\nnc: 3\nnames: [{names}]\n')
    only = frozenset({YOLO})
    return Corpus(folder, [replace(c, commands=c.commands & only) for c in cases], [folder], denied)


BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["names: [*i, *i, *i, *i, *i, *i, *i, *i, *i]", 'train: "./train/images"', ""]
)
DEEP_BRACKETS = 'train: "./train/images"\nnames: ' + "[" * 5000 + '"x"' + "]" * 5000 + "\n"


def hostile_yaml_datasets(folder: Path, skip: Iterable[str] = ()) -> list[Case]:
    """One small good YOLO dataset per hostile data.yaml (billion laughs as ``names``, 5000-deep
    brackets): a bad data.yaml fails the whole load by design, as one clear line."""
    cases = []
    for kind, name, text in zip(
        YAML_KINDS, ("yolo-laughs", "yolo-deep"), (BILLION_LAUGHS, DEEP_BRACKETS), strict=True
    ):
        if kind in set(skip):
            continue
        root = folder / name
        image = root / "train" / "images" / "face.jpg"
        image.parent.mkdir(parents=True)
        image.write_bytes(_jpeg())
        _label_for(image).parent.mkdir(parents=True)
        _label_for(image).write_text(LABEL_LINE)
        (root / "data.yaml").write_text(text)
        cases.append(Case(kind, root / "data.yaml", "reject", frozenset({YOLO})))
    return cases


# -- running the CLI ---------------------------------------------------------------------------


def install_denials(paths: Iterable[str]) -> None:
    """Make opening, listing or ``os.access`` of ``paths`` (and anything below them) fail with
    EACCES, as it does for a user other than root; stat still works, as with ``chmod 000``."""
    import builtins
    import io

    denied = [os.path.abspath(p) for p in paths if p]
    if not denied:
        return

    def blocked(path: Any) -> bool:
        if isinstance(path, int):
            return False
        try:
            text = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return any(text == d or text.startswith(d + os.sep) for d in denied)

    def guard(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            if blocked(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
            return original(path, *args, **kwargs)

        return guarded

    builtins.open = io.open = guard(builtins.open)
    os.open, os.scandir, os.listdir = guard(os.open), guard(os.scandir), guard(os.listdir)
    real_access = os.access
    wanted = os.R_OK | os.W_OK | os.X_OK  # F_OK (does it exist?) is still answered truly

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        return False if mode & wanted and blocked(path) else real_access(path, mode, **kwargs)

    os.access = access


def cli_main() -> None:
    """``python -c 'import hostile_corpus; hostile_corpus.cli_main()' ARGS``: ferkit's CLI with
    the paths in $FERKIT_HOSTILE_DENY unreadable."""
    install_denials(os.environ.get(DENY_ENV, "").split(os.pathsep))
    from ferkit.cli import app

    app(prog_name="ferkit")


@dataclass
class Run:
    """One command's run: exit code (None when killed at the time limit), output, seconds."""

    command: str
    args: list[str]
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timeout: float

    @property
    def timed_out(self) -> bool:
        return self.rc is None

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr + self.stdout

    def stdout_json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None


def environment(denied: Iterable[Path], cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(SRC), str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        FERKIT_CACHE_DIR=str(cache_dir),
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
    )
    env[DENY_ENV] = os.pathsep.join(str(p) for p in denied)
    env.pop("COLUMNS", None)
    return env


def run_cli(
    command: str,
    args: list[str],
    *,
    cwd: Path,
    denied: Iterable[Path] = (),
    timeout: float = 120.0,
) -> Run:
    """``ferkit ARGS`` in a fresh interpreter, killed (with its children) at ``timeout``."""
    code = "import hostile_corpus; hostile_corpus.cli_main()"
    argv = [sys.executable, "-c", code, *args]
    env = environment(denied, cwd / ".ferkit-cache")
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    seconds = time.perf_counter() - start
    text = (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")
    return Run(command, args, rc, text[0], text[1], seconds, timeout)


def leftover_temp_files(folder: Path) -> list[Path]:
    """Temp files an interrupted atomic write leaves: ferkit.io names them ``.NAME.*SUFFIX``
    (``.tmp``, or the target's own, ``.mp4``), and ferkit writes no other hidden file."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob(".*") if p.is_file())


# -- judging -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    command: str
    case: str
    expect: str
    outcome: str
    detail: str = ""

    @property
    def good(self) -> bool:
        return self.outcome in (OK, CLEAR)


def _norm(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.fsdecode(path))


def _names(case: Case) -> list[str]:
    return [_norm(p) for p in (case.path, *case.aliases)]


def reported(document: Any) -> list[tuple[str, str]]:
    """Every (path, reason) pair anywhere in a JSON document: a dict with a ``reason`` and a
    ``path``, ``file`` or ``source``."""
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            where = next((node[k] for k in ("path", "file", "source") if k in node), None)
            if isinstance(where, str) and "reason" in node:
                found.append((_norm(where), str(node["reason"] or "")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def reasons_in_text(text: str, case: Case) -> list[str]:
    """Reasons printed after ``PATH:`` in a command's text output."""
    found = []
    for name in _names(case):
        start = 0
        while (at := text.find(name + ":", start)) >= 0:
            start = at + len(name) + 1
            rest = text[start:].split("\n", 1)[0].strip()
            if rest:
                found.append(rest)
    return found


def _reject_verdict(command: str, case: Case, reasons: list[str], processed: bool) -> Verdict:
    if processed:
        return Verdict(command, case.name, case.expect, WRONG, "processed as a good input")
    if not reasons:
        return Verdict(command, case.name, case.expect, DROP, "not reported")
    if not any(r.strip() for r in reasons):
        return Verdict(command, case.name, case.expect, WRONG, "reported without a reason")
    if case.reason and not any(re.search(case.reason, r) for r in reasons):
        return Verdict(command, case.name, case.expect, WRONG, f"wrong reason: {reasons[0]}")
    return Verdict(command, case.name, case.expect, CLEAR, reasons[0])


def _run_failure(run: Run, allowed: tuple[int, ...]) -> tuple[str, str] | None:
    if run.timed_out:
        return HANG, f"killed after {run.timeout:.0f} s"
    if run.traceback:
        return TRACEBACK, last_exception(run.stderr + run.stdout)
    if run.rc not in allowed:
        return WRONG, f"the run aborted (exit {run.rc}): {error_line(run.stderr)}"
    return None


def error_line(text: str) -> str:
    """The line of an error output that says what went wrong (typer boxes its usage errors)."""
    lines = [ln.strip(" │╭╮╰╯─") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and ln != "Error"]
    for line in lines:
        if re.search(r"(?i)error|invalid|not readable", line) and "Try '" not in line:
            return line
    return lines[0] if lines else ""


def last_exception(text: str) -> str:
    """The exception line that ends the last traceback in ``text``."""
    tail = text[text.rfind("Traceback (most recent call last)") :].splitlines()
    found = [ln for ln in tail if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", ln)]
    return found[-1] if found else (tail[-1] if tail else "")


def _all_fail(command: str, cases: list[Case], failure: tuple[str, str]) -> list[Verdict]:
    return [Verdict(command, c.name, c.expect, *failure) for c in cases]


def _matches(case: Case, where: str) -> bool:
    return where in _names(case)


def judge_predict(run: Run, corpus: Corpus) -> list[Verdict]:
    """Each input: a result (faces found where the astronaut is, the original's size), or an
    error / skipped entry with a reason."""
    cases = corpus.for_command(PREDICT)
    failure = _run_failure(run, (0, 1))
    document = run.stdout_json()
    if failure is None and not isinstance(document, dict):
        failure = (WRONG, "no JSON document on stdout")
    if failure is not None:
        return _all_fail(PREDICT, cases, failure)
    results = {
        _norm(r["source"]): r for r in document.get("images", []) + document.get("videos", [])
    }
    problems = [
        (_norm(p["path"]), p.get("reason") or "")
        for key in ("errors", "skipped")
        for p in document.get(key, [])
    ]
    verdicts = []
    for case in cases:
        result = next((results[n] for n in _names(case) if n in results), None)
        reasons = [r for where, r in problems if _matches(case, where)]
        if case.expect == "reject":
            verdicts.append(_reject_verdict(PREDICT, case, reasons, result is not None))
        else:
            verdicts.append(_ok_result(PREDICT, case, result, reasons))
    return verdicts


def _ok_result(command: str, case: Case, result: dict | None, reasons: list[str]) -> Verdict:
    """A good input's result: present, its face found, its size the original's."""
    if result is None:
        if reasons:
            return Verdict(command, case.name, case.expect, WRONG, f"rejected: {reasons[0]}")
        return Verdict(command, case.name, case.expect, DROP, "no result")
    faces = result.get("faces")
    if faces is None and "frames" in result:  # a video
        return Verdict(command, case.name, case.expect, OK, f"{len(result['frames'])} frames")
    if case.face and not faces:
        return Verdict(command, case.name, case.expect, WRONG, "the astronaut's face not found")
    if case.size and (result.get("width"), result.get("height")) != case.size:
        got = f"{result.get('width')}x{result.get('height')}"
        return Verdict(
            command, case.name, case.expect, WRONG, f"size {got}, not {case.size[0]}x{case.size[1]}"
        )
    return Verdict(command, case.name, case.expect, OK, f"{len(faces or [])} face(s)")


def judge_inspect(run: Run, corpus: Corpus, command: str) -> list[Verdict]:
    """Each sample kind: a good image is not skipped, a bad one is listed with a reason."""
    cases = corpus.for_command(command)
    failure = _run_failure(run, (0, 1))
    document = run.stdout_json()
    if failure is None and not isinstance(document, dict):
        failure = (WRONG, "no JSON document on stdout")
    if failure is not None:
        return _all_fail(command, cases, failure)
    skipped = reported(document.get("skipped", []))
    warnings = reported(document.get("warnings", []))
    verdicts = []
    for case in cases:
        skips = [r for where, r in skipped if _matches(case, where)]
        if case.expect == "reject":
            notes = skips + [r for where, r in warnings if _matches(case, where)]
            verdicts.append(_reject_verdict(command, case, notes, processed=False))
        elif skips:
            verdicts.append(Verdict(command, case.name, case.expect, WRONG, f"skipped: {skips[0]}"))
        else:
            verdicts.append(Verdict(command, case.name, case.expect, OK, "loaded"))
    return verdicts


def inspect_total_check(run: Run, corpus: Corpus, command: str) -> Verdict:
    """Every good image is one sample; bad ones add none (a YOLO image with too many faces may
    keep a capped few, never thousands)."""
    document = run.stdout_json() if not run.timed_out else None
    good = sum(c.expect == "ok" for c in corpus.for_command(command))
    if not isinstance(document, dict):
        return Verdict(command, "sample count", "ok", WRONG, "no JSON document")
    total = document.get("total")
    slack = 1000 if command == YOLO else 0
    if not isinstance(total, int) or not good <= total <= good + slack:
        return Verdict(command, "sample count", "ok", WRONG, f"{total} samples, {good} good")
    return Verdict(command, "sample count", "ok", OK, f"{total} samples")


def judge_yaml(run: Run, case: Case) -> Verdict:
    """A hostile data.yaml: one clear line naming data.yaml, exit 2, in time."""
    failure = _run_failure(run, (2,))
    if failure is not None:
        return Verdict(YOLO, case.name, case.expect, *failure)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or "data.yaml" not in lines[0]:
        return Verdict(YOLO, case.name, case.expect, WRONG, f"error lines: {lines[:3]}")
    return Verdict(YOLO, case.name, case.expect, CLEAR, lines[0])


def judge_evaluate(run: Run, corpus: Corpus, report_path: Path) -> list[Verdict]:
    """Each image: scored when it shows a face, listed as not scored (no face) when it does not,
    listed with a reason when it cannot be read; nothing vanishes from the report."""
    cases = corpus.for_command(EVALUATE)
    failure = _run_failure(run, (0, 1))
    report = None
    if failure is None:
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError) as exc:
            failure = (WRONG, f"no metrics JSON: {exc}")
    if failure is not None or report is None:
        return _all_fail(EVALUATE, cases, failure or (WRONG, "no report"))
    no_face = {_norm(item["file"]): item["reason"] for item in report.get("no_face", [])}
    others = [(w, r) for w, r in reported(report) if w not in no_face]
    text = run.stderr + run.stdout
    verdicts = []
    for case in cases:
        missing = [no_face[n] for n in _names(case) if n in no_face]
        listed = [r for where, r in others if _matches(case, where)]
        if not listed and not missing:
            listed = reasons_in_text(text, case)
        if case.expect == "reject":
            verdicts.append(_reject_verdict(EVALUATE, case, listed + missing, processed=False))
            continue
        if listed:
            verdicts.append(Verdict(EVALUATE, case.name, "ok", WRONG, f"rejected: {listed[0]}"))
        elif case.face and missing:
            verdicts.append(Verdict(EVALUATE, case.name, "ok", WRONG, f"not scored: {missing[0]}"))
        elif not case.face and not missing:
            verdicts.append(Verdict(EVALUATE, case.name, "ok", DROP, "neither scored nor listed"))
        else:
            verdicts.append(Verdict(EVALUATE, case.name, "ok", OK, missing[0] if missing else ""))
    return verdicts


def evaluate_count_check(run: Run, corpus: Corpus, report_path: Path) -> Verdict:
    """As many samples scored as good images show a face."""
    faces = sum(c.expect == "ok" and c.face for c in corpus.for_command(EVALUATE))
    try:
        n = json.loads(report_path.read_text()).get("n")
    except (OSError, ValueError):
        n = None
    if n != faces:
        return Verdict(EVALUATE, "samples scored", "ok", WRONG, f"{n} scored, {faces} faces")
    return Verdict(EVALUATE, "samples scored", "ok", OK, f"{n} scored")


def atomic_check(command: str, out: Path) -> Verdict:
    left = leftover_temp_files(out)
    if left:
        return Verdict(command, "atomic outputs", "ok", WRONG, f"temp files left: {left[:3]}")
    return Verdict(command, "atomic outputs", "ok", OK, "no temp file left")


def run_check(run: Run, allowed: tuple[int, ...] = (0, 1)) -> Verdict:
    """The run as a whole: exit code, no traceback, within its time limit."""
    failure = _run_failure(run, allowed)
    if failure is not None:
        return Verdict(run.command, "the run", "ok", *failure)
    return Verdict(run.command, "the run", "ok", OK, f"exit {run.rc} in {run.seconds:.1f} s")


# -- serve -------------------------------------------------------------------------------------

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".mp4": "video/mp4",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_server(cwd: Path, timeout: float = 60.0) -> Iterator[tuple[str, Callable[[], str]]]:
    """``ferkit serve`` (the default model) on a free loopback port: its URL and a function
    that returns what it has written to stderr so far; stopped (SIGINT, then SIGKILL) after."""
    import httpx

    port = free_port()
    log = cwd / "serve.log"
    code = "import hostile_corpus; hostile_corpus.cli_main()"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", str(port)],
            cwd=cwd,
            env=environment((), cwd / ".ferkit-cache"),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ferkit serve exited {proc.returncode}: {log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ferkit serve did not answer in {timeout:.0f} s")
            time.sleep(0.3)
        yield url, lambda: log.read_text(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve_cases(corpus: Corpus) -> list[Case]:
    """The cases with bytes to post (links, FIFOs and folders have none)."""
    denied = {_norm(p) for p in corpus.denied}
    return [
        c
        for c in corpus.for_command(SERVE)
        if _norm(c.path) not in denied and c.path.is_file() and not c.path.is_symlink()
    ]


def post_all(url: str, corpus: Corpus, timeout: float = 60.0) -> dict[str, Any]:
    """POST each case's bytes as the multipart field ``image``: case name -> httpx response,
    or the exception when none came back in ``timeout`` seconds."""
    import httpx

    answers: dict[str, Any] = {}
    answers["(limits)"] = httpx.get(f"{url}/api/health", timeout=timeout).json().get("limits", {})
    for case in serve_cases(corpus):
        suffix = case.path.suffix.lower()
        kind = CONTENT_TYPES.get(suffix, "application/octet-stream")
        upload = {"image": (f"upload{suffix}", case.path.read_bytes(), kind)}
        try:  # a connection of its own: one the server broke is not blamed on the next input
            answers[case.name] = httpx.post(f"{url}/api/predict", files=upload, timeout=timeout)
        except httpx.HTTPError as exc:
            answers[case.name] = exc
    return answers


def _over_limits(case: Case, limits: dict[str, Any]) -> bool:
    """True when a good image lies beyond the limits the server declares (max bytes, pixels):
    then a clear 413 is the right answer."""
    size = case.path.stat().st_size
    if size > limits.get("max_bytes", size):
        return True
    pixels = case.size[0] * case.size[1] if case.size else 0
    return pixels > limits.get("max_pixels", pixels)


def judge_serve(answers: dict[str, Any], corpus: Corpus) -> list[Verdict]:
    """A good image: 200 with its faces (or a JSON 413 when beyond the declared limits); a bad
    one: a JSON 4xx with the reason; never a 500, a non-JSON body or no answer."""
    limits = answers.get("(limits)", {})
    verdicts = []
    for case in serve_cases(corpus):
        answer = answers.get(case.name)
        verdicts.append(_serve_verdict(case, answer, limits))
    return verdicts


def _serve_verdict(case: Case, answer: Any, limits: dict[str, Any]) -> Verdict:
    def verdict(outcome: str, detail: str) -> Verdict:
        return Verdict(SERVE, case.name, case.expect, outcome, detail)

    if answer is None or isinstance(answer, Exception):
        return verdict(HANG, f"no answer: {answer!r}")
    try:
        body = answer.json()
    except ValueError:
        body = None
    status = answer.status_code
    if status >= 500:
        return verdict(TRACEBACK if status == 500 else WRONG, f"{status}: {answer.text[:120]}")
    if not isinstance(body, dict):
        return verdict(WRONG, f"{status} without a JSON body: {answer.text[:120]}")
    if case.expect == "reject":
        if status == 200:
            return verdict(WRONG, "answered 200 (processed)")
        error = str(body.get("error") or "")
        return (
            verdict(CLEAR, f"{status}: {error}") if error else verdict(WRONG, f"{status} no reason")
        )
    if status == 413 and _over_limits(case, limits):
        return verdict(OK, f"413 beyond the declared limits: {body.get('error')}")
    if status != 200:
        return verdict(WRONG, f"{status}: {body.get('error')}")
    return _ok_result(SERVE, case, body, [])


# -- everything at once (the benchmark) --------------------------------------------------------


def run_everything(
    folder: Path, timeout: float = 60.0, model: str = "fer2013", skip: Iterable[str] = ()
) -> list[Verdict]:
    """Build the corpus under ``folder`` (less the kinds in ``skip``) and run every command on
    it: all verdicts, the checks on the runs as a whole included."""
    skip = set(skip)
    verdicts: list[Verdict] = []
    folder.mkdir(parents=True, exist_ok=True)
    corpora = []
    try:
        flat = write_corpus(folder / "corpus", skip)
        folders = class_folder_dataset(folder / "classes", skip)
        yolo = yolo_dataset(folder / "yolo", skip)
        corpora = [flat, folders, yolo]
        yaml_cases = hostile_yaml_datasets(folder / "yaml", skip)
        out = folder / "predicted"
        args = ["predict", *map(str, flat.inputs), "--json", "--out", str(out)]
        run = run_cli(PREDICT, args, cwd=folder, denied=flat.denied, timeout=timeout)
        verdicts += [run_check(run), atomic_check(PREDICT, out), *judge_predict(run, flat)]
        for command, corpus in ((FOLDERS, folders), (YOLO, yolo)):
            args = ["inspect", str(corpus.root), "--json"]
            run = run_cli(command, args, cwd=folder, denied=corpus.denied, timeout=timeout)
            verdicts += [run_check(run), inspect_total_check(run, corpus, command)]
            verdicts += judge_inspect(run, corpus, command)
        for case in yaml_cases:
            args = ["inspect", str(case.path.parent), "--json"]
            verdicts.append(judge_yaml(run_cli(YOLO, args, cwd=folder, timeout=timeout), case))
        report, out = folder / "metrics.json", folder / "evaluated"
        args = ["evaluate", model, str(folders.root), "--faces", "detect"]
        args += ["--json", str(report), "--out", str(out)]
        run = run_cli(EVALUATE, args, cwd=folder, denied=folders.denied, timeout=timeout)
        verdicts += [run_check(run), atomic_check(EVALUATE, out)]
        verdicts += [evaluate_count_check(run, folders, report)]
        verdicts += judge_evaluate(run, folders, report)
        with live_server(folder) as (url, log):
            answers = post_all(url, flat)
            verdicts += judge_serve(answers, flat)
            text = log()
        verdicts.append(serve_log_check(text))
    finally:
        for corpus in corpora:
            release(corpus)
    return verdicts


def serve_log_check(log: str) -> Verdict:
    """The server's own output: no traceback (an error answered as JSON is logged as one line)."""
    if "Traceback (most recent call last)" in log:
        return Verdict(SERVE, "the run", "ok", TRACEBACK, last_exception(log))
    return Verdict(SERVE, "the run", "ok", OK, "no traceback in its log")


def tally(verdicts: Iterable[Verdict]) -> dict[str, dict[str, int]]:
    """Per command: kinds tried, ok, clear error, and each failure (the case verdicts only)."""
    table: dict[str, dict[str, int]] = {}
    case_verdicts = [v for v in verdicts if v.case not in CHECKS]
    for v in case_verdicts:
        row = table.setdefault(v.command, {k: 0 for k in ("tried", OK, CLEAR, *FAILURES)})
        row["tried"] += 1
        row[v.outcome] += 1
    return table


CHECKS = frozenset({"the run", "atomic outputs", "sample count", "samples scored"})


def remove(folder: Path) -> None:
    """Remove a corpus folder (FIFOs, links and locked folders included)."""
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)
