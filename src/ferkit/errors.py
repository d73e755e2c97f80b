"""Exceptions shared by every ferkit package.

One base class lets the CLI turn any expected failure into a one-line message and exit code 2
instead of a traceback, while real bugs still surface with their stack.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferkit.data.problems import Problem


class FerkitError(Exception):
    """An expected, user-facing failure (bad input, bad option)."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'fernet'?"`` when ``name`` is a near miss (a typo) of one of ``known``,
    else ``""``: appended where an unknown name is refused, so the Python API says it too."""
    choices = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {choices[close[0]]!r}?" if close else ""


class DatasetError(FerkitError):
    """A dataset cannot be loaded as asked; `problems` lists every item behind it."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(f"{message}\n{shown}" if shown else message)


class SplitNotFoundError(FerkitError, KeyError):
    """A split name (or alias) that the dataset does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""
