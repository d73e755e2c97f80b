"""``ferkit study`` end to end on a tiny synthetic dataset: stages, resume, failures, the report.

The dataset is written in tmp dirs: four emotion folders (happy and sad among them) of 40x40
images whose bright band's position and tint depend on the class, so every model can beat
chance in one epoch. Networks train for one or two epochs at a small batch size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape as html_unescape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ferkit.cli import app
from ferkit.study import StudyConfig, run_study
from ferkit.study.report import comparison_rows
from ferkit.study.stages import read_record

CLASSES = ("angry", "happy", "sad", "surprise")
TINY = {"batch_size": 8, "search_size": 40, "embed_samples": 30, "explain_images": 2}


def make_dataset(root: Path, classes=CLASSES, per_class: int = 12, splits=("train", "val")) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for label, name in enumerate(classes):
            for i in range(per_class):
                img = rng.normal(90, 20, (40, 40, 3))
                img[4 + 6 * label : 10 + 6 * label] += 110
                img[..., label % 3] += 30
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return root


def stage_files(out: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_text()) for p in
            sorted(out.rglob("stage.json"))}  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict]]:
    """One quick study through the CLI, with a working copy (train and val subsampled)."""
    tmp = tmp_path_factory.mktemp("study")
    data = make_dataset(tmp / "data")
    (data / "train" / "happy" / "broken.png").write_bytes(b"not a png")  # must be reported
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERKIT_CACHE_DIR", str(tmp / "cache"))
        args = ["study", str(data), "--out", str(out), "--quick", "--epochs", "1",
                "--max-train", "40", "--max-val", "40", "--batch-size", "8", "--search-size",
                "40", "--explain-images", "2", "--arg", "fernet:width=0.25"]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        yield data, out, json.loads((out / "study.json").read_text())


RUNS = ["svm-raw", "svm-hog", "cnn10", "convnet", "fernet", "happy-sad"]


@pytest.mark.slow
def test_every_stage_writes_its_outputs(study: tuple[Path, Path, dict]) -> None:
    _, out, record = study
    assert record["runs"] == RUNS
    assert {n: r["status"] for n, r in record["stages"].items()} == dict.fromkeys(
        ["data", "inspect", *RUNS, *(f"eval-{r}" for r in RUNS), "compare", "explain"], "done"
    )
    data = record["stages"]["data"]["result"]
    assert data["copied"] and sum(data["train_counts"].values()) == 40
    assert sum(data["val_counts"].values()) == 40
    for name in ("class_distribution", "samples", "pca"):
        assert (out / "inspect" / f"{name}.png").is_file()
    for run in RUNS:
        assert (out / "runs" / run / "model.json").is_file()
        for name in ("metrics.json", "confusion_matrix.png", "misclassified.png"):
            assert (out / "eval" / run / name).is_file(), (run, name)
    for net in RUNS[2:]:
        assert (out / "runs" / net / "curves.png").is_file()
    for name in ("comparison.md", "comparison.csv", "comparison.png"):
        assert (out / "compare" / name).is_file()
    examples = record["stages"]["explain"]["result"]["examples"]
    assert len(examples) == 2
    for ex in examples:
        assert (out / "explain" / ex["name"] / "gradcam.png").is_file()
        assert (out / "explain" / ex["name"] / "feature_maps.png").is_file()
    hog = read_record(out / "runs" / "svm-hog")
    assert hog is not None and hog["commands"][0].startswith("ferkit svm ")
    assert "--method pca --search --search-on train" in hog["commands"][0]
    assert "--resume" in read_record(out / "runs" / "cnn10")["commands"][0]
    happy_sad = record["stages"]["happy-sad"]
    assert happy_sad["params"]["classes"] == ["happy", "sad"]
    assert record["stages"]["eval-happy-sad"]["result"]["n"] == 20  # happy + sad of 40 val
    assert record["stages"]["eval-svm-hog"]["result"]["accuracy"] > 0.5  # chance is 0.25


@pytest.mark.slow
def test_report_names_every_run_with_its_accuracy(study: tuple[Path, Path, dict]) -> None:
    data, out, _record = study
    html = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    for run in RUNS:
        accuracy = json.loads((out / "eval" / run / "metrics.json").read_text())["accuracy"]
        assert re.search(rf"<b>{re.escape(run)}</b>.*?{accuracy:.1%}", html, re.S), run
        assert f"| {run} | " in markdown and f"{accuracy:.1%}" in markdown
    for text in ("usable_cpus", "torch", "Stages, timings", "ferkit train ", "No stage failed"):
        assert text in html
    assert "notebook's figure" not in html  # not AffectNet: no column of the notebook's
    broken = str(data / "train" / "happy" / "broken.png")
    assert _record["stages"]["inspect"]["result"]["problems"] == {"corrupt-image": 1}
    for text in (markdown, html_unescape(html)):
        assert "Skipped items and warnings (corrupt-image: 1)" in text
        assert broken in text and "not a decodable image" in text
    assert "http://" not in html and "https://" not in html  # nothing fetched
    # every accuracy with its interval; a 40-image validation split is flagged, with advice
    assert re.search(r"<b>svm-hog</b>.*?\d+\.\d% \[\d+\.\d%-\d+\.\d%\]", html, re.S)
    assert [w["kind"] for w in _record["warnings"]][:1] == ["small-validation"]
    assert 'class="warning"><b>small-validation</b>' in html and "What to do" in html
    assert "Paired tests (McNemar" in html


@pytest.mark.slow
def test_report_says_how_each_network_was_trained_and_the_study_command(
    study: tuple[Path, Path, dict],
) -> None:
    _, out, record = study
    html = html_unescape((out / "report.html").read_text())
    markdown = (out / "report.md").read_text()
    for net in RUNS[2:]:
        training = json.loads((out / "runs" / net / "model.json").read_text())["training"]
        row = f"| {net} | {training['optimizer']} | {training['lr']} | {training['weight_decay']} |"
        assert row in markdown, net
        assert f"| {training['epochs']} | {training['patience']} |" in markdown
    assert "trained with the same recipe (happy-sad on two classes)" in markdown
    assert "How the networks were trained" in html
    command = record["config"]["command"]
    assert command.startswith("ferkit study ") and "--quick" in command
    assert "--epochs 1" in command and "--arg=fernet:width=0.25" in command
    assert f"`{command}`" in markdown and command in html


@pytest.mark.slow
def test_the_study_command_gives_back_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    import ferkit.study

    cfg = StudyConfig(tmp_path / "my data", tmp_path / "out", quick=True, models=["fernet"],
                      features=["hog"], seed=3, epochs=2, max_val=50, batch_size=16,
                      happy_sad=False, image_size=64, explain_images=1, threads=1, recipe="ferkit",
                      model_kwargs={"fernet": {"width": 0.5, "depth": 1}})  # fmt: skip
    seen: list[StudyConfig] = []

    def fake_run(c: StudyConfig, log: Any) -> dict[str, Any]:
        seen.append(c)
        return {"config": c.describe(), "stages": {}, "runs": []}

    monkeypatch.setattr(ferkit.study, "run_study", fake_run)
    result = CliRunner().invoke(app, shlex.split(cfg.command())[1:])
    assert result.exit_code == 0, result.output
    assert seen[0].describe() == cfg.describe()
    assert "--recipe ferkit --models fernet" in cfg.command()
    assert StudyConfig(tmp_path, tmp_path / "o").command() == shlex.join(
        ["ferkit", "study", str(tmp_path), "--out", str(tmp_path / "o")]
    )  # defaults are left out


@pytest.mark.slow
def test_rerun_reuses_every_done_stage(study: tuple[Path, Path, dict]) -> None:
    data, out, _ = study
    before = stage_files(out)
    again = run_study(
        StudyConfig(
            data=data,
            out=out,
            quick=True,
            epochs=1,
            max_train=40,
            max_val=40,
            model_kwargs={"fernet": {"width": 0.25}},
            **{**TINY, "embed_samples": None},  # as the CLI run: quick preset
        )
    )
    assert all(r["reused"] for r in again["stages"].values())
    first, second = again["invocations"]
    assert len(first["stages_run"]) == 16 and second["stages_run"] == []
    assert second["stages_reused"] == 16 and second["seconds"] < first["seconds"]
    assert stage_files(out) == before  # not rewritten: same content, same mtime


class Killed(BaseException):
    """Stands for a kill: not an Exception, so no stage catches it."""


@pytest.mark.slow
def test_kill_mid_training_resumes_and_failures_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ferkit.training.deep as deep
    import ferkit.training.svm as svm

    data = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    cfg = dict(data=data, out=out, quick=True, epochs=2, features=["raw"],
               models=["fernet", "convnet"], model_kwargs={"fernet": {"width": 0.25}},
               **TINY)  # fmt: skip
    real_train = deep.train_network

    def killed_after_one_epoch(data, out, cfg, on_epoch, **kw):
        def log_then_kill(row):
            on_epoch(row)  # the study's own per-epoch log line
            if cfg.model == "convnet" and row["epoch"] == 1:
                raise Killed

        return real_train(data, out, cfg, on_epoch=log_then_kill, **kw)

    def broken_svm(*args, **kwargs):
        raise ValueError("solver exploded")

    monkeypatch.setattr(svm, "train_svm", broken_svm)
    monkeypatch.setattr(deep, "train_network", killed_after_one_epoch)
    first: list[str] = []
    with pytest.raises(Killed):
        run_study(StudyConfig(**cfg), log=first.append)
    epochs = [m.split(":")[:2] for m in first if ": epoch " in m]
    assert epochs == [["fernet", " epoch 1/2"], ["fernet", " epoch 2/2"], ["convnet", " epoch 1/2"]]
    assert next(m for m in first if "fernet: epoch 2/2" in m).endswith("at most ~0 min to go")
    # the killed run left a report of how far it got, rendered as convnet started
    live = json.loads((out / "study.json").read_text())
    assert live["in_progress"] and live["invocations"][-1]["status"] == "running"
    assert live["stages"]["convnet"]["status"] == "running" and "happy-sad" not in live["stages"]
    assert live["stages"]["convnet"]["progress"].startswith("epoch 1/2: loss ")
    # the killed invocation's time runs to its last epoch, not to convnet's start
    assert live["invocations"][-1]["seconds"] > live["stages"]["eval-fernet"]["seconds"]
    page = (out / "report.html").read_text()
    assert "In progress (running: convnet)" in page
    assert live["stages"]["convnet"]["progress"] in html_unescape(page)
    assert '<span class="running">running (epoch 1/2 done)</span>' in page  # its comparison row
    history = json.loads((out / "runs" / "convnet" / "history.json").read_text())
    so_far = f"{history[0]['val_accuracy']:.1%} so far (training loop, best epoch 1)"
    assert so_far in page
    assert "compare/comparison.png" not in (out / "report.md").read_text()  # no chart yet
    fernet = live["stages"]["eval-fernet"]["result"]["accuracy"]  # evaluated before convnet ran
    assert re.search(rf"<b>fernet</b>.*?done.*?{fernet:.1%}", page, re.S)
    assert re.search(r"<b>happy-sad</b>.*?pending", page, re.S)  # not reached yet
    assert read_record(out / "runs" / "svm-raw")["status"] == "failed"
    assert read_record(out / "runs" / "fernet")["status"] == "done"
    assert read_record(out / "runs" / "convnet")["status"] == "running"
    assert (out / "runs" / "convnet" / "checkpoint.pt").is_file()  # epoch 1 was saved
    done_before = stage_files(out)

    def report_then_train(data, out_dir, cfg, **kw):
        if cfg.model == "convnet" and not cfg.classes:  # resumed, before its next epoch
            text = (out / "report.md").read_text()
            assert f"| convnet | network | running (epoch 1/2 done) | {so_far} |" in text
        return real_train(data, out_dir, cfg, **kw)

    monkeypatch.setattr(deep, "train_network", report_then_train)
    second: list[str] = []
    result = run_study(StudyConfig(**cfg), log=second.append)
    resumed = [m.split(":")[:2] for m in second if ": epoch " in m]
    assert resumed == [["convnet", " epoch 2/2"], ["happy-sad", " epoch 1/2"],
                       ["happy-sad", " epoch 2/2"]]  # fmt: skip
    stages = result["stages"]
    after = stage_files(out)
    for name, folder in (("data", "data"), ("inspect", "inspect"), ("fernet", "runs/fernet")):
        assert stages[name]["reused"], name
        assert after[f"{folder}/stage.json"] == done_before[f"{folder}/stage.json"], name
    assert stages["convnet"]["status"] == "done" and stages["convnet"]["attempts"] == 2
    total = stages["convnet"]["result"]["train_seconds_total"]  # both attempts' epochs
    row = next(r for r in comparison_rows(result) if r["run"] == "convnet")
    assert row["train_seconds"] == total
    history = json.loads((out / "runs" / "convnet" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # resumed at epoch 2, not restarted
    assert stages["svm-raw"]["status"] == "failed" and stages["svm-raw"]["attempts"] == 2
    assert stages["eval-svm-raw"]["status"] == "skipped"
    html = (out / "report.html").read_text()
    assert "ValueError: solver exploded" in html
    assert stages["eval-convnet"]["status"] == "done"
    assert not result["in_progress"] and "In progress" not in html
    killed, resumed = result["invocations"]
    assert killed["status"] == "interrupted" and killed["finished"] is None
    assert resumed["status"] == "finished" and "convnet" in resumed["stages_run"]
    assert "interrupted" in html and "Wall time of all invocations" in html
    assert "![comparison](compare/comparison.png)" in (out / "report.md").read_text()


def test_happy_sad_is_skipped_with_the_reason_and_val_is_held_out(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", classes=("angry", "happy", "neutral"), per_class=10,
                        splits=("train",))  # fmt: skip
    out = tmp_path / "out"
    result = run_study(StudyConfig(data=data, out=out, quick=True, epochs=1, features=[],
                                   models=[], **TINY))  # fmt: skip
    stages = result["stages"]
    assert stages["happy-sad"]["status"] == "skipped"
    assert "no sad class" in stages["happy-sad"]["reason"]
    assert stages["data"]["result"]["copied"]  # no validation split: 10% of train held out
    assert "10% of train" in stages["data"]["result"]["val_source"]
    assert sum(stages["data"]["result"]["val_counts"].values()) == 3
    assert "no sad class" in (out / "report.html").read_text()
    again = run_study(StudyConfig(data=data, out=out, quick=True, epochs=1, features=[],
                                  models=[], **TINY))  # fmt: skip
    assert again["stages"]["happy-sad"]["reused"]


@pytest.mark.slow
def test_unsplit_class_folders_are_studied_with_a_held_out_validation(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", per_class=10, splits=("",))  # root/<emotion>/*.png
    out = tmp_path / "out"
    result = run_study(StudyConfig(data=data, out=out, quick=True, epochs=1, features=["raw"],
                                   models=["fernet"], happy_sad=False,
                                   model_kwargs={"fernet": {"width": 0.25}}, **TINY))  # fmt: skip
    stages = result["stages"]
    assert "10% of all" in stages["data"]["result"]["val_source"]
    assert sum(stages["data"]["result"]["val_counts"].values()) == 4
    for stage in ("svm-raw", "fernet", "eval-svm-raw", "eval-fernet", "compare", "explain"):
        assert stages[stage]["status"] == "done", (stage, stages[stage])


@pytest.mark.slow
def test_ferkit_recipe_trains_every_network_the_shipped_way(
    study: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    from ferkit.training.recipes import FERKIT_RECIPE

    seed_data, seed_out, seed_record = study
    assert "recipe" not in seed_record["stages"]["cnn10"]["params"]  # old records stay
    out = tmp_path / "out"
    cfg = dict(data=seed_data, out=out, quick=True, epochs=1, features=["hog"],
               models=["fernet"], model_kwargs={"fernet": {"width": 0.25}}, **TINY)  # fmt: skip
    result = run_study(StudyConfig(**cfg, recipe="ferkit"))
    record = result["stages"]["fernet"]
    assert record["status"] == "done" and record["params"]["recipe"] == "ferkit"
    training = json.loads((out / "runs" / "fernet" / "model.json").read_text())["training"]
    for key, value in FERKIT_RECIPE.items():
        expected = TINY["batch_size"] if key == "batch_size" else value  # an explicit size wins
        assert training[key] == expected, key
    command = record["commands"][0]
    assert (
        "--optimizer adamw" in command and "--tta flip" in command and "--patience 100" in command
    )
    assert "--recipe ferkit" in result["config"]["command"]
    markdown = (out / "report.md").read_text()
    assert "| fernet | adamw | 0.002 | 0.0005 | cosine | strong | 8 | none |" in markdown
    seed_markdown = (seed_out / "report.md").read_text()
    assert "`ferkit study --recipe ferkit` trains every network that way" in seed_markdown
    with pytest.raises(ValueError, match="unknown recipe 'nope'; known: notebook, ferkit"):
        StudyConfig(**cfg, recipe="nope")


@pytest.mark.slow
def test_large_images_are_studied_at_96_px_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ferkit.study.data as study_data

    monkeypatch.setattr(study_data, "MAX_AUTO_SIZE", 32)  # these 40-px images stand for 224 px
    data = make_dataset(tmp_path / "data", per_class=8)
    out = tmp_path / "out"
    cfg = dict(data=data, out=out, quick=True, epochs=1, features=["hog"], models=["fernet"],
               happy_sad=False, model_kwargs={"fernet": {"width": 0.25}}, **TINY)  # fmt: skip
    result = run_study(StudyConfig(**cfg))
    data_stage = result["stages"]["data"]
    assert data_stage["params"]["image_size"] == 32
    assert data_stage["result"]["copied"] and data_stage["result"]["source_image_size"] == 40
    copy = Path(data_stage["result"]["dataset"])
    assert Image.open(next((copy / "val" / "happy").iterdir())).size == (32, 32)
    card = json.loads((out / "runs" / "fernet" / "model.json").read_text())
    assert card["image_size"] == 32
    assert json.loads((out / "runs" / "svm-hog" / "model.json").read_text())["image_size"] == 32
    report = (out / "report.md").read_text()
    assert "studied at 32x32 rgb (resized from the data's own 40x40)" in report
    # an explicit size wins over the cap, and a changed size redoes the data stage
    again = run_study(StudyConfig(**{**cfg, "image_size": 24, "models": [], "features": []}))
    assert again["stages"]["data"]["result"]["image_size"] == 24
    assert not again["stages"]["data"]["reused"]


@pytest.mark.slow
def test_report_in_headless_chromium(
    study: tuple[Path, Path, dict], tmp_path: Path, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, out, _ = study
    driver = chromium
    shot = tmp_path / "report.png"
    driver.get((out / "report.html").as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert len(images) >= 20
    assert all(width > 0 for _, width in images), [s for s, w in images if w == 0]
    table = driver.find_element(By.CSS_SELECTOR, "table.comparison").text
    for run in RUNS:
        assert run in table
    assert "%" in table
    assert driver.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert pixels.std() > 10  # text and tables, not a blank page


def test_cli_refuses_unknown_models_and_features(tmp_path: Path) -> None:
    runner = CliRunner()
    for option in (["--models", "cnn10,nope"], ["--features", "cnn"], ["--recipe", "nope"]):
        result = runner.invoke(app, ["study", str(tmp_path), "--out", str(tmp_path / "o"), *option])
        assert result.exit_code == 2, result.output
    assert not (tmp_path / "o").exists()


def test_affectnet_report_shows_the_notebook_figures_labelled_as_test_split(tmp_path: Path) -> None:
    from ferkit.study.report import machine, render_html, render_markdown

    canonical = ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    evaluated = {"status": "done", "result": {"accuracy": 0.4821, "macro_f1": 0.47, "n": 800,
                                              "dropped_classes": []}}  # fmt: skip
    study = {
        "config": {"data": "../shared/data/affectnet_yolo", "mode": "quick"},
        "runs": ["svm-hog", "fernet"],
        "stages": {
            "data": {"status": "done", "result": {"source_canonical": canonical}},
            "svm-hog": {"status": "done", "seconds": 20},
            "eval-svm-hog": evaluated,
            "fernet": {"status": "failed", "error": "RuntimeError: out of memory"},
        },
    }
    html = render_html(tmp_path, study, machine())
    assert "notebook&#x27;s figure (test split)" in html
    assert "48.2%" in html and "50.7% (HOG SVM)" in html
    assert "ResNet18-feature SVM" in html and "69.4%" in html and "93.1%" in html
    assert "not comparable one-to-one" in html
    assert "RuntimeError: out of memory" in html
    assert "resnet50: not in this study (add it to --models)" in html  # runs: svm-hog, fernet
    assert "svm-raw: not in this study (add it to --features)" in html
    assert "<td>svm-hog</td>" in html  # a notebook figure with its counterpart run
    markdown = render_markdown(study, machine())
    assert "| svm-hog | SVM | done | 48.2% | 47.0% | 800 | 50.7% |" in markdown
    assert "| fernet | network | failed | - |" in markdown


def test_dataset_wide_warnings_show_without_a_split(tmp_path: Path) -> None:
    """A data.yaml warning belongs to no split: the report says nothing, not "(None)"."""
    from ferkit.study.report import _problems_html, _problems_markdown

    reason = "path: '/content/x' does not exist here"
    warning = {"severity": "warning", "kind": "missing-base-path", "split": None,
               "path": "/d/data.yaml", "reason": reason}  # fmt: skip
    skipped = {**warning, "severity": "error", "kind": "corrupt-image", "split": "train",
               "path": "/d/train/images/a.jpg", "reason": "not a decodable image"}  # fmt: skip
    summary = {"skipped": [skipped], "warnings": [warning],
               "problem_counts": {"corrupt-image": 1, "missing-base-path": 1}}  # fmt: skip
    (tmp_path / "inspect").mkdir()
    (tmp_path / "inspect" / "inspect.json").write_text(json.dumps(summary))
    markdown = "\n".join(_problems_markdown(tmp_path))
    assert "- warning missing-base-path: `/d/data.yaml`: path: '/content/x'" in markdown
    assert "- error corrupt-image (train): `/d/train/images/a.jpg`" in markdown
    html = _problems_html(tmp_path)
    assert "None" not in markdown and "None" not in html
