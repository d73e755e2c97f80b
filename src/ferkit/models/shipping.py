"""The maintainer's side of shipped models: turning a finished run into one.

:mod:`ferkit.weights` is the shipped models themselves and their lookup (what ``predict``,
``serve`` and ``ferkit models`` read); copying a run in is a step a maintainer takes once per
model (``benchmarks/ship_row.py``), and it needs the model store, so it lives here, above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferkit import weights
from ferkit.errors import FerkitError
from ferkit.models.resampling import resampling_backend, with_resampling
from ferkit.models.store import copy_run, load_run


def ship_run(
    run_dir: str | Path,
    name: str,
    command: str,
    metrics: dict[str, Any] | None = None,
    dest: Path = weights.WEIGHTS_DIR,
    resample_via: int | None = None,
    teachers: list[dict[str, Any]] | None = None,
) -> Path:
    """Copy run ``run_dir`` to ``dest/name`` as a shipped model, its card extended with the
    ``command`` that trained it and the validation ``metrics`` it reached.

    ``teachers``: a distilled run's teachers (name as given, the run folder that holds their
    weights, the weights' SHA-256), recorded under ``teachers`` in the card: a teacher given
    by a shipped name may be the very model this one replaces.

    ``resample_via`` adds the weightless test-time resize round trip
    (:mod:`ferkit.models.nets.resample`) to the shipped architecture. The training ``command``
    stays the one that ran, so the card also says, under ``added_after_training``, that the step
    was added afterwards: rerunning the command gives the network without it.

    The run is loaded first (so a damaged or untrusted file is never shipped) and each file
    must stay under :data:`ferkit.weights.MAX_SHIPPED_BYTES`.
    """
    # the step goes on the torch network (an ONNX graph cannot take it); checked there
    run = load_run(run_dir, resampling_backend(resample_via))
    if resample_via is not None and run.kind != "torch":
        raise FerkitError(f"{run.path}: only a network can resample its inputs")
    run = with_resampling(run, resample_via)
    path = run.path / str(run.card.weights or "")
    if not path.is_file():
        raise FerkitError(f"{run.path}: the card names no weights file")
    limit = weights.MAX_SHIPPED_BYTES  # read at call time: a test lowers it
    if path.stat().st_size > limit:
        raise FerkitError(
            f"{path}: {path.stat().st_size / 2**20:.1f} MiB is over the "
            f"{limit / 2**20:.0f} MiB limit for a shipped model"
        )
    card = run.card.updated(name=name, command=command)
    if teachers:
        card = card.updated(teachers=teachers)
    if resample_via is not None:
        card = card.updated(added_after_training=_resampling_note(resample_via))
    if metrics:
        card = card.updated(validation=metrics)
    # only the weights are shipped, not an ONNX export of them (benchmarks/ship_onnx.py adds one)
    return copy_run(run, dest / name, card)


def _resampling_note(via: int) -> dict[str, Any]:
    """The card's record that the resampling step was added to the trained network."""
    return {
        "resample_via": via,
        "why": "the training images went through a resize round trip that inputs have not "
        "(ferkit.models.nets.resample); the step has no weights",
    }
