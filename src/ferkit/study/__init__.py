"""``ferkit study``: the notebook's study (data, SVMs, CNNs, happy vs sad, evaluation, comparison,
explanations) as one resumable command with an HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferkit import lazy_exports
from ferkit.study.config import StudyConfig

if TYPE_CHECKING:
    from ferkit.study.pipeline import Study, run_study
    from ferkit.study.report import write_report

# Imported on first use (PEP 562): the CLI reads StudyConfig's options at start-up, and the
# pipeline behind it imports numpy and every stage's package.
_LAZY = {"Study": "ferkit.study.pipeline", "run_study": "ferkit.study.pipeline",
         "write_report": "ferkit.study.report"}  # fmt: skip

__all__ = ["Study", "StudyConfig", "run_study", "write_report"]


__getattr__ = lazy_exports(__name__, _LAZY)
