"""A record of every item a load skipped or warned about, so nothing is lost silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["skipped", "warning"]


@dataclass(frozen=True)
class Problem:
    """One bad item: what kind of problem, which file, why, and what the load did about it.

    ``severity`` is ``skipped`` when a sample (or file) was left out and ``warning`` when the
    load went on unchanged (a listed split whose folder is missing, an empty class).
    """

    kind: str
    path: str
    reason: str
    severity: Severity = "skipped"
    split: str | None = None

    def __str__(self) -> str:
        where = f"[{self.split}] " if self.split else ""
        return f"{where}{self.path}: {self.reason} ({self.kind})"

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def count_kinds(problems: list[Problem]) -> dict[str, int]:
    """Problems per kind, most frequent first."""
    return dict(Counter(p.kind for p in problems).most_common())
