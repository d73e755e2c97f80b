"""``ferkit study``: the notebook's study (data, SVMs, CNNs, happy vs sad, evaluation, comparison,
explanations) as one resumable command with an HTML report."""

from ferkit.study.config import StudyConfig
from ferkit.study.pipeline import Study, run_study
from ferkit.study.report import write_report

__all__ = ["Study", "StudyConfig", "run_study", "write_report"]
