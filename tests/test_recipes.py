"""The notebook's recipe and augmentation are named ``notebook``; ``seed`` (their name before
issue 21, when ``--seed`` also meant the random seed) still works with a one-line warning from
what a user types, and silently from what an old run, tune or study recorded."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferkit.cli import app
from ferkit.study.config import StudyConfig
from ferkit.training.augment import AUGMENTATIONS, build_augmentation
from ferkit.training.config import TrainConfig
from ferkit.training.recipes import NOTEBOOK_RECIPE, RECIPES, current_name, recipe

DEPRECATED = r"'seed' is deprecated, use 'notebook'"


def test_new_names_are_the_defaults_and_warn_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert list(RECIPES) == ["notebook", "ferkit"] and "notebook" in AUGMENTATIONS
        assert "seed" not in RECIPES and "seed" not in AUGMENTATIONS
        assert recipe("notebook") == NOTEBOOK_RECIPE and NOTEBOOK_RECIPE["augment"] == "notebook"
        assert TrainConfig().augment == "notebook"
        assert StudyConfig(tmp_path, tmp_path / "o").recipe == "notebook"
        build_augmentation("notebook")
        # the notebook's settings are ferkit train's defaults, its batch size apart
        assert TrainConfig(**recipe("notebook")).to_argv() == ["--batch-size", "32"]


def test_old_name_still_works_with_a_warning(tmp_path: Path) -> None:
    with pytest.warns(FutureWarning, match=DEPRECATED):
        assert recipe("seed") == recipe("notebook")
    with pytest.warns(FutureWarning, match=f"augment {DEPRECATED}"):
        cfg = TrainConfig(augment="seed")
    assert cfg.augment == "notebook"
    with pytest.warns(FutureWarning, match=f"augmentation {DEPRECATED}"):
        build_augmentation("seed")
    with pytest.warns(FutureWarning, match=f"recipe {DEPRECATED}"):
        study = StudyConfig(tmp_path, tmp_path / "o", recipe="seed")
    assert study.recipe == "notebook" and study.describe()["recipe"] == "notebook"
    assert "--recipe" not in study.command()  # the default recipe, under its new name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert current_name("seed", "augment", warn=False) == "notebook"  # a record: silent
        assert current_name("strong", "augment") == "strong"


def test_cli_accepts_the_old_name_with_one_warning_line(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["train", str(empty), "-o", str(tmp_path / "r"), "--augment", "seed"], "augment"),
        (["study", str(empty), "-o", str(tmp_path / "s"), "--recipe", "seed"], "recipe"),
        (["train", str(empty), "-o", str(tmp_path / "r"), "--augment", "notebook"], None),
        (["study", str(empty), "-o", str(tmp_path / "s"), "--recipe", "notebook"], None),
    ]
    for args, what in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            result = runner.invoke(app, args)
        lines = [line for line in result.stderr.splitlines() if line]
        warned = [line for line in lines if line.startswith("warning: ")]
        expected = [f"warning: {what} 'seed' is deprecated, use 'notebook' (--seed is the random "
                    "seed only)"] if what else []  # fmt: skip
        assert warned == expected, args
        assert result.exit_code == 2 and "cannot detect the dataset layout" in lines[-1], args


def test_study_report_reads_old_cards_under_the_new_name(tmp_path: Path) -> None:
    from ferkit.study.report import network_recipes

    for run, augment in (("old", "seed"), ("new", "notebook")):
        (tmp_path / "runs" / run).mkdir(parents=True)
        card = {"training": {**NOTEBOOK_RECIPE, "augment": augment, "epochs": 3}}
        (tmp_path / "runs" / run / "model.json").write_text(json.dumps(card))
    rows = [{"kind": "network", "run": "old"}, {"kind": "network", "run": "new"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user cannot change an old card: no warning
        recipes = network_recipes(tmp_path, rows)
    assert recipes["old"] == recipes["new"] and recipes["old"]["augment"] == "notebook"
