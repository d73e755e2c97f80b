"""Evaluation for every model type: metrics, class mapping across datasets, reports."""

from ferkit.evaluation.evaluate import evaluate_run
from ferkit.evaluation.mapping import ClassMapping, map_classes
from ferkit.evaluation.metrics import classification_report_dict

__all__ = ["ClassMapping", "classification_report_dict", "evaluate_run", "map_classes"]
