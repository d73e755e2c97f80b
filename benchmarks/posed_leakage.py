"""A synthetic posed-expression dataset for the leakage rehearsal of issue 20 (docs/BENCHMARKS.md).

Class folders, no split, CK+-style names (``S010_004_00000017.png``): each of ``subjects``
people poses each of 4 expressions in a sequence of 6 near-identical 48x48 frames. The person's
face (noise, sd 40) and the sequence's own look (sd 10) dominate the pixels; the expression is a
band ``amplitude`` grey levels brighter, its position set by the class. A random hold-out puts
frames of every sequence on both sides (memorising them scores ~100%); a hold-out by subject
measures what transfers to new people.

    python benchmarks/posed_leakage.py /tmp/posed --subjects 50 --amplitude 4
    ferkit study /tmp/posed --out random --quick --models convnet --no-happy-sad --group-by none
    ferkit study /tmp/posed --out subject --quick --models convnet --no-happy-sad
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("angry", "happy", "sad", "surprise")


def write_posed(root: Path, subjects: int = 50, amplitude: float = 4.0, seed: int = 0) -> int:
    """Write the dataset under ``root``; returns the number of images."""
    rng = np.random.default_rng(seed)
    n = 0
    for s in range(1, subjects + 1):
        face = rng.normal(128, 40, (48, 48))
        for label, name in enumerate(CLASSES):
            sequence = rng.normal(0, 10, (48, 48))
            for frame in range(1, 7):
                img = face + sequence + rng.normal(0, 3, (48, 48))
                img[8 + 9 * label : 14 + 9 * label] += amplitude
                path = root / name / f"S{s:03d}_{label + 1:03d}_{frame:08d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
                n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--amplitude", type=float, default=4.0)
    args = parser.parse_args()
    print(f"{write_posed(args.root, args.subjects, args.amplitude)} images in {args.root}")


if __name__ == "__main__":
    main()
