"""``ferkit models / train / evaluate / explain / svm --features cnn`` through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_folders, write_image
from ferkit.cli import app

runner = CliRunner()
TINY = ["--arg", "width=0.25", "--batch-size", "16", "--threads", "1", "--lr", "0.003"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    data = make_folders(root / "data", per_class=30, size=32)
    out = root / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--balance",
            "none",
            *TINY,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return data, out


def test_models_lists_the_registry() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.output)
    assert {"cnn10", "convnet", "resnet50", "seedcnn", "fernet"} <= set(listing["networks"])
    shipped = {entry["name"]: entry for entry in listing["shipped"]}
    from ferkit.weights import shipped_models

    assert set(shipped) == set(shipped_models())
    # what each network does to its input at test time, read from its architecture
    # sharp train split: no sharpness filter, but the resize round trip its train images had
    assert shipped["fer2013"]["test_time"] == ["resampled via 224 px", "flip-averaged"]
    assert shipped["affectnet-hog-svm"]["test_time"] == []
    text = runner.invoke(app, ["models"]).output
    assert "fernet" in text and all(name in text for name in shipped)


def test_train_json_then_evaluate_the_run(trained: tuple[Path, Path]) -> None:
    data, out = trained
    train = json.loads((out / "train.json").read_text())
    assert train["epochs_run"] == 2 and train["config"]["model_kwargs"] == {"width": 0.25}
    result = runner.invoke(
        app,
        ["evaluate", str(out), str(data), "--split", "val", "--json", str(out / "metrics.json")],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(train["val_accuracy"], abs=1e-6)


def test_explain_writes_gradcam_and_feature_maps(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trained
    image = write_image(tmp_path / "face.png", 1, seed=3, size=40)
    result = runner.invoke(
        app, ["explain", str(out), str(image), "--out", str(tmp_path / "e"), "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["predicted"]["class"] in ("angry", "happy", "sad")
    assert (tmp_path / "e" / "gradcam.png").is_file()
    assert (tmp_path / "e" / "feature_maps.png").is_file()
    text = runner.invoke(app, ["explain", str(out), str(image), "--out", str(tmp_path / "t")])
    assert text.exit_code == 0, text.output
    assert "face.png: the whole image, as given" in text.output
    assert f"Grad-CAM for {info['gradcam_class']['class']}: " in text.output
    assert str(tmp_path / "t" / "explain.json") in text.output


def test_explain_lists_layers_and_suggests_on_a_typo(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """At 32 px FerNet's stages are 32/16/8/4 px: the default is stage3, the deepest >= 6."""
    _, out = trained
    listing = runner.invoke(app, ["explain", str(out), "--list-layers"])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    marked = [line for line in lines if "<- default" in line]
    assert len(marked) == 1 and marked[0].split()[:2] == ["stage3", "32x8x8"]
    assert any(line.split()[:2] == ["stage4", "64x4x4"] for line in lines)
    as_json = json.loads(
        runner.invoke(app, ["explain", str(out), "--list-layers", "--json"]).output
    )
    assert as_json["default"] == "stage3" and as_json["input"] == [1, 32, 32]

    image = write_image(tmp_path / "face.png", 1, seed=3, size=40)
    typo = runner.invoke(
        app, ["explain", str(out), str(image), "--layer", "stage5", "--out", str(tmp_path / "t")]
    )
    assert typo.exit_code != 0
    assert "unknown layer 'stage5'" in typo.output and "did you mean stage4" in typo.output
    assert not (tmp_path / "t" / "gradcam.png").exists()
    missing = runner.invoke(app, ["explain", str(out)])
    assert missing.exit_code != 0 and "give an IMAGE" in missing.output
    chosen = runner.invoke(
        app, ["explain", str(out), str(image), "--out", str(tmp_path / "e"), "--json"]
    )
    assert json.loads(chosen.output)["layer"] == "stage3"


def test_svm_on_cnn_features_of_a_run(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = trained
    result = runner.invoke(
        app,
        [
            "svm",
            str(data),
            "--features",
            "cnn",
            "--network",
            str(out),
            "--method",
            "exact",
            "--kernel",
            "linear",
            "--C",
            "1",
            "--out",
            str(tmp_path / "svm"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "svm" / "model.json").read_text())
    assert card["features"] == "cnn" and card["feature_params"]["run"] == str(out)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "svm"), str(data), "--split", "val"])
    assert result.exit_code == 0, result.output


def test_train_errors_are_clean(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = trained
    cases = [
        (["--classes", "contempt"], "contempt"),
        (["--model", "nope"], "unknown model"),
        (["--arg", "width"], "key=value"),
        (["--arg", "colour=3"], "colour"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "x"), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
    again = runner.invoke(app, ["train", str(data), "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output
    missing = runner.invoke(app, ["evaluate", "no-such-model", str(data)])
    assert missing.exit_code == 2 and "not a shipped model" in missing.output
