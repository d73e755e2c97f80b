"""Exceptions shared by every ferkit package: the error policy in one place.

A failure the user can fix (a bad option, an unreadable file, a model folder that is not one)
is a :class:`FerkitError`, whose message names the file or setting and the reason. The CLI's
one handler (``ferkit.cli``) turns exactly these into a one-line ``error: ...`` and exit code 2;
anything else is a bug and keeps its traceback. Internal invariants stay plain exceptions or
asserts, so they are never mistaken for a user's mistake.

FerkitError subclasses ValueError, as scikit-learn's estimators raise ValueError for bad input:
code written against sklearn (``except ValueError``) keeps working with ferkit's estimators.
The few subclasses below exist where a caller may want to tell the kinds apart; most sites
raise FerkitError itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferkit.data.problems import Problem


class FerkitError(ValueError):
    """An expected, user-facing failure (bad input, bad option): one line, exit code 2."""


class OptionError(FerkitError):
    """A setting that is not valid: an unknown name, a value out of range, a bad combination."""


class InputError(FerkitError):
    """An input file or folder that cannot be read as asked (missing, unreadable, wrong
    format); the message names the path."""


class ModelFileError(InputError):
    """A run folder or model file that cannot be loaded: not a run, a damaged or altered
    file, a card that does not fit its weights."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'fernet'?"`` when ``name`` is a near miss (a typo) of one of ``known``,
    else ``""``: appended where an unknown name is refused, so the Python API says it too."""
    choices = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {choices[close[0]]!r}?" if close else ""


class DatasetError(InputError):
    """A dataset cannot be loaded as asked; `problems` lists every item behind it."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(f"{message}\n{shown}" if shown else message)


class SplitNotFoundError(OptionError, KeyError):
    """A split name (or alias) that the dataset does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""
