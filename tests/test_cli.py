"""``ferkit inspect`` end to end through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ferkit.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("ferkit ")


def test_inspect_json(yolo_dataset: Path) -> None:
    (yolo_dataset / "valid/labels/orphan.txt").write_text("1\n")
    result = runner.invoke(app, ["inspect", str(yolo_dataset), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["layout"] == "yolo" and summary["num_classes"] == 3
    assert {k: v["count"] for k, v in summary["splits"].items()} == {"train": 12, "valid": 12}
    assert summary["splits"]["train"]["per_class"] == {"Anger": 4, "Happy": 4, "Sad": 4}
    assert summary["splits"]["train"]["imbalance_ratio"] == 1.0
    assert [c["canonical"] for c in summary["classes"]] == ["angry", "happy", "sad"]
    (orphan,) = summary["skipped"]
    assert orphan["kind"] == "orphan-label" and orphan["path"].endswith("orphan.txt")


def test_inspect_text_lists_problems(yolo_dataset: Path) -> None:
    (yolo_dataset / "train/images/train_0_0.png").write_bytes(b"")
    result = runner.invoke(app, ["inspect", str(yolo_dataset)])
    assert result.exit_code == 0, result.output
    assert "empty-file: 1" in result.stdout
    assert "train_0_0.png: empty file (0 bytes)" in result.stdout
    assert "Anger" in result.stdout and "angry" in result.stdout


def test_inspect_out_writes_figures_and_files(folder_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["inspect", str(folder_dataset), "--out", str(out), "--json", "--embed-samples", "12"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for name in ("class_distribution", "samples", "pca", "tsne"):
        png = out / f"{name}.png"
        assert summary["figures"][name] == str(png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads((out / "inspect.json").read_text())["total"] == 24
    assert (out / "problems.csv").read_text().startswith("severity,kind,split,path,reason")


def test_inspect_strict_fails_with_every_problem(yolo_dataset: Path) -> None:
    (yolo_dataset / "train/labels/train_0_0.txt").write_text("5\n")
    (yolo_dataset / "valid/images/junk.bin").write_bytes(b"1")
    result = runner.invoke(app, ["inspect", str(yolo_dataset), "--strict"])
    assert result.exit_code == 2
    assert "2 problem(s) found (strict mode)" in result.stderr
    assert "class id 5 out of range 0..2" in result.stderr
    assert "not an image file (extension .bin)" in result.stderr


def test_inspect_missing_path_is_a_clean_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.output


def test_inspect_bad_split_is_a_clean_error(yolo_dataset: Path) -> None:
    result = runner.invoke(app, ["inspect", str(yolo_dataset), "--split", "holdout"])
    assert result.exit_code == 2 and "no split 'holdout'" in result.stderr


def test_inspect_tiny_split_notes_skipped_figures(tmp_path: Path) -> None:
    from conftest import make_folders

    root = make_folders(tmp_path / "f", per_class=1, splits=None)
    out = tmp_path / "o"
    result = runner.invoke(app, ["inspect", str(root), "--out", str(out), "--json"])
    summary = json.loads(result.stdout)
    assert "pca" not in summary["figures"]
    assert any("need at least 5" in n for n in summary["figure_notes"])
