"""The import layers CI checks (``make layers``: import-linter over pyproject's contracts).

The check itself is the CI step; these tests only keep its contract honest: every package and
module of ferkit sits in a layer (a new one cannot escape the rule by being left out), and the
training contract names modules that exist.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ferkit"


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_package"] == "ferkit"
    return {c["id"]: c for c in config["contracts"]}


def _names(layers: list[str]) -> list[str]:
    return [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]


def test_every_ferkit_package_and_module_has_a_layer() -> None:
    placed = _names(_contracts()["layers"]["layers"])
    assert len(placed) == len(set(placed)), "a module placed twice"
    present = {
        f"ferkit.{p.stem if p.is_file() else p.name}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py"))
        or (p.is_dir() and (p / "__init__.py").is_file())
    }
    assert present == set(placed)


def test_the_training_contract_names_existing_modules() -> None:
    training = _contracts()["training"]
    assert training["containers"] == ["ferkit.training"]
    for name in _names(training["layers"]):
        module = PACKAGE / "training" / name
        assert module.with_suffix(".py").is_file() or (module / "__init__.py").is_file(), name
