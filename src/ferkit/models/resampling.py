"""Resampling match at inference: a copy of a trained torch run whose network passes each input
through the resize round trip its training images went through (``Predictor(resample_via=224)``,
``--resample-via 224``), without retraining.

Why: FER2013's rebuilt train split was upscaled to 224 px and area-downscaled back to 48 px; its
val split and a face cut from a photo were not, so a network trained there meets sharper inputs
than it learned on. The step is :class:`~ferkit.models.nets.resample.ResampleMatch`, put in the
network's ``prefilter`` by ``Network.match_resampling`` exactly as ``ferkit train
--resample-via`` builds it, so an overridden run scores what a run trained with the step
scores. On FER2013 val it raised existing networks by 0.6-1.6 points (docs/BENCHMARKS.md).

Only a torch network can take the step: an ONNX graph applies the test-time steps it was
exported with, so callers that load a run for the override load its torch network
(:func:`resampling_backend`), and a scikit-learn pipeline has no network to put it in. Crops are
cut first and each view is then resampled by the network, so the override goes on before
:func:`ferkit.models.crops.multi_crop`. :func:`with_resampling` never changes the run it is
given: a ``Run`` may be shared (a server's predictor, a caller's cached run), so the copy gets
its own network (a deep copy: the networks are small).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from ferkit.errors import FerkitError, OptionError
from ferkit.models.store import Run

TORCH = "torch"  # the backend that can take the step (see resampling_backend)


def resampling_backend(via: int | None) -> str | None:
    """The ``load_run`` backend for a run that gets ``via``: its torch network, since an ONNX
    graph cannot take a new step; None (the usual choice) without an override."""
    return None if via is None else TORCH


def resample_via_of(run: Run) -> int | None:
    """The side ``run``'s network resamples its inputs through (None: it does not), as the
    run's card records it (its own training, or :func:`with_resampling`)."""
    architecture = run.card.get("architecture")
    kwargs = architecture.get("kwargs") if isinstance(architecture, dict) else None
    via = kwargs.get("resample_via") if isinstance(kwargs, dict) else None
    return via if isinstance(via, int) and not isinstance(via, bool) else None


def with_resampling(run: Run, via: int | None) -> Run:
    """``run`` whose network resamples each input via ``via`` px; ``run`` itself is untouched.

    ``via=None`` returns ``run`` as it is. A network that already resamples gets its step
    replaced. Refused with a one-line error naming the run: an ONNX or scikit-learn run (no
    torch network to add the step to), a run already averaging crops (resample first, then
    crop), and a ``via`` not larger than the run's input side.
    """
    if via is None:
        return run
    from ferkit.models.nets.resample import check_via

    try:
        via = check_via(via, run.image_size)
    except OptionError as exc:
        raise OptionError(f"model {run.name} ({run.path}): {exc}") from exc
    # the step takes the network's (eval) mode
    return _changed_copy(run, lambda net: net.match_resampling(via))


def without_resampling(run: Run) -> Run:
    """``run`` without its resampling step (``run`` itself untouched; a run without one is
    returned as it is): how a teacher scores training images that went through the round
    trip already (``ferkit train --teacher``), where the step would resample them twice."""
    if resample_via_of(run) is None:
        return run
    return _changed_copy(run, lambda net: net.drop_resampling())


def _changed_copy(run: Run, change: Callable[[Any], None]) -> Run:
    """A copy of ``run`` whose network (a deep copy) ``change`` altered, with the card's
    architecture to match; the estimator's flip, normalisation and batch size are kept."""
    estimator = _torch_estimator(run)
    copied = copy.copy(estimator)
    copied.model = copy.deepcopy(estimator.model)
    change(copied.model)
    card = run.card.updated(architecture=copy.deepcopy(copied.model.config))
    return dataclasses.replace(run, estimator=copied, card=card)


def _torch_estimator(run: Run) -> Any:
    """``run``'s torch estimator, or the one-line reason it has none to resample."""
    from ferkit.models.nets.base import Network

    estimator = run.estimator
    where = f"model {run.name} ({run.path})"
    if getattr(estimator, "crops", 1) != 1:
        raise OptionError(
            f"{where}: add the resampling before the crops (with_resampling, then multi_crop)"
        )
    backend = getattr(estimator, "backend", run.kind)
    if backend == "onnx":
        raise FerkitError(
            f"{where} runs an ONNX graph, which applies only the test-time steps it was exported "
            "with: load its torch network (backend='torch'), or retrain with --resample-via "
            "and re-export"
        )
    if run.kind == "sklearn" or not isinstance(getattr(estimator, "model", None), Network):
        raise FerkitError(
            f"{where} is a {run.kind} model without a torch network to resample its inputs "
            "in; --resample-via applies to networks"
        )
    return estimator
