"""Hyperparameter tuning: artefacts, best = max of the completed trials, the seed's search space,
resumption (after a finished search and after a killed trial), pruning, and bad input."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import optuna
import pytest
from matplotlib.figure import Figure

from conftest import make_folders
from ferkit.errors import FerkitError
from ferkit.training.config import TrainConfig
from ferkit.training.tune import NOTEBOOK_SPACE, STUDY_NAME, search_space, trial_config, tune

MODEL = "seedcnn"  # the smallest registered network that has a dense head (dense_units, dropout)


def _base(**kw) -> TrainConfig:
    cfg = dict(batch_size=16, threads=1, balance="none", augment="none", epochs=5, seed=0)
    cfg.update(kw)
    return TrainConfig(**cfg)


@pytest.fixture(autouse=True)
def _cheap_curves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trial epoch redraws the run's curves.png, which costs more than a tiny epoch on a
    busy CPU; test_train covers those curves, so here they are a blank figure."""
    import ferkit.reports.training_figures as figures

    monkeypatch.setattr(figures, "training_curves", lambda *a, **k: Figure(figsize=(1, 1)))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "d", per_class=30, size=32)


def _csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _in_space(params: dict, space: dict) -> None:
    assert set(params) == set(space)
    for name, value in params.items():
        spec = space[name]
        if spec["type"] == "choice":
            assert value in spec["choices"], name
            continue
        assert spec["low"] <= value <= spec["high"], name
        if "step" in spec:
            k = (value - spec["low"]) / spec["step"]
            assert k == pytest.approx(round(k), abs=1e-6), name


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / 'study.db'}")


def test_search_space_is_the_seeds_restricted_to_the_model() -> None:
    # the seed's ResNet build_model: units 32..512/32, dropout 0..0.5/0.05, lr choice, L2 log
    assert search_space("seedcnn") == NOTEBOOK_SPACE
    assert NOTEBOOK_SPACE["dense_units"] == {"type": "int", "low": 32, "high": 512, "step": 32}
    assert NOTEBOOK_SPACE["lr"]["choices"] == [1e-2, 1e-3, 1e-4]
    assert set(search_space("fernet")) == {"dropout", "lr", "weight_decay"}  # no dense head
    assert set(search_space("convnet")) == {"lr", "weight_decay"}  # no options at all
    cnn10 = search_space("cnn10")  # the seed's CNN-10 build_model had its own head space
    assert cnn10["dense_units"]["high"] == 256 and cnn10["conv_dropout"]["low"] == 0.1
    with pytest.raises(FerkitError, match="cannot tune"):
        search_space("convnet", {"dense_units": NOTEBOOK_SPACE["dense_units"]})


def test_search_stored_when_notebook_was_called_seed_resumes(data: Path, tmp_path: Path) -> None:
    """A study.db from before the rename holds ``augment: "seed"`` in its setup, and a space may
    offer "seed" as a choice: both resume or train under the new name ``notebook``."""
    out = tmp_path / "tune"
    base = _base(augment="notebook")
    args = dict(model=MODEL, max_epochs=1, seed=0, base=base, progress=False)
    tune(data, out, trials=1, **args)
    study = _study(out)
    setup = study.user_attrs["setup"]
    assert setup["base"]["augment"] == "notebook"
    study.set_user_attr("setup", {**setup, "base": {**setup["base"], "augment": "seed"}})
    assert len(tune(data, out, trials=1, **args)["table"]) == 1  # same search: nothing to run
    params = {"augment": "seed", "dropout": 0.1}
    assert trial_config(base, params, 2).augment == "notebook"


def test_tune_writes_artefacts_then_resumes_without_rerunning(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "tune"
    base = _base()
    first = tune(data, out, model=MODEL, trials=2, max_epochs=2, seed=0, base=base, progress=False)
    assert len(first["table"]) == 2
    history0 = (out / "trials" / "0" / "history.json").read_bytes()
    done0 = _study(out).trials[0].datetime_complete

    # a trial left RUNNING, as a killed tune leaves it, with its settings already drawn
    study = _study(out)
    stale = study.ask()
    stale_params = {
        "dense_units": stale.suggest_int("dense_units", 32, 512, step=32),
        "dropout": stale.suggest_float("dropout", 0.0, 0.5, step=0.05),
        "lr": stale.suggest_categorical("lr", [1e-2, 1e-3, 1e-4]),
        "weight_decay": stale.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
    }

    result = tune(data, out, model=MODEL, trials=4, max_epochs=2, seed=0, base=base, progress=False)
    trials = _study(out).trials
    states = [t.state.name for t in trials]
    assert states[2] == "FAIL"  # the interrupted trial, kept for the record
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4 and len(trials) == 5
    retry = trials[3]
    assert retry.user_attrs["retry_of"] == 2 and retry.params == pytest.approx(stale_params)
    # earlier trials were not re-run, and the resumed sampler did not replay their settings
    assert (out / "trials" / "0" / "history.json").read_bytes() == history0
    assert trials[0].datetime_complete == done0
    assert trials[4].params not in [t.params for t in trials[:4]]

    # every artefact, and they agree with each other
    for name in ("study.db", "trials.csv", "trials.md", "best.json", "tuning.png"):
        assert (out / name).is_file(), name
    assert (out / "tuning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _csv_rows(out)
    assert [r["state"] for r in rows] == states
    best = json.loads((out / "best.json").read_text())
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete, "the first trial of a Hyperband bracket always completes"
    assert best["value"] == pytest.approx(max(float(r["val_accuracy"]) for r in complete))
    assert rows[best["trial"]]["state"] == "COMPLETE"
    assert result["value"] == best["value"] and result["trial"] == best["trial"]
    for row in result["table"]:
        if row["state"] != "FAIL":
            _in_space({k: row[k] for k in NOTEBOOK_SPACE}, NOTEBOOK_SPACE)
            assert 1 <= row["epochs_run"] <= 2
    assert best["pruner"] == "HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=3)"
    md = (out / "trials.md").read_text()
    assert "| trial | state |" in md and "FAIL" in md and best["command"] in md

    # the same search again: nothing left to run; another setup is refused
    again = tune(data, out, model=MODEL, trials=4, max_epochs=2, seed=0, base=base, progress=False)
    assert len(again["table"]) == 5
    with pytest.raises(FerkitError, match="max_epochs"):
        tune(data, out, model=MODEL, trials=5, max_epochs=3, seed=0, base=base, progress=False)

    # best.json's command is ready to run: the CLI trains exactly the best settings
    from typer.testing import CliRunner

    from ferkit.cli import app

    args = shlex.split(best["command"])
    assert args[:3] == ["ferkit", "train", str(data)]
    assert args[args.index("--epochs") + 1] == "5"  # base.epochs, not the trial budget
    args[args.index("--epochs") + 1] = "1"
    args[args.index("--out") + 1] = str(tmp_path / "final")
    res = CliRunner().invoke(app, args[1:])
    assert res.exit_code == 0, res.output
    trained = json.loads((tmp_path / "final" / "train.json").read_text())["config"]
    params = best["params"]
    assert trained["model"] == MODEL and trained["lr"] == params["lr"]
    assert trained["weight_decay"] == params["weight_decay"]
    assert trained["model_kwargs"] == {k: params[k] for k in ("dense_units", "dropout")}
    assert {k: v for k, v in trained.items() if k not in ("epochs", "model_kwargs")} == {
        k: v for k, v in best["config"].items() if k not in ("epochs", "model_kwargs")
    }


class _PruneAfterFirstEpoch(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step is not None and trial.last_step >= 1


def test_pruned_trials_stop_after_one_epoch(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    space = {"dropout": {"type": "float", "low": 0.1, "high": 0.3}, "lr": NOTEBOOK_SPACE["lr"]}
    result = tune(
        data,
        out,
        model=MODEL,
        trials=2,
        max_epochs=3,
        seed=1,
        base=_base(),
        space=space,
        pruner=_PruneAfterFirstEpoch(),
        progress=False,
    )
    assert [r["state"] for r in result["table"]] == ["PRUNED", "PRUNED"]
    assert [r["epochs_run"] for r in result["table"]] == [1, 1]
    history = json.loads((out / "trials" / "0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert result["trial"] is None and "no trial has completed" in result["note"]
    assert [r["state"] for r in _csv_rows(out)] == ["PRUNED", "PRUNED"]
    assert (out / "tuning.png").is_file() and result["pruner"] == "_PruneAfterFirstEpoch"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 0}, "trials must be at least 1"),
        ({"max_epochs": 0}, "max_epochs must be at least 1"),
        ({"model": "nope"}, "unknown model"),
        ({"space": {"colour": {"type": "int", "low": 1, "high": 2}}}, "cannot tune"),
        ({"space": {"lr": {"type": "float", "low": 0, "high": 1, "log": True}}}, "log range"),
    ],
)
def test_bad_arguments_fail_before_any_training(tmp_path: Path, kwargs: dict, message: str):
    args = {"model": MODEL, "trials": 2, "max_epochs": 2, "seed": 0, **kwargs}
    with pytest.raises(FerkitError, match=message):
        tune(tmp_path / "missing", tmp_path / "out", progress=False, **args)
    assert not (tmp_path / "out" / "study.db").exists()
