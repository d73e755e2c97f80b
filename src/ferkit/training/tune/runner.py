"""``ferkit tune``: the notebook's keras-tuner Hyperband search, redone with Optuna, resumable.

The study notebook tuned its networks with ``kt.Hyperband(build_model, objective='val_accuracy',
max_epochs=10)`` (keras-tuner's default ``factor=3``) over a dense head (units, dropout), the Adam
learning rate and an L2 penalty. Here an Optuna study does the same: a TPE sampler proposes the
settings, a :class:`optuna.pruners.HyperbandPruner` (``min_resource=1``, ``max_resource`` = the
epoch budget, ``reduction_factor=3``) stops the weak trials early, and every trial is an ordinary
:func:`~ferkit.training.deep.train_network` run in ``out/trials/<n>/`` that reports its validation
accuracy after each epoch. The objective is the trial's best validation accuracy over its epochs,
as keras-tuner scores a trial.

Restartability: the study lives in ``out/study.db`` (SQLite), and ``trials`` is the total number
of finished (COMPLETE or PRUNED) trials wanted, so calling :func:`tune` again on the same ``out``
runs only what is missing, and a larger ``trials`` extends a finished search. A trial that was
RUNNING when the process was killed is marked FAIL when the study is reopened (a lock file
guarantees that no other process is still running it) and its parameters are queued to be
trained again, from scratch, as a new trial: a kill loses at most one trial's work and never a
point of the search. The reports (``trials.csv``, ``trials.md``, ``best.json``, ``tuning.png``)
are rewritten atomically after every trial, so they are current even after a kill.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from ferkit.errors import FerkitError
from ferkit.records import TuneResult
from ferkit.training.config import NOTEBOOK_MAX_EPOCHS, TrainConfig
from ferkit.training.deep import prepare_data, train_network
from ferkit.training.recipes import current_name
from ferkit.training.tune.reports import write_reports
from ferkit.training.tune.space import search_space, suggest, trial_config

STUDY_FILE = "study.db"
STUDY_NAME = "ferkit-tune"
LOCK_FILE = ".tune.lock"
NOTEBOOK_FACTOR = 3  # keras-tuner Hyperband's default ``factor``, which the notebook left unchanged
NOTEBOOK_PATIENCE = (
    3  # the notebook's EarlyStopping(monitor='val_accuracy', patience=3) during search
)
_FREE = {"epochs", "threads", "device"}  # may change between a tune and its resumption


def tune(
    data: str | Path,
    out: str | Path,
    *,
    model: str,
    trials: int,
    max_epochs: int = NOTEBOOK_MAX_EPOCHS,
    seed: int = 0,
    base: TrainConfig | None = None,
    space: dict[str, dict[str, Any]] | None = None,
    timeout: float | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    progress: bool = True,
) -> TuneResult:
    """Search ``model``'s hyperparameters on ``data``; reports and the study go into ``out``.

    ``trials`` is the total number of finished (COMPLETE + PRUNED) trials wanted in the study,
    not the number to run now, so a rerun after a kill, or with a larger ``trials``, continues
    the same search. Each trial trains for at most ``max_epochs`` (the Hyperband budget);
    ``base`` supplies everything not searched (its ``epochs`` is the length of the final
    training written into best.json's command; its ``patience`` applies inside trials, and
    defaults to the notebook's 3 when ``base`` is None). ``seed`` drives the sampler and every
    trial's training seed is ``base.seed``, so trials differ by their settings and not by their
    initialisation. ``timeout`` (seconds) stops starting new trials. ``pruner`` replaces the
    notebook's Hyperband (tests use it to force pruning).

    Returns the best.json dict plus ``"table"``: one row per trial, as in trials.csv.
    """
    if trials < 1:
        raise FerkitError("trials must be at least 1")
    if max_epochs < 1:
        raise FerkitError("max_epochs must be at least 1")
    if timeout is not None and timeout <= 0:
        raise FerkitError("timeout must be positive")
    base = (
        replace(base, model=model) if base else TrainConfig(model=model, patience=NOTEBOOK_PATIENCE)
    )
    base.check()
    if base.nproc != 1:
        raise FerkitError("tuning trains each trial in one process (nproc=1)")
    chosen = search_space(model, space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if pruner is None:
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=NOTEBOOK_FACTOR
        )
        pruner_name = f"HyperbandPruner(min_resource=1, max_resource={max_epochs}, "
        pruner_name += f"reduction_factor={NOTEBOOK_FACTOR})"
    else:
        pruner_name = type(pruner).__name__
    with _exclusive(out), _quiet_optuna(progress):
        study = _open_study(out, model, max_epochs, seed, base, chosen, pruner)
        study.set_user_attr("pruner", pruner_name)
        todo = trials - _finished(study)
        if todo > 0:
            prepared = prepare_data(data, base, progress)

            def objective(trial: Trial) -> float:
                return _run_trial(trial, data, out, base, chosen, max_epochs, prepared, progress)

            def after_trial(study: optuna.Study, _trial: FrozenTrial) -> None:
                write_reports(study, out, data, base, max_epochs, plot=False)

            study.optimize(objective, n_trials=todo, timeout=timeout, callbacks=[after_trial])
        return write_reports(study, out, data, base, max_epochs)


def _run_trial(
    trial: Trial,
    data: str | Path,
    out: Path,
    base: TrainConfig,
    space: dict[str, dict[str, Any]],
    max_epochs: int,
    prepared: Any,
    progress: bool,
) -> float:
    """One training run; its per-epoch accuracy feeds the pruner through ``on_epoch``."""
    params = {name: suggest(trial, name, spec) for name, spec in space.items()}
    cfg = trial_config(base, params, max_epochs)
    seconds = 0.0

    def on_epoch(row: dict[str, float]) -> None:
        nonlocal seconds
        epoch = int(row["epoch"])
        seconds += float(row.get("seconds", 0.0))
        trial.report(float(row["val_accuracy"]), epoch)
        trial.set_user_attr("epochs_run", epoch)
        trial.set_user_attr("seconds", round(seconds, 1))
        if epoch < max_epochs and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    summary = train_network(
        data,
        out / "trials" / str(trial.number),
        cfg,
        progress=progress,
        on_epoch=on_epoch,
        prepared=prepared,
    )
    trial.set_user_attr("best_epoch", int(summary["best_epoch"]))
    trial.set_user_attr("epochs_run", int(summary["epochs_run"]))
    trial.set_user_attr("seconds", summary["train_seconds_total"])
    return float(summary["val_accuracy"])


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _setup(
    model: str, max_epochs: int, base: TrainConfig, space: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What must not change between a study and its resumption (JSON-comparable)."""
    config = {k: v for k, v in asdict(base).items() if k not in _FREE}
    return {"model": model, "max_epochs": max_epochs, "space": space, "base": config}


def _with_new_defaults(setup: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored setup with the TrainConfig settings added since it was stored at their
    defaults: a search started before a new setting (``group_by``) resumes, as a run does."""
    if setup is None or not isinstance(setup.get("base"), dict):
        return setup
    defaults = {k: v for k, v in asdict(TrainConfig()).items() if k not in _FREE}
    base = {**defaults, **setup["base"]}
    if isinstance(base.get("augment"), str):  # stored when the notebook's was called "seed"
        base["augment"] = current_name(base["augment"], "augment", warn=False)
    return {**setup, "base": base}


def _open_study(
    out: Path,
    model: str,
    max_epochs: int,
    seed: int,
    base: TrainConfig,
    space: dict[str, dict[str, Any]],
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create or reopen ``out/study.db``; fail trials left RUNNING by a kill and queue them again.

    A reopened study must be the same search (model, epoch budget, space, base settings), since
    mixing two searches in one study would make the sampler and Hyperband's rungs meaningless.
    The sampler is seeded with ``seed`` plus the number of trials already in the study: reseeding
    a resumed search with ``seed`` alone would replay the first run's random start-up
    proposals, training the same settings twice.
    """
    db = out / STUDY_FILE
    trials_dir = out / "trials"
    if not db.is_file() and trials_dir.is_dir() and any(trials_dir.iterdir()):
        raise FerkitError(f"{out}: holds trial runs but no {STUDY_FILE}; choose another out")
    storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction="maximize",
        load_if_exists=True,
    )
    wanted = _setup(model, max_epochs, base, space)
    before = _with_new_defaults(study.user_attrs.get("setup"))
    if before is None:
        study.set_user_attr("setup", wanted)
    elif before != wanted:
        changed = sorted(k for k in wanted if before.get(k) != wanted[k])
        raise FerkitError(
            f"{db}: holds a search with other settings ({', '.join(changed)}); "
            "use the original ones or another out"
        )
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, stale.number)
        storage.set_trial_system_attr(trial_id, "fail_reason", "interrupted (process killed)")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(stale.params, user_attrs={"retry_of": stale.number})
    return optuna.load_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed + len(study.trials)),
        pruner=pruner,
    )


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold ``out/.tune.lock`` so a second tune on the same study is refused, which is what makes
    treating every RUNNING trial found at start-up as killed safe."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one tune per out is then the user's care
        yield
        return
    with open(out / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FerkitError(f"{out}: another tune is running on this study") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_optuna(progress: bool) -> Iterator[None]:
    """Optuna logs every trial at INFO; keep that with progress, silence it without."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO if progress else logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
