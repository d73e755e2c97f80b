"""One image explained with a run: the pixels the network is shown (its largest face, cut
as ``ferkit predict`` cuts it), Grad-CAM, feature maps and ``explain.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ferkit import io
from ferkit.data.images import Color, ImageProblem, decode_image, peek_image
from ferkit.errors import FerkitError
from ferkit.evaluation.explaining.feature_maps import feature_maps
from ferkit.evaluation.explaining.figures import feature_map_figure, gradcam_figure
from ferkit.evaluation.explaining.gradcam import grad_cam
from ferkit.evaluation.explaining.layers import MIN_CAM_SIDE, layer_table, resolve_layer
from ferkit.records import ExplainResult

GRADCAM_FILE = "gradcam.png"
FEATURE_MAPS_FILE = "feature_maps.png"
EXPLAIN_FILE = "explain.json"
CROPS = ("auto", "face", "whole")


def resolve_target(
    target: int | str | None, classes: list[str], canonical: list[str] | None = None
) -> int | None:
    """Class index for ``target``: an index (int or digit string) or a class name in any case
    (the run's own names first, then canonical names). Unknown names are a FerkitError that
    lists the classes, so ``--target hapy`` says what to type instead."""
    if target is None:
        return None
    listing = ", ".join(f"{i}={c}" for i, c in enumerate(classes))
    if isinstance(target, bool):
        raise FerkitError(f"unknown target class {target!r}; classes: {listing}")
    if isinstance(target, int | np.integer):
        index = int(target)
    else:
        text = str(target).strip()
        if text.lstrip("-").isdigit():
            index = int(text)
        else:
            for names in (classes, canonical or []):
                lowered = [c.lower() for c in names]
                if text.lower() in lowered:
                    return lowered.index(text.lower())
            raise FerkitError(f"unknown target class {target!r}; classes: {listing}")
    if not 0 <= index < len(classes):
        raise FerkitError(f"target class index {index} is out of range; classes: {listing}")
    return index


def _decode(image_path: Path, size: int | None, color: Color) -> np.ndarray:
    """The image at the run's size/colour; any failure names the file."""
    if not image_path.exists():
        raise FerkitError(f"{image_path}: no such image file")
    if image_path.is_dir():
        raise FerkitError(f"{image_path}: is a folder, not an image file")
    try:
        # a writable copy: torch warns on (and must not alias) Pillow's read-only buffer
        return np.array(decode_image(image_path, size=size, color=color))
    except ImageProblem as exc:
        raise FerkitError(f"{image_path}: {exc}") from exc


def _explained_pixels(
    run: Any, image_path: Path, crop: str, detector: str
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """What the network is shown, and which face that was.

    A face crop (a dataset image) is shown whole. A photo is cut to its largest face, found,
    aligned and framed as ``ferkit predict`` does for this model, so the explanation is of the
    prediction a user gets; a whole 512 px photo squeezed to 96 px says nothing about a face.
    ``auto`` takes images up to twice the model's side as crops and falls back to the whole
    image (saying so) when a larger one shows no face; ``face`` insists on a face.
    """
    if crop not in CROPS:
        raise FerkitError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    header = peek_image(image_path) if crop == "auto" else None  # size without decoding
    if crop == "whole" or (header is not None and max(header[:2]) <= 2 * run.image_size):
        return _decode(image_path, run.image_size, run.color), None
    photo = _decode(image_path, None, "rgb")
    height, width = photo.shape[:2]
    from ferkit.faces.framing import framing_name, largest_face

    face, found = largest_face(photo, run, detector)
    if face is None:
        if crop == "face":
            raise FerkitError(
                f"{image_path}: no face found in this {width}x{height} image; "
                "explain the whole image with crop 'whole' (--crop whole)"
            )
        note = f"no face found in this {width}x{height} image: the whole image is explained"
        whole = _decode(image_path, run.image_size, run.color)
        return whole, {"faces_found": 0, "note": note}
    box = face.box
    return np.array(face.crop), {
        "faces_found": found,
        "box": {"left": box.left, "top": box.top, "width": box.width, "height": box.height},
        "framing": framing_name(run.card),
        "quality_ok": face.quality.ok,
        "quality_reasons": list(face.quality.reasons),
    }


def _model_name(model: nn.Module) -> str:
    """Registry name of a ferkit network (from its config), else the class name."""
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return config["name"]
    return type(model).__name__


def _torch_run(run: Any) -> Any:
    """``run`` (a folder, shipped name or ``Run``) with its torch network loaded: Grad-CAM needs
    the module's gradients, whatever backend serves predictions."""
    from ferkit.models.store import Run, load_run

    if not isinstance(run, Run) or run.backend == "onnx":
        run = load_run(run.path if isinstance(run, Run) else run, backend="torch")
    if run.kind != "torch":
        raise FerkitError(
            f"{run.path}: explanations need a neural-network run; this is a {run.kind!r} run"
        )
    return run


def run_layers(run: Any) -> dict[str, Any]:
    """The layers ``explain_image`` can explain for a run, for ``ferkit explain --list-layers``:
    each with its (C, H, W) output at the run's input size and the default marked."""
    run = _torch_run(run)
    model: nn.Module = run.estimator.model
    rows = layer_table(model)
    channels = 1 if run.color == "gray" else 3
    return {
        "run": str(run.path),
        "model": _model_name(model),
        "input": [channels, run.image_size, run.image_size],
        "default": next((row["name"] for row in rows if row["default"]), None),
        "min_side": MIN_CAM_SIDE,
        "layers": rows,
    }


def explain_image(
    run: Any,
    image_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    layer: str | None = None,
    target: int | str | None = None,
    max_maps: int = 32,
    crop: str = "auto",
    detector: str = "auto",
) -> ExplainResult:
    """Explain one image with a neural run (a run folder or a loaded ``Run``).

    A photo is first cut to its largest face as ``ferkit predict`` cuts it (``crop``: ``auto``,
    ``face`` or ``whole``; see :func:`_explained_pixels`; ``detector`` names the face
    detector). The pixels are brought to the run's size and colour and normalised as in
    training, then written into ``out_dir``:

    * ``gradcam.png``: input | Grad-CAM | overlay for ``target`` (default: the predicted class),
    * ``feature_maps.png``: the first ``max_maps`` channels of ``layer`` (default: see
      :func:`default_layer`),
    * ``explain.json``: the returned record's ``to_dict()`` (prediction, per-class
      probabilities, layer, target,
      the face explained (None for a crop), file names relative to ``out_dir``), so scripts
      need not parse figures.
    """
    if isinstance(max_maps, bool) or not isinstance(max_maps, int) or max_maps < 1:
        raise FerkitError(f"max_maps must be an integer >= 1, got {max_maps!r}")
    run = _torch_run(run)
    classifier = run.estimator
    model: nn.Module = classifier.model
    name = resolve_layer(model, layer)
    target_index = resolve_target(target, run.classes, run.canonical)

    image_path = Path(image_path)
    pixels, face = _explained_pixels(run, image_path, crop, detector)
    x = classifier.to_tensor(pixels[None])
    heat, explained, probs = grad_cam(model, x, name, target_index)
    maps = feature_maps(model, x, name)

    predicted = int(np.argmax(probs))
    names = list(run.canonical)  # lower-case canonical labels, as every command prints them
    out = Path(out_dir)
    files = {"gradcam": GRADCAM_FILE, "feature_maps": FEATURE_MAPS_FILE, "json": EXPLAIN_FILE}
    cam_fig = gradcam_figure(
        pixels,
        heat,
        names[predicted],
        float(probs[predicted]),
        names[explained] if target_index is not None else None,
        float(probs[explained]) if target_index is not None else None,
    )
    io.save_figure(cam_fig, out / GRADCAM_FILE, dpi=120)
    map_fig = feature_map_figure(maps, max_maps, title=f"{run.name} / {name}")
    io.save_figure(map_fig, out / FEATURE_MAPS_FILE, dpi=120)

    result = {
        "image": str(image_path),
        "run": str(run.path),
        "model": _model_name(model),
        "layer": name,
        "face": face,
        "predicted": {
            "index": predicted,
            "class": names[predicted],
            "probability": float(probs[predicted]),
        },
        "probabilities": {c: float(p) for c, p in zip(names, probs, strict=True)},
        "target": (
            None if target_index is None else {"index": explained, "class": names[explained]}
        ),
        "gradcam_class": {"index": explained, "class": names[explained]},
        "feature_maps": {
            "channels": int(maps.shape[0]),
            "shown": min(int(max_maps), int(maps.shape[0])),
            "size": [int(maps.shape[1]), int(maps.shape[2])],
        },
        "files": files,
    }
    io.write_json(out / EXPLAIN_FILE, result)
    return ExplainResult.from_dict(result, out / EXPLAIN_FILE)
