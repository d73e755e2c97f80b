import pytest

from ferkit.data import CANONICAL, canonical_name, require_canonical


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Anger", "angry"),
        ("angry", "angry"),
        ("HAPPINESS", "happy"),
        ("happy", "happy"),
        ("sadness", "sad"),
        ("Sad", "sad"),
        ("surprised", "surprise"),
        ("Surprise", "surprise"),
        ("Contempt", "contempt"),
        ("disgusted", "disgust"),
        ("fearful", "fear"),
        ("Neutral", "neutral"),
        ("3_happy", "happy"),
        (" 04-Fear ", "fear"),
    ],
)
def test_synonyms_map_case_insensitively(name: str, expected: str) -> None:
    assert canonical_name(name) == expected


def test_unknown_names() -> None:
    assert canonical_name("misc") is None
    assert canonical_name(".ipynb_checkpoints") is None
    with pytest.raises(ValueError, match="unknown emotion name 'boredom'"):
        require_canonical("boredom")


def test_canonical_is_its_own_name() -> None:
    assert all(canonical_name(c) == c for c in CANONICAL)
    assert len(CANONICAL) == 8
