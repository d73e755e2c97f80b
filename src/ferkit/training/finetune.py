"""``--init RUN``: start from another run's weights (e.g. FER2013 -> AffectNet).

The classifier head is re-initialised when the class count differs, and a first convolution
trained on gray images is spread over RGB (or RGB summed to gray), so a 48x48 gray FER2013 model
can seed a 96x96 RGB AffectNet one when the architecture pools globally. Any other mismatch is
an error naming the tensor, rather than a silently half-loaded network.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ferkit.errors import FerkitError
from ferkit.models.nets.base import Network
from ferkit.models.store import load_run


def _adapt_channels(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Conv weights from 1 to 3 input channels (replicated / 3) or 3 to 1 (summed)."""
    same_kernel = source.shape[0] == target.shape[0] and source.shape[2:] == target.shape[2:]
    if source.ndim != 4 or not same_kernel:
        return None
    if source.shape[1] == 1 and target.shape[1] == 3:
        return source.repeat(1, 3, 1, 1) / 3.0
    if source.shape[1] == 3 and target.shape[1] == 1:
        return source.sum(dim=1, keepdim=True)
    return None


def load_init(model: Network, run_dir: str | Path) -> dict[str, list[str]]:
    """Copy ``run_dir``'s weights into ``model``; returns what was adapted or re-initialised."""
    run = load_run(run_dir, backend="torch")  # the weights themselves, not an ONNX session
    if run.kind != "torch":
        raise FerkitError(f"--init {run_dir}: a {run.kind} run has no network weights")
    source_name = (run.card.architecture or {}).get("name")
    target_name = model.config["name"]
    if source_name != target_name:
        raise FerkitError(
            f"--init {run_dir}: is a {source_name!r} network, this run trains {target_name!r}"
        )
    source = run.estimator.model.state_dict()
    target = model.state_dict()
    head = {f"head.{name}" for name, _ in model.head.named_parameters()}
    merged, adapted, reset = {}, [], []
    for key, value in target.items():
        src = source.get(key)
        if src is None:
            raise FerkitError(f"--init {run_dir}: has no tensor {key!r}")
        if src.shape == value.shape:
            merged[key] = src
        elif key in head:
            merged[key] = value
            reset.append(key)
        elif (fixed := _adapt_channels(src, value)) is not None:
            merged[key] = fixed
            adapted.append(key)
        else:
            raise FerkitError(
                f"--init {run_dir}: tensor {key!r} has shape {tuple(src.shape)}, this network "
                f"needs {tuple(value.shape)} (image size or width differ?)"
            )
    model.load_state_dict(merged)
    return {"adapted": adapted, "reset": reset}
