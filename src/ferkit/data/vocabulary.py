"""One canonical emotion vocabulary, so that datasets with different spellings line up.

Datasets name the same expression differently (AffectNet `Anger`, FER2013 `angry`, CK+
`sadness`). Each dataset keeps its own label order; this module only maps names, which is what
cross-dataset evaluation and class subsets (``happiness,sadness``) need.
"""

from __future__ import annotations

import re

from ferkit.errors import OptionError, did_you_mean

CANONICAL: tuple[str, ...] = (
    "angry",
    "contempt",
    "disgust",
    "fear",
    "happy",
    "neutral",
    "sad",
    "surprise",
)

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("anger", "angry", "mad", "rage"),
    "contempt": ("contempt", "contemptuous"),
    "disgust": ("disgust", "disgusted", "disgusting"),
    "fear": ("fear", "fearful", "afraid", "scared"),
    "happy": ("happy", "happiness", "joy", "joyful"),
    "neutral": ("neutral", "neutrality"),
    "sad": ("sad", "sadness", "unhappy", "sorrow"),
    "surprise": ("surprise", "surprised", "surprising"),
}

_LOOKUP: dict[str, str] = {syn: canon for canon, syns in _SYNONYMS.items() for syn in syns}

# FER2013's CSV encodes emotions as integers in this order (Goodfellow et al., 2013).
FER2013_CSV_ORDER: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)


def _normalise(name: str) -> str:
    """Lower-case, drop a numeric prefix such as ``3_`` or ``03-`` and surrounding noise."""
    text = name.strip().lower()
    text = re.sub(r"^\d+[\s_\-.]*", "", text)
    return re.sub(r"[\s\-]+", "_", text).strip("_")


def canonical_name(name: str) -> str | None:
    """The canonical emotion for ``name`` (any case or synonym), or None when unknown."""
    return _LOOKUP.get(_normalise(name))


def require_canonical(name: str) -> str:
    """Like :func:`canonical_name` but raises a ValueError that lists what is known."""
    canon = canonical_name(name)
    if canon is None:
        raise OptionError(
            f"unknown emotion name {name!r}; known: {', '.join(CANONICAL)} "
            "(and synonyms such as anger, happiness, sadness, surprised)"
            + did_you_mean(_normalise(name), _LOOKUP)
        )
    return canon
