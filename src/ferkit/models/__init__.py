"""Models: saved runs (a folder per trained model) and the estimators inside them."""

from ferkit.models.card import ModelCard
from ferkit.models.store import Run, load_run, save_sklearn_run

__all__ = ["ModelCard", "Run", "load_run", "save_sklearn_run"]
