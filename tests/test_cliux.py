"""Help, errors, warnings and output a user can scan and trust (issue 23, items 4 and 5)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferkit import cli
from ferkit.cli import app
from ferkit.errors import FerkitError

runner = CliRunner()
WIDE = {"COLUMNS": "160"}  # rich wraps help to the terminal: keep panel titles whole


@pytest.mark.parametrize(
    ("command", "panels"),
    [
        ("train", ("Data", "Model", "Optimisation", "Augmentation", "Hardware", "Output")),
        ("svm", ("Data", "Features and SVM", "Search", "Output")),
        ("study", ("Data", "Model", "Features and SVM", "Optimisation", "Output")),
        ("tune", ("Data", "Model", "Search", "Output")),
    ],
)
def test_help_is_grouped_in_panels_without_bool_metavar(command: str, panels: tuple) -> None:
    result = runner.invoke(app, [command, "--help"], env=WIDE)
    assert result.exit_code == 0
    for panel in panels:
        assert f"─ {panel} ─" in result.stdout, panel
    assert "<bool>" not in result.stdout  # flags take no value
    assert "--json" in result.stdout and "--help" in result.stdout


def test_choice_typo_is_refused_at_parse_time_with_the_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path), "-o", str(tmp_path / "r"),
                                 "--optimizer", "adamm"])  # fmt: skip
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "╭" not in line
    assert "'adam', 'adamw', 'sgd'" in line and "did you mean 'adam'?" in line
    assert "Value error" not in line
    for option, value in (("--balance", "undersampel"), ("--augment", "strng"),
                          ("--schedule", "cosin")):  # fmt: skip
        bad = runner.invoke(app, ["train", str(tmp_path), "-o", str(tmp_path), option, value])
        assert bad.exit_code == 2 and "did you mean" in bad.stderr, option
    svm = runner.invoke(app, ["svm", str(tmp_path), "-o", str(tmp_path), "--kernel", "poly"])
    assert svm.exit_code == 2 and "'linear', 'rbf'" in svm.stderr
    study = runner.invoke(app, ["study", str(tmp_path), "-o", str(tmp_path), "--recipe", "notbook"])
    assert study.exit_code == 2 and "did you mean 'notebook'?" in study.stderr


def test_did_you_mean_split_model_class_and_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import make_folders
    from ferkit.data import load_dataset
    from ferkit.errors import SplitNotFoundError
    from ferkit.models import load_run
    from ferkit.models.nets import create_model
    from ferkit.training.config import TrainConfig

    ds = load_dataset(make_folders(tmp_path / "d"), progress=False)
    with pytest.raises(SplitNotFoundError, match="did you mean 'train'"):
        ds.split("trian")
    with pytest.raises(ValueError, match="did you mean 'happy'"):
        ds.split("train").select_classes(["angry", "hapy"])
    with pytest.raises(FerkitError, match="did you mean 'fernet'"):
        create_model("fernt", 3)
    with pytest.raises(FerkitError, match="did you mean 'fernet'"):
        TrainConfig(model="fernett").check()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FerkitError, match="did you mean 'fer2013'"):
        load_run("fer2031")
    with pytest.raises(FerkitError) as nothing_close:
        load_run("zzzzzz")
    assert "did you mean" not in str(nothing_close.value)


def test_cli_errors_are_one_error_line_without_tuples(tmp_path: Path) -> None:
    from conftest import make_folders

    root = make_folders(tmp_path / "d")
    bad_class = runner.invoke(app, ["train", str(root), "-o", str(tmp_path / "r"),
                                    "--classes", "angry,hapy"])  # fmt: skip
    assert bad_class.exit_code == 2
    assert bad_class.stderr.startswith("error: ") and "did you mean 'happy'?" in bad_class.stderr
    split = runner.invoke(app, ["evaluate", "fer2013", str(root), "--split", "vall"])
    assert split.exit_code == 2 and split.stderr.startswith("error: no split 'vall'")
    assert "did you mean 'val'?" in split.stderr
    from ferkit.training.config import TrainConfig

    with pytest.raises(FerkitError) as caught:
        TrainConfig(balance="often").check()
    assert "undersample, weights, none" in str(caught.value) and "(" not in str(caught.value)
    assert cli._message(FerkitError("a.png", "unreadable")) == "a.png: unreadable"
    assert cli._message(KeyError("no split 'x'")) == "no split 'x'"
    assert cli._message(ValueError()) == "ValueError"
    assert "[Errno 2]" in cli._message(FileNotFoundError(2, "No such file", "x.png"))


def test_python_warnings_become_one_warning_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ferkit.weights as weights

    listed = weights.shipped_listing

    def noisy() -> list[dict]:
        warnings.warn("a library\n   said this", UserWarning, stacklevel=1)
        return listed()

    monkeypatch.setattr(weights, "shipped_listing", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = runner.invoke(app, ["models", "--json"])
        assert result.exit_code == 0
        assert warnings.showwarning is cli._show_warning
        warnings.warn("second\nline", RuntimeWarning, stacklevel=1)
    lines = [line for line in result.stderr.splitlines() if line]
    assert lines == ["warning: a library said this"]
    assert capsys.readouterr().err == "warning: second line\n"


def test_svm_prints_validation_accuracy_and_defaults_to_pca(tmp_path: Path) -> None:
    from conftest import make_folders

    root = make_folders(tmp_path / "d", classes=("Anger", "Happy", "Sad"), per_class=6)
    result = runner.invoke(app, ["svm", str(root), "-o", str(tmp_path / "r"), "--features", "raw"])
    assert result.exit_code == 0, result.stderr
    assert "fitted pca SVM" in result.stdout
    assert "validation accuracy " in result.stdout and "on val (18 images)" in result.stdout
    summary = json.loads((tmp_path / "r" / "train.json").read_text())
    assert summary["method"] == "pca" and summary["validation"]["n"] == 18
    assert 0.0 <= summary["validation"]["accuracy"] <= 1.0
    # labels are the canonical lower-case names in evaluate's table, as predict prints them
    scored = runner.invoke(app, ["evaluate", str(tmp_path / "r"), str(root)], env=WIDE)
    assert scored.exit_code == 0, scored.stderr
    for name in ("angry", "happy", "sad"):
        assert name in scored.stdout
    assert "Anger" not in scored.stdout and "Happy" not in scored.stdout


def test_svm_without_val_split_says_it_is_not_scored(tmp_path: Path) -> None:
    from conftest import make_folders

    root = make_folders(tmp_path / "d", splits=("train", "test"), per_class=5)
    result = runner.invoke(app, ["svm", str(root), "-o", str(tmp_path / "r"), "--features", "raw"])
    assert result.exit_code == 0, result.stderr
    assert "no validation split: not scored" in result.stdout


def test_evaluate_shows_progress_while_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import make_folders
    from ferkit.evaluation import evaluate as evaluation
    from ferkit.training.svm import train_svm

    root = make_folders(tmp_path / "d", per_class=4)
    train_svm(root, tmp_path / "r", features="raw", search=False, progress=False)
    monkeypatch.setattr(evaluation, "SCORE_CHUNK", 5)
    quiet = evaluation.evaluate_run(tmp_path / "r", root, progress=False)
    assert "scoring" not in capsys.readouterr().err
    shown = evaluation.evaluate_run(tmp_path / "r", root, progress=True)
    assert "scoring" in capsys.readouterr().err
    assert shown["accuracy"] == quiet["accuracy"] and shown["n"] == 12


def test_train_time_says_what_it_counts() -> None:
    line = cli._train_time(12.34, 8.0, resumed=False)
    assert line == "12.3 s wall time (8.0 s of it training passes)"
    assert "over every attempt" in cli._train_time(5.0, 20.0, resumed=True)


def test_curves_have_integer_epoch_ticks_and_a_legend_off_the_axes() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ferkit.reports.training_figures import training_curves

    history = [
        {"epoch": float(e), "train_loss": 1 / e, "val_loss": 1.2 / e, "lr": 1e-3,
         "train_accuracy": 0.3 * e, "val_accuracy": 0.25 * e}
        for e in (1, 2, 3)
    ]  # fmt: skip
    fig = training_curves(history, "run")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax_loss, ax_acc = fig.axes[:2]
    for ax in (ax_loss, ax_acc):
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_legend() is None
    assert "best 75.0% at epoch 3)" in ax_acc.get_title()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "train", "validation", "learning rate", "best epoch"
    ]  # fmt: skip
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_tightbbox(renderer)), ax
