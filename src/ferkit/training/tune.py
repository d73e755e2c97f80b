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
import csv
import io as _stdio
import logging
import math
import shlex
from collections.abc import Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from ferkit import io
from ferkit.errors import FerkitError, did_you_mean
from ferkit.records import TuneResult
from ferkit.training.config import TrainConfig
from ferkit.training.deep import prepare_data, train_network
from ferkit.training.recipes import current_name

STUDY_FILE = "study.db"
STUDY_NAME = "ferkit-tune"
LOCK_FILE = ".tune.lock"
SEED_FACTOR = 3  # keras-tuner Hyperband's default ``factor``, which the notebook left unchanged
SEED_MAX_EPOCHS = 10  # the notebook's ``kt.Hyperband(..., max_epochs=10)``
SEED_PATIENCE = 3  # the notebook's EarlyStopping(monitor='val_accuracy', patience=3) during search

# The notebook's ResNet-50 ``build_model(hp)``; the generic space for every model with a dense head:
#   reg = l2(hp.Float('l2_reg', min_value=1e-5, max_value=1e-2, sampling='LOG', default=1e-4))
#   Dense(units=hp.Int('units', min_value=32, max_value=512, step=32), ...)
#   Dropout(rate=hp.Float('dropout', min_value=0.0, max_value=0.5, default=0.25, step=0.05))
#   learning_rate = hp.Choice('learning_rate', values=[1e-2, 1e-3, 1e-4])
# Keras's l2(lam) adds lam * sum(w^2) to the loss of the two dense layers only; ferkit's Adam
# weight_decay adds wd * w to every gradient, i.e. l2(wd / 2) on all parameters. The notebook's
# range is searched as is: over three decades the factor 2 is immaterial, and "weight decay on every
# layer" is what a PyTorch user means by L2.
SEED_SPACE: dict[str, dict[str, Any]] = {
    "dense_units": {"type": "int", "low": 32, "high": 512, "step": 32},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    "lr": {"type": "choice", "choices": [1e-2, 1e-3, 1e-4]},
    "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
}

# The notebook's CNN-10 ``build_model(hp)`` had its own, narrower head space (and no L2, which is
# kept here as for every model: L2 is a training setting that always applies):
#   hp_dropout_rate = hp.Float('dropout_1', min_value=0.1, max_value=0.5, step=0.1)
#   hp_units = hp.Int('units', min_value=32, max_value=256, step=32)
#   hp_dropout_rate = hp.Float('dropout_2', min_value=0.1, max_value=0.5, step=0.1)
#   learning_rate = hp.Choice('learning_rate', values=[1e-2, 1e-3, 1e-4])
MODEL_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "cnn10": {
        "dense_units": {"type": "int", "low": 32, "high": 256, "step": 32},
        "conv_dropout": {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1},
        "dropout": {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1},
        "lr": SEED_SPACE["lr"],
        "weight_decay": SEED_SPACE["weight_decay"],
    },
}

# TrainConfig fields a space may tune. Fields that change which images are loaded (size, colour,
# classes, balancing, splits, seed) are excluded: the data is prepared once for all trials.
TUNABLE_CONFIG = (
    "lr",
    "weight_decay",
    "batch_size",
    "optimizer",
    "schedule",
    "plateau_factor",
    "plateau_patience",
    "patience",
    "augment",
    "label_smoothing",
    "mixup",
)

# ``ferkit train`` flags for the TrainConfig fields, to write best.json's command line.
_FLAGS = {
    "image_size": "--size",
    "color": "--color",
    "balance": "--balance",
    "margin": "--margin",
    "batch_size": "--batch-size",
    "weight_decay": "--weight-decay",
    "optimizer": "--optimizer",
    "schedule": "--schedule",
    "augment": "--augment",
    "label_smoothing": "--label-smoothing",
    "mixup": "--mixup",
    "val_split": "--val-split",
    "max_train": "--max-train",
    "init": "--init",
    "device": "--device",
    "nproc": "--nproc",
    "threads": "--threads",
}
_ALWAYS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "seed")
_FREE = {"epochs", "threads", "device"}  # may change between a tune and its resumption


def search_space(
    model: str, space: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The space :func:`tune` searches for ``model``, each key checked and its spec normalised.

    Without ``space``: the notebook's space for that model (:data:`MODEL_SPACES`, else
    :data:`SEED_SPACE`) restricted to the options the model's factory accepts, so ``convnet``
    (no options) gets only lr and L2. With ``space``: every key must be a tunable TrainConfig
    field or an option of the model, since a typo silently left untuned would waste a search.
    Specs: ``{"type": "int"|"float", "low", "high", "step"?, "log"?}`` or
    ``{"type": "choice", "choices": [...]}``.
    """
    options = _model_options(model)
    if space is None:
        seed_space = MODEL_SPACES.get(model, SEED_SPACE)
        chosen = {k: v for k, v in seed_space.items() if k in TUNABLE_CONFIG or k in options}
    else:
        unknown = sorted(k for k in space if k not in TUNABLE_CONFIG and k not in options)
        if unknown:
            valid = ", ".join([*TUNABLE_CONFIG, *options])
            raise FerkitError(f"cannot tune {unknown} for model {model!r}; tunable: {valid}")
        chosen = dict(space)
    if not chosen:
        raise FerkitError("the search space is empty")
    return {name: _check_spec(name, spec) for name, spec in chosen.items()}


def _model_options(model: str) -> tuple[str, ...]:
    """Keyword options of ``model``'s factory, read from its signature by the registry."""
    from ferkit.models.nets import list_models, model_options

    if model not in list_models():
        raise FerkitError(
            f"unknown model {model!r}{did_you_mean(model, list_models())} "
            f"(known: {', '.join(list_models())})"
        )
    return tuple(model_options(model))


def _check_spec(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec.get("type")
    if kind == "choice":
        choices = list(spec.get("choices") or [])
        if not choices:
            raise FerkitError(f"search space {name!r}: a choice needs a non-empty 'choices' list")
        return {"type": "choice", "choices": choices}
    if kind not in ("int", "float"):
        raise FerkitError(f"search space {name!r}: type must be int, float or choice")
    try:
        low, high = spec["low"], spec["high"]
    except KeyError as exc:
        raise FerkitError(f"search space {name!r}: missing {exc}") from None
    out: dict[str, Any] = {"type": kind, "low": low, "high": high}
    if not low <= high:
        raise FerkitError(f"search space {name!r}: low must not exceed high")
    if spec.get("log"):
        if low <= 0 or spec.get("step") is not None:
            raise FerkitError(f"search space {name!r}: a log range needs low > 0 and no step")
        out["log"] = True
    elif spec.get("step") is not None:
        if spec["step"] <= 0:
            raise FerkitError(f"search space {name!r}: step must be positive")
        out["step"] = spec["step"]
    return out


def _suggest(trial: Trial, name: str, spec: dict[str, Any]) -> Any:
    if spec["type"] == "choice":
        return trial.suggest_categorical(name, spec["choices"])
    if spec["type"] == "int":
        return trial.suggest_int(
            name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec.get("log", False)
        )
    value = trial.suggest_float(
        name, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False)
    )
    return _clean(value, spec)


def _clean(value: Any, spec: dict[str, Any] | None) -> Any:
    """A stepped float comes back as low + k * step with binary noise (0.35000000000000003);
    round it so configs, tables and the command line show the grid value."""
    if spec and spec["type"] == "float" and spec.get("step") is not None:
        return round(float(value), 10)
    return value


def trial_params(trial: FrozenTrial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings a trial trained with, as :func:`_suggest` handed them to the config."""
    return {k: _clean(v, space.get(k)) for k, v in trial.params.items()}


def trial_config(base: TrainConfig, params: dict[str, Any], epochs: int) -> TrainConfig:
    """``base`` with ``params`` applied: config fields set directly, the rest as model options."""
    config_params = {k: v for k, v in params.items() if k in TUNABLE_CONFIG}
    if isinstance(config_params.get("augment"), str):  # a space's old "seed" choice: no warning
        config_params["augment"] = current_name(config_params["augment"], "augment", warn=False)
    model_params = {k: v for k, v in params.items() if k not in TUNABLE_CONFIG}
    return replace(
        base,
        **config_params,
        model_kwargs={**base.model_kwargs, **model_params},
        epochs=epochs,
    )


def tune(
    data: str | Path,
    out: str | Path,
    *,
    model: str,
    trials: int,
    max_epochs: int = SEED_MAX_EPOCHS,
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
    base = replace(base, model=model) if base else TrainConfig(model=model, patience=SEED_PATIENCE)
    base.check()
    if base.nproc != 1:
        raise FerkitError("tuning trains each trial in one process (nproc=1)")
    chosen = search_space(model, space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if pruner is None:
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=SEED_FACTOR
        )
        pruner_name = f"HyperbandPruner(min_resource=1, max_resource={max_epochs}, "
        pruner_name += f"reduction_factor={SEED_FACTOR})"
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
                _write_reports(study, out, data, base, max_epochs, plot=False)

            study.optimize(objective, n_trials=todo, timeout=timeout, callbacks=[after_trial])
        return _write_reports(study, out, data, base, max_epochs)


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
    params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
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


# -- reports --------------------------------------------------------------------------------------
def _row(trial: FrozenTrial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    curve = trial.intermediate_values
    params = trial_params(trial, space)
    if trial.state is TrialState.COMPLETE:
        value: float | None = trial.value
    else:  # pruned or failed: the best epoch it reached, for the record (never the "best")
        value = max(curve.values()) if curve else None
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    row.update({name: params.get(name) for name in space})
    row.update(
        val_accuracy=None if value is None or math.isnan(value) else round(value, 6),
        epochs_run=trial.user_attrs.get("epochs_run", len(curve)),
        best_epoch=_int(trial.user_attrs.get("best_epoch")),
        seconds=trial.user_attrs.get("seconds"),
    )
    return row


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _write_reports(
    study: optuna.Study,
    out: Path,
    data: str | Path,
    base: TrainConfig,
    max_epochs: int,
    plot: bool = True,
) -> TuneResult:
    """trials.csv / trials.md / best.json (and tuning.png when ``plot``) from the study alone,
    written atomically. The plot is skipped between trials: drawing it costs more than a small
    trial's epoch, and the next call to :func:`tune` redraws it anyway."""
    setup = study.user_attrs["setup"]
    all_trials = study.get_trials(deepcopy=False)
    table = [_row(t, setup["space"]) for t in all_trials]
    best = _best(study, out, data, base, setup, max_epochs)
    io.write_text(out / "trials.csv", _csv(table))
    io.write_text(out / "trials.md", _markdown(table, best))
    io.write_json(out / "best.json", best)
    if plot:
        _plot(all_trials, best.get("trial"), out / "tuning.png")
    return TuneResult.from_dict({**best, "table": table})


def _best(
    study: optuna.Study,
    out: Path,
    data: str | Path,
    base: TrainConfig,
    setup: dict[str, Any],
    max_epochs: int,
) -> dict[str, Any]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    info: dict[str, Any] = {
        "model": setup["model"],
        "metric": "val_accuracy",
        "value": None,
        "trial": None,
        "params": None,
        "trials": {
            "complete": states.count(TrialState.COMPLETE),
            "pruned": states.count(TrialState.PRUNED),
            "failed": states.count(TrialState.FAIL),
            "running": states.count(TrialState.RUNNING),
        },
        "max_epochs": max_epochs,
        "search_space": setup["space"],
        "sampler": type(study.sampler).__name__,
        "pruner": study.user_attrs.get("pruner"),
    }
    complete = [t for t in study.get_trials(deepcopy=False) if t.state is TrialState.COMPLETE]
    if not complete:
        info["note"] = "no trial has completed yet"
        return info
    trial = max(complete, key=lambda t: (t.value, -t.number))
    params = trial_params(trial, setup["space"])
    cfg = trial_config(base, params, base.epochs)
    final_out = out / "best"
    command, missing = train_command(data, final_out, cfg)
    info.update(
        value=trial.value,
        trial=trial.number,
        params=params,
        best_epoch=_int(trial.user_attrs.get("best_epoch")),
        epochs_run=_int(trial.user_attrs.get("epochs_run")),
        run=str(out / "trials" / str(trial.number)),
        config=asdict(cfg),
        command=command,
    )
    if missing:
        info["command_note"] = f"ferkit train has no flag for {missing}; set them in Python"
    return info


def train_command(data: str | Path, out: str | Path, cfg: TrainConfig) -> tuple[str, list[str]]:
    """The ``ferkit train`` command line that trains ``cfg``, and the non-default fields that
    have no flag (empty when the command reproduces ``cfg`` exactly)."""
    default = TrainConfig()
    args = ["ferkit", "train", str(data), "--out", str(out), "--model", cfg.model]
    for key, value in cfg.model_kwargs.items():
        args += ["--arg", f"{key}={_json_scalar(value)}"]
    missing: list[str] = []
    for f in fields(TrainConfig):
        name, value = f.name, getattr(cfg, f.name)
        if name in ("model", "model_kwargs"):
            continue
        if name not in _ALWAYS and value == getattr(default, name):
            continue
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        if name == "bf16":
            args.append("--bf16" if value else "--no-bf16")
        elif name == "classes":
            args += ["--classes", ",".join(value or [])]
        elif name in ("plateau_factor", "plateau_patience", "train_split", "channels_last"):
            missing.append(name)
        elif value is not None:
            args += [flag, _json_scalar(value)]
    return " ".join(shlex.quote(a) for a in args), missing


def _json_scalar(value: Any) -> str:
    """Numbers as ``repr`` (exact round trip), strings bare, booleans as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _csv(table: list[dict[str, Any]]) -> str:
    buf = _stdio.StringIO()
    columns = list(table[0]) if table else ["trial", "state", "val_accuracy", "epochs_run"]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def _markdown(table: list[dict[str, Any]], best: dict[str, Any]) -> str:
    lines = [f"# Tuning {best['model']}: validation accuracy", ""]
    counts = best["trials"]
    lines.append(
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed; "
        f"max {best['max_epochs']} epochs per trial; pruner {best['pruner']}."
    )
    lines.append("")
    if best["trial"] is not None:
        lines += [
            f"Best: trial {best['trial']}, {best['value']:.2%}, params `{best['params']}`.",
            "",
            f"Train it fully: `{best['command']}`",
            "",
        ]
    if table:
        columns = list(table[0])
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        for row in table:
            cells = [_fmt(row[c]) for c in columns]
            if row["trial"] == best["trial"]:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(trials: list[FrozenTrial], best: int | None, target: Path) -> None:
    """Validation accuracy per epoch of every trial; pruned dashed, failed dotted, best bold."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    styles = {TrialState.PRUNED: "--", TrialState.FAIL: ":"}
    for t in trials:
        curve = sorted(t.intermediate_values.items())
        if not curve:
            continue
        steps, values = zip(*curve, strict=True)
        is_best = t.number == best
        ax.plot(
            steps,
            values,
            linestyle=styles.get(t.state, "-"),
            marker="o",
            markersize=3,
            linewidth=2.5 if is_best else 1,
            alpha=1.0 if is_best else 0.6,
            label=f"trial {t.number} (best)" if is_best else None,
        )
    ax.set(
        xlabel="epoch",
        ylabel="validation accuracy",
        title="validation accuracy per trial (pruned dashed, failed dotted)",
    )
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)
    ax.grid(alpha=0.3)
    if best is not None:
        ax.legend(loc="best", fontsize=8)
    io.save_figure(fig, target)
