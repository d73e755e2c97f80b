"""Flip test-time augmentation at inference: whether a run averages each face with its mirror
image, and a copy of a run that does not (``Predictor(flip=False)``, ``--no-flip``).

A network trained with ``--tta flip`` (``flip_average`` in its card's architecture) scores
both views of every face, at twice the network time; skipping the mirror halves that time and
costs some accuracy (``ferkit evaluate --no-flip`` measures how much). For any other model the
switch changes nothing.

:func:`single_view` never changes the run it is given: a ``Run`` may be shared (a server's
predictor, a caller's cached run), so the copy gets its own estimator object over the same
network or session.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from ferkit.errors import OptionError
from ferkit.models.store import Run


def has_flip_tta(card: Mapping[str, Any]) -> bool:
    """True when the card's network averages each image with its mirror (``--tta flip``)."""
    architecture = card.get("architecture")
    kwargs = architecture.get("kwargs") if isinstance(architecture, Mapping) else None
    return isinstance(kwargs, Mapping) and kwargs.get("flip_average") is True


def flips_averaged(run: Run) -> bool:
    """True when ``run`` scores each face with its mirror image as it is loaded now."""
    return has_flip_tta(run.card) and bool(getattr(run.estimator, "flip", True))


def single_view(run: Run) -> Run:
    """``run`` scoring each face once, without its mirror image; ``run`` itself is untouched.

    A run without flip TTA is returned as it is. An onnxruntime run whose graph adds the mirror
    outside (the shipped networks) shares its session; a torch run shares its network, asked
    for one view per call; a graph with the flip inside (``ferkit export --onnx`` without
    ``--flip outside``) cannot drop it, so the run's torch network is loaded instead.
    """
    if not flips_averaged(run):
        return run
    if getattr(run.estimator, "crops", 1) != 1:  # the crops would be lost or changed in place
        raise OptionError(
            f"model {run.name}: drop the mirror before adding crops (single_view, then multi_crop)"
        )
    from ferkit.models.onnx_run import FLIP_OUTSIDE

    estimator = run.estimator
    if getattr(estimator, "backend", None) == "onnx" and estimator.graph_flip != FLIP_OUTSIDE:
        estimator = _torch_estimator(run)
    single = copy.copy(estimator)
    single.flip = False
    return dataclasses.replace(run, estimator=single)


def _torch_estimator(run: Run) -> Any:
    """The run's torch network (checked weights): the only way to one view of a graph that
    averages the mirror inside."""
    from ferkit.models.torch_run import load_torch_estimator

    return load_torch_estimator(run.path, run.card)
