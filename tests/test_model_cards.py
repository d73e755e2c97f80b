"""`ferkit models`: every shipped model's card, the default marked once, the README's table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ferkit.cli import app
from ferkit.inference import DEFAULT_MODEL
from ferkit.weights import models_table, shipped_listing, shipped_models, shipped_path

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"


def test_models_json_lists_every_shipped_card_and_one_default() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    shipped = json.loads(result.output)["shipped"]
    assert [e["name"] for e in shipped] == shipped_models()
    assert [e["name"] for e in shipped if e["default"] is True] == [DEFAULT_MODEL]
    for entry in shipped:
        name = entry["name"]
        assert entry["kind"] in ("torch", "sklearn") and entry["architecture"], name
        assert entry["classes"] and len(set(entry["classes"])) == len(entry["classes"]), name
        assert isinstance(entry["input"]["size"], int), name
        assert entry["input"]["color"] in ("gray", "rgb"), name
        score = entry["validation"]
        assert 0 < score["accuracy"] <= 1 and 0 < score["macro_f1"] <= 1, name
        assert score["split"] and score["dataset"], name
        assert entry["command"].startswith("ferkit "), name
        data = entry["provenance"]["datasets"]
        assert data and all(d["data"] and d["train_split"] and d["train_counts"] for d in data)
        assert entry["provenance"]["date"], name
        assert entry["size_bytes"] > 1000, name
    text = runner.invoke(app, ["models"]).output
    assert f"{DEFAULT_MODEL} (default)" in text
    for entry in shipped:
        assert entry["name"] in text and f"{entry['validation']['accuracy']:.1%}" in text


def test_readme_shows_the_generated_table() -> None:
    """The README's table is `ferkit models --markdown`'s output: regenerate it, never edit it
    by hand, when a shipped model changes."""
    table = runner.invoke(app, ["models", "--markdown"]).output.strip()
    assert table == models_table(shipped_listing(), markdown=True)
    assert table in README.read_text(), (
        "README's model table is stale: paste the output of `ferkit models --markdown`"
    )


def test_a_model_validated_on_several_datasets_names_each() -> None:
    """A multi-dataset model's card gives the pooled figure and each dataset's: the table
    shows the pooled accuracy and names every dataset with its own split."""
    from ferkit.weights import model_entry

    card = json.loads((shipped_path("affectnet") / "model.json").read_text())
    each = [
        {"dataset": "affectnet_yolo", "split": "valid", "accuracy": 0.7, "macro_f1": 0.69, "n": 10},
        {"dataset": "fer2013", "split": "val", "accuracy": 0.6, "macro_f1": 0.55, "n": 10},
    ]
    pooled = {"accuracy": 0.65, "macro_f1": 0.62, "n": 20, "by_dataset": each}
    card["validation"] = {"dataset": "affectnet_yolo + fer2013", "split": "valid + val", **pooled}
    entry = model_entry({**card, "name": "general"}, shipped_path("affectnet"))
    row = models_table([entry], markdown=True).splitlines()[-1]
    assert "| 65.0% | 62.0% | affectnet_yolo valid + fer2013 val |" in row
    assert entry["validation"]["by_dataset"] == each
