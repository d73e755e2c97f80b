"""Models shipped inside the package, loadable by name: ``load_run("affectnet-hog-svm")``.

Each is an ordinary run folder (``model.json`` + ``model.safetensors`` for networks or
``model.skops`` for scikit-learn pipelines) whose card also says the exact command that trained
it and what it scored on the validation split, so the weights can be re-created and checked
rather than trusted. This package is the shipped data and its lookup only: shipping a run
(``ship_run``) is a maintainer's step in :mod:`ferkit.models.shipping`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ferkit.errors import ModelFileError, did_you_mean

WEIGHTS_DIR = Path(__file__).resolve().parent
# The model ``predict`` and ``serve`` use when given none (re-exported by ferkit.inference):
# defined here, beside the shipped models, so ``ferkit models`` marks it without importing the
# inference stack.
DEFAULT_MODEL = "fer2013"
# Per-file size cap for a shipped model: keeps the wheel and the repository small
# (ferkit.models.shipping enforces it; tests/test_shipped.py checks the shipped files).
MAX_SHIPPED_BYTES = 25 * 2**20


def shipped_models() -> list[str]:
    """Names of the shipped models (folders here holding a model card)."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/model.json"))


def shipped_cards() -> list[dict[str, Any]]:
    """Each shipped model's card as JSON with its ``name``, for listings (``ferkit models``).

    Plain JSON on purpose: this package sits below the model store (``make layers``), so it
    cannot build :class:`~ferkit.models.card.ModelCard` s; loading a model checks its card, and
    :func:`ferkit.models.card.shipped_cards` gives the checked ones."""
    return [
        {**json.loads((WEIGHTS_DIR / name / "model.json").read_text()), "name": name}
        for name in shipped_models()
    ]


def model_entry(card: Mapping[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """A shipped model's listing (``ferkit models --json``): what it recognises, from what
    input, how well (validation accuracy and macro-F1, on which split of which dataset), the
    command that trained it, the data it was trained on, its size, and whether it is the
    default model."""
    folder = folder or WEIGHTS_DIR / card["name"]
    provenance = _provenance(card, folder)
    validation = dict(card.get("validation") or {})
    if validation:
        names = ", ".join(d["name"] for d in provenance["datasets"])
        validation.setdefault("dataset", names or None)
    return {
        "name": card["name"],
        "default": card["name"] == DEFAULT_MODEL,
        "kind": card.get("kind"),
        "architecture": _architecture(card),
        "classes": card.get("canonical"),
        "input": {"size": card.get("image_size"), "color": card.get("color")},
        "test_time": test_time_steps(card),
        "validation": validation or None,
        "command": card.get("command"),
        "provenance": provenance,
        "size_bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
    }


def shipped_listing() -> list[dict[str, Any]]:
    """:func:`model_entry` of every shipped model, in name order."""
    return [model_entry(card) for card in shipped_cards()]


def _architecture(card: Mapping[str, Any]) -> str | None:
    """The network's registered name, or for a scikit-learn pipeline its features + solver."""
    if isinstance(arch := card.get("architecture"), dict):
        return arch.get("name")
    if card.get("features"):
        method = (card.get("svm_params") or {}).get("method")
        return f"{card['features']} + SVM" + (f" ({method})" if method else "")
    return None


def test_time_steps(card: Mapping[str, Any]) -> list[str]:
    """What a network does to its input at test time beyond resizing (from its architecture)."""
    kwargs = (card.get("architecture") or {}).get("kwargs") or {}
    steps = []
    if kwargs.get("resample_via") is not None:
        steps.append(f"resampled via {kwargs['resample_via']} px")
    if kwargs.get("sharpness_target") is not None:
        steps.append(f"sharpness-matched ({kwargs['sharpness_target']:.3g})")
    if kwargs.get("flip_average"):
        steps.append("flip-averaged")
    return steps


def _dataset_name(path: str) -> str:
    """A dataset's short name: its folder (the folder of a data.yaml or CSV file)."""
    p = Path(path)
    return p.parent.name if p.suffix.lower() in (".yaml", ".yml", ".csv") else p.name


def _provenance(card: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The datasets a model was trained on (path, splits, counts) and when: from its card
    (runs trained since cards record them), else from the run's train.json."""
    try:
        train = json.loads((folder / "train.json").read_text())
    except (OSError, ValueError):
        train = {}
    train = train if isinstance(train, dict) else {}
    datasets = card.get("datasets") or train.get("datasets")
    if not datasets:
        data = card.get("trained_on") or train.get("data")
        paths = data if isinstance(data, list) else [data] if data else []
        datasets = [
            {
                "data": path,
                "train_split": card.get("train_split") or train.get("train_split"),
                "val_split": card.get("val_split") or train.get("val_split"),
                "train_samples": train.get("train_samples"),
                "val_samples": train.get("val_samples"),
                "train_counts": train.get("train_counts"),
                "val_counts": train.get("val_counts"),
            }
            for path in paths
        ]
    fields = ("name", "data", "train_split", "val_split", "train_samples", "val_samples")
    entries = [{k: d.get(k) for k in (*fields, "train_counts", "val_counts")} for d in datasets]
    for entry in entries:
        entry["name"] = entry["name"] or _dataset_name(str(entry["data"]))
    date = card.get("date") or train.get("date") or (card.get("validation") or {}).get("date")
    return {"datasets": entries, "date": date}


def models_table(entries: list[dict[str, Any]], markdown: bool = False) -> str:
    """The shipped models as a table: plain aligned text for the terminal, or the markdown
    table the README shows (generated from the cards, so the two never disagree)."""
    header = ["model", "kind", "architecture", "input", "classes", "val acc", "macro-F1",
              "validated on", "trained on", "size"]  # fmt: skip
    rows = [header] + [_table_row(e) for e in entries]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip


def _table_row(entry: dict[str, Any]) -> list[str]:
    score = entry["validation"] or {}
    size, color = entry["input"]["size"], entry["input"]["color"]
    trained_on = ", ".join(
        f"{d['name']} {d['train_split']}" for d in entry["provenance"]["datasets"]
    )
    return [
        entry["name"] + (" (default)" if entry["default"] else ""),
        str(entry["kind"]),
        str(entry["architecture"]) + "".join(f", {t.split(' (')[0]}" for t in entry["test_time"]),
        f"{size}x{size} {color}",
        str(len(entry["classes"] or [])),
        _percent(score.get("accuracy")),
        _percent(score.get("macro_f1")),
        _validated_on(score),
        trained_on or "-",
        f"{entry['size_bytes'] / 2**20:.1f} MiB",
    ]


def _validated_on(score: Mapping[str, Any]) -> str:
    """Which split of which dataset the figure is on; a model validated on several datasets
    (the pooled figure) names each dataset with its own split."""
    if not score:
        return "-"
    each = score.get("by_dataset")
    if isinstance(each, list) and each:
        return " + ".join(f"{d.get('dataset')} {d.get('split')}" for d in each)
    return f"{score.get('dataset')} {score.get('split')}"


def shipped_path(name: str) -> Path:
    """The run folder of shipped model ``name``; an unknown name lists the shipped ones."""
    path = WEIGHTS_DIR / name
    if name and "/" not in name and (path / "model.json").is_file():
        return path
    known = ", ".join(shipped_models()) or "none"
    hint = did_you_mean(name, shipped_models())
    raise ModelFileError(
        f"{name}: no such run folder, and not a shipped model{hint} (shipped: {known})"
    )


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"
