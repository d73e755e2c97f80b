"""``ferkit tune``: the notebook's keras-tuner Hyperband search, redone with Optuna, resumable.

Split by job: :mod:`~ferkit.training.tune.space` (the search spaces and how a trial's settings
become a :class:`~ferkit.training.config.TrainConfig`), :mod:`~ferkit.training.tune.runner` (the
Optuna study: create or resume it, run the trials) and :mod:`~ferkit.training.tune.reports`
(trials.csv / trials.md / best.json / tuning.png). The runner's docstring tells how the search
mirrors the notebook's and how it survives a kill.
"""

# The ``tune`` extra, imported first: without Optuna the package fails to import even when its
# modules are already loaded (the CLI turns that into the ``pip install 'ferkit[tune]'`` line).
import optuna  # noqa: F401

from ferkit.training.config import NOTEBOOK_MAX_EPOCHS, TuneConfig
from ferkit.training.tune.reports import train_command, write_reports
from ferkit.training.tune.runner import (
    LOCK_FILE,
    NOTEBOOK_FACTOR,
    NOTEBOOK_PATIENCE,
    STUDY_FILE,
    STUDY_NAME,
    _setup,
    _with_new_defaults,
    tune,
)
from ferkit.training.tune.space import (
    MODEL_SPACES,
    NOTEBOOK_SPACE,
    TUNABLE_CONFIG,
    search_space,
    trial_config,
    trial_params,
)

__all__ = [
    "LOCK_FILE",
    "MODEL_SPACES",
    "NOTEBOOK_FACTOR",
    "NOTEBOOK_MAX_EPOCHS",
    "NOTEBOOK_PATIENCE",
    "NOTEBOOK_SPACE",
    "STUDY_FILE",
    "STUDY_NAME",
    "TUNABLE_CONFIG",
    "TuneConfig",
    "_setup",
    "_with_new_defaults",
    "search_space",
    "train_command",
    "trial_config",
    "trial_params",
    "tune",
    "write_reports",
]
