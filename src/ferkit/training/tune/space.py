"""The search space of ``ferkit tune``: the notebook's spaces, a user's space checked, and the
trial settings a space proposes applied to a :class:`~ferkit.training.config.TrainConfig`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from optuna.trial import FrozenTrial, Trial

from ferkit.errors import FerkitError, did_you_mean
from ferkit.training.config import TrainConfig
from ferkit.training.recipes import current_name

# The notebook's ResNet-50 ``build_model(hp)``; the generic space for every model with a dense head:
#   reg = l2(hp.Float('l2_reg', min_value=1e-5, max_value=1e-2, sampling='LOG', default=1e-4))
#   Dense(units=hp.Int('units', min_value=32, max_value=512, step=32), ...)
#   Dropout(rate=hp.Float('dropout', min_value=0.0, max_value=0.5, default=0.25, step=0.05))
#   learning_rate = hp.Choice('learning_rate', values=[1e-2, 1e-3, 1e-4])
# Keras's l2(lam) adds lam * sum(w^2) to the loss of the two dense layers only; ferkit's Adam
# weight_decay adds wd * w to every gradient, i.e. l2(wd / 2) on all parameters. The notebook's
# range is searched as is: over three decades the factor 2 is immaterial, and "weight decay on every
# layer" is what a PyTorch user means by L2.
NOTEBOOK_SPACE: dict[str, dict[str, Any]] = {
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
        "lr": NOTEBOOK_SPACE["lr"],
        "weight_decay": NOTEBOOK_SPACE["weight_decay"],
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


def search_space(
    model: str, space: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The space :func:`tune` searches for ``model``, each key checked and its spec normalised.

    Without ``space``: the notebook's space for that model (:data:`MODEL_SPACES`, else
    :data:`NOTEBOOK_SPACE`) restricted to the options the model's factory accepts, so ``convnet``
    (no options) gets only lr and L2. With ``space``: every key must be a tunable TrainConfig
    field or an option of the model, since a typo silently left untuned would waste a search.
    Specs: ``{"type": "int"|"float", "low", "high", "step"?, "log"?}`` or
    ``{"type": "choice", "choices": [...]}``.
    """
    options = _model_options(model)
    if space is None:
        seed_space = MODEL_SPACES.get(model, NOTEBOOK_SPACE)
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


def suggest(trial: Trial, name: str, spec: dict[str, Any]) -> Any:
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
    """The settings a trial trained with, as :func:`suggest` handed them to the config."""
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
