"""``ferkit study``: the notebook's whole study as resumable stages over ferkit's APIs.

Stages, in order (each in its own folder of ``out`` with a ``stage.json``):

``data``      the working copy (``--quick`` sample and/or held-out validation), when needed
``inspect``   dataset figures (``ferkit inspect``) of the original dataset
``svm-<f>``   one SVM baseline per feature (``ferkit svm``), into ``runs/``
``<model>``   each network (``ferkit train --resume``), into ``runs/``
``happy-sad`` the notebook's two-class ConvNet, when the data has both emotions
``eval-<r>``  each run on the validation split (``ferkit evaluate``), into ``eval/``, right
              after that run is trained
``compare``   one table + bar chart (``ferkit compare``)
``explain``   Grad-CAM + feature maps of the best network on a few validation images

The report (``report.html``, ``report.md``) and ``study.json`` are rendered from the stage
records as each stage starts and ends, so a study of many hours can be watched (stages not yet
reached show as pending) and a killed one still leaves a report of what it did.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ferkit import io
from ferkit.errors import FerkitError
from ferkit.records import StudyRecord
from ferkit.study.config import HAPPY_SAD, HAPPY_SAD_MODEL, StudyConfig
from ferkit.study.stages import Stage, StageSkipped, plain, read_record, run_stage, utc_now
from ferkit.training.recipes import NOTEBOOK, recipe

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"[study] {message}", file=sys.stderr, flush=True)


def _cmd(*parts: Any) -> str:
    return shlex.join(["ferkit", *(str(p) for p in parts if p is not None and p != "")])


def available_threads() -> int:
    """Cores this process may use (taskset / cgroup aware), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _filled(value: int | None, name: str) -> int:
    """A size or epoch count of the config: ``StudyConfig.__post_init__`` fills each None from
    the quick or full preset, so it is an int here (checked, so the type checker knows too)."""
    if value is None:
        raise RuntimeError(f"StudyConfig left {name} unset; its __post_init__ fills it")
    return value


class Study:
    """Builds and runs the stages of one study; ``records`` holds every stage's outcome."""

    def __init__(self, cfg: StudyConfig, log: Log = _stderr) -> None:
        self.cfg = cfg
        self.out = cfg.out
        self.log = log
        self.records: dict[str, dict[str, Any]] = {}
        self.dataset: Path = cfg.data
        self.source_classes: list[str] = []
        self.canonical: list[str] = []
        self.planned = planned_runs(cfg)
        self.started = utc_now()
        self.clock = time.perf_counter()
        self.before: list[dict[str, Any]] = []

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, stage: Stage) -> dict[str, Any]:
        title = stage.title or stage.name
        self.records[stage.name] = {"stage": stage.name, "title": title, "status": "running",
                                    "started": utc_now(), "params": plain(stage.params),
                                    "commands": stage.commands}  # fmt: skip
        self.publish()
        record = run_stage(stage, self.log)
        self.records[stage.name] = record
        self.publish()
        return record

    def _finished(self, name: str) -> str | None:
        """When stage ``name`` last completed: downstream stages redo their work if it changes."""
        record = self.records.get(name) or {}
        return record.get("finished") if record.get("status") == "done" else None

    def _blocked(self, upstream: str) -> None:
        record = self.records.get(upstream) or {}
        if record.get("status") != "done":
            raise StageSkipped(f"{upstream} is {record.get('status', 'missing')}")

    # -- stages ----------------------------------------------------------------------------
    def stage_data(self) -> None:
        from ferkit.data.duplicates import dedupe_message
        from ferkit.study.data import (
            load_source,
            needs_copy,
            study_size,
            train_duplicates,
            write_working_copy,
        )

        cfg = self.cfg
        folder = self.out / "data"
        native, size = study_size(cfg.data, cfg.image_size)

        def work() -> dict[str, Any]:
            ds = load_source(cfg.data, size)
            info: dict[str, Any] = {
                "source_classes": ds.classes,
                "source_canonical": ds.canonical,
                "image_size": ds.image_size,
                "source_image_size": native,
                "color": ds.color,
                "source_counts": {name: len(s) for name, s in ds.splits.items()},
                "duplicates": train_duplicates(ds, cfg.seed, cfg.group_by),
            }
            drop = cfg.dedupe and info["duplicates"]["dropped"] > 0
            if cfg.dedupe:
                self.log(f"data: {dedupe_message(info['duplicates'])}")
                info["deduped"] = info["duplicates"]["dropped"]
            if drop or needs_copy(ds, cfg.max_train, cfg.max_val, resized=size != native):
                copy = write_working_copy(
                    ds,
                    folder,
                    cfg.max_train,
                    cfg.max_val,
                    cfg.seed,
                    dedupe=cfg.dedupe,
                    group_by=cfg.group_by,
                )
                if (copy.get("grouping") or {}).get("warning"):
                    self.log(f"warning: {copy['grouping']['warning']}")
                return {**info, **copy}
            dataset = str(cfg.data.resolve())  # a later re-run may start elsewhere
            counts = {"train_counts": ds.usable_split("train").counts(),
                      "val_counts": ds.usable_split("val").counts()}  # fmt: skip
            return {**info, "dataset": dataset, "copied": False, "val_source": "val", **counts}

        params = {"data": str(cfg.data.resolve()), "max_train": cfg.max_train}
        params.update(max_val=cfg.max_val, seed=cfg.seed)
        if cfg.group_by is not None:  # only then: studies without it keep their records
            params["group_by"] = cfg.group_by
        if size != native:  # only then: studies at the data's own size keep their records
            params["image_size"] = size
        if cfg.dedupe:  # likewise
            params["dedupe"] = True
        record = self._run(Stage("data", folder, params, work, [], "Working copy of the data"))
        if record["status"] != "done":
            raise FerkitError(f"the data stage failed: {record.get('error')}")
        result = record["result"]
        self.dataset = Path(result["dataset"])
        self.source_classes = result["source_classes"]
        self.canonical = result["source_canonical"]

    def stage_inspect(self) -> None:
        from ferkit.reports.inspect import inspect_dataset

        cfg = self.cfg
        folder = self.out / "inspect"

        def work() -> dict[str, Any]:
            _, summary = inspect_dataset(
                cfg.data,
                folder,
                seed=cfg.seed,
                progress=False,
                embed_samples=_filled(cfg.embed_samples, "embed_samples"),
            )
            return {
                "figures": {k: Path(v).name for k, v in summary.get("figures", {}).items()},
                "notes": summary.get("figure_notes", []),
                "splits": {k: v["count"] for k, v in summary["splits"].items()},
                "per_class": {k: v["per_class"] for k, v in summary["splits"].items()},
                "layout": summary.get("layout"),
                "problems": summary.get("problem_counts") or {},
            }

        command = _cmd(
            "inspect", cfg.data, "--out", folder, "--seed", cfg.seed,
            "--embed-samples", cfg.embed_samples,
        )  # fmt: skip
        params = {"data": str(cfg.data.resolve()), "seed": cfg.seed, "embed": cfg.embed_samples}
        self._run(Stage("inspect", folder, params, work, [command], "Dataset inspection"))

    def stage_svm(self, feature: str) -> str:
        from ferkit.training.svm import Features, SVMConfig, train_svm

        cfg = self.cfg
        name = f"svm-{feature}"
        folder = self.out / "runs" / name

        # a working copy names its train images by subject when the subjects are known, so
        # the search's CV folds keep each subject in one fold (the original names otherwise)
        group_by = ((self.records.get("data") or {}).get("result") or {}).get("svm_group_by")

        svm = SVMConfig(
            features=cast(Features, feature), method=cfg.svm_method, search=True,
            search_on="train", search_size=_filled(cfg.search_size, "search_size"),
            seed=cfg.seed, group_by=group_by,
        )  # fmt: skip

        def work() -> dict[str, Any]:
            summary = train_svm(
                self.dataset, folder, **svm.train_kwargs(), progress=False,
                log=lambda line: self.log(f"{name}: {line}"),
                validate=False,  # the study's evaluate stage scores it
            )  # fmt: skip
            search = summary.get("search", {})
            return {
                "run": str(folder),
                "best_params": search.get("best_params"),
                "search_cv_accuracy": search.get("best_cv_accuracy"),
                "search_by_subject": search.get("grouped"),
                "train_samples": summary["train_samples"],
                "fit_seconds": summary["fit_seconds"],
                "feature_seconds": summary["feature_seconds"],
            }

        shown = ("features", "method", "search", "search_on", "search_size", "seed")
        command = _cmd("svm", self.dataset, *svm.to_argv(always=shown), "--out", folder)
        params = {
            "data": self._finished("data"),
            "feature": feature,
            "method": cfg.svm_method,
            "search_size": cfg.search_size,
            "seed": cfg.seed,
        }
        self._run(Stage(name, folder, params, work, [command], f"SVM on {feature} features"))
        return name

    def _train_config(self, model: str, classes: list[str] | None = None) -> Any:
        from ferkit.training.config import TrainConfig

        cfg = self.cfg
        settings = {**recipe(cfg.recipe), "batch_size": cfg.batch_size, "patience": cfg.patience}
        return TrainConfig(
            model=model,
            model_kwargs=dict(cfg.model_kwargs.get(model, {})),
            classes=classes,
            epochs=_filled(cfg.epochs, "epochs"),
            seed=cfg.seed,
            threads=cfg.threads or available_threads(),
            **settings,
        )

    def stage_network(self, name: str, model: str, classes: list[str] | None = None) -> str:
        from ferkit.training.deep import train_network

        folder = self.out / "runs" / name
        tcfg = self._train_config(model, classes)

        def work() -> dict[str, Any]:
            if classes is not None:
                missing = [c for c in HAPPY_SAD if c not in self.canonical]
                if missing:
                    raise StageSkipped(
                        f"the data has no {' / '.join(missing)} class "
                        f"(classes: {', '.join(self.source_classes)})"
                    )
            summary = train_network(self.dataset, folder, tcfg, resume=True, progress=False,
                                    on_epoch=self._epoch_logger(name, tcfg.epochs))  # fmt: skip
            keys = ("val_accuracy", "best_epoch", "epochs_run", "stopped_early", "train_samples")
            return {"run": str(folder), **{k: summary.get(k) for k in keys},
                    "train_seconds_total": summary.get("train_seconds_total")}  # fmt: skip

        # the settings a reader checks first shown at their default too; threads (this
        # machine's cores) left to the machine that re-runs it
        shown = ("model", "epochs", "batch_size", "patience", "seed")
        options = tcfg.to_argv(always=shown, skip=("threads",))
        command = _cmd("train", self.dataset, *options, "--out", folder, "--resume")
        params = {
            "data": self._finished("data"),
            "model": model,
            "kwargs": tcfg.model_kwargs,
            "classes": classes,
            "epochs": tcfg.epochs,
            "batch_size": tcfg.batch_size,
            "patience": tcfg.patience,
            "seed": tcfg.seed,
        }
        if self.cfg.recipe != NOTEBOOK:  # only then: notebook-recipe studies keep their records
            params["recipe"] = self.cfg.recipe
        title = f"Network {model}" + (f" on {' vs '.join(classes)}" if classes else "")
        self._run(Stage(name, folder, params, work, [command], title))
        return name

    def _epoch_logger(self, name: str, epochs: int) -> Callable[[dict[str, float]], None]:
        """One log line and one report per epoch: a full-mode network stage runs for hours, and
        "running" alone would not say whether it is learning or how long the rest will take."""

        last: list[float] = []  # when the previous epoch ended (wall clock, incl. validation)

        def log(row: dict[str, float]) -> None:
            now = time.perf_counter()
            per_epoch = now - last[0] if last else row["seconds"]
            last[:] = [now]
            left = (epochs - row["epoch"]) * per_epoch / 60
            progress = (
                f"epoch {row['epoch']:.0f}/{epochs}: loss {row['train_loss']:.3f},"
                f" val accuracy {row['val_accuracy']:.3f}, {row['seconds']:.0f} s"
                f" ({row['images_per_second']:.0f} img/s); at most ~{left:.0f} min to go"
            )
            self.log(f"{name}: {progress}")
            self.records[name]["progress"] = progress
            self.publish()  # fresh curves in the report; a kill now loses no recorded time

        return log

    def stage_evaluate(self, run: str) -> None:
        from ferkit.evaluation.evaluate import evaluate_run

        folder = self.out / "eval" / run
        run_dir = self.out / "runs" / run

        def work() -> dict[str, Any]:
            self._blocked(run)
            report = evaluate_run(run_dir, self.dataset, "val", folder, seed=self.cfg.seed,
                                  progress=False)  # fmt: skip
            keys = ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "intervals", "n",
                    "split", "dropped_classes", "predict_seconds")  # fmt: skip
            scored = sum(1 for c in report["per_class"].values() if c["support"] > 0)
            return {**{k: report.get(k) for k in keys}, "classes_scored": scored}

        command = _cmd(
            "evaluate", run_dir, self.dataset, "--split", "val", "--out", folder,
            "--seed", self.cfg.seed,
        )  # fmt: skip
        params = {"run": run, "trained": self._finished(run), "data": self._finished("data")}
        self._run(Stage(f"eval-{run}", folder, params, work, [command], f"Evaluation of {run}"))

    def stage_compare(self, runs: list[str]) -> None:
        from ferkit.evaluation.compare import write_comparison

        folder = self.out / "compare"
        done = [r for r in runs if self._finished(f"eval-{r}")]
        paths = [self.out / "runs" / r for r in done]

        def work() -> dict[str, Any]:
            if not paths:
                raise StageSkipped("no run was evaluated")
            # the evaluation stages' own reports: scoring every run again would double the cost
            reports = [
                json.loads((self.out / "eval" / r / "metrics.json").read_text()) for r in done
            ]
            rows, tests = write_comparison(reports, Path(self.dataset).name, folder)
            return {"rows": rows, "tests": tests}

        command = _cmd("compare", *paths, "--data", self.dataset, "--split", "val", "--out", folder)
        params = {"runs": {r: self._finished(f"eval-{r}") for r in done}}
        self._run(Stage("compare", folder, params, work, [command], "Comparison"))

    def best_network(self, networks: list[str]) -> str | None:
        """The multi-class network with the best validation accuracy (evaluation stage)."""
        scored = [
            (self.records[f"eval-{n}"]["result"]["accuracy"], n)
            for n in networks
            if self._finished(f"eval-{n}")
        ]
        return max(scored)[1] if scored else None

    def stage_explain(self, networks: list[str]) -> None:
        best = self.best_network(networks)
        folder = self.out / "explain"
        n = self.cfg.explain_images
        commands: list[str] = []  # filled by the work: the images are chosen there

        def work() -> dict[str, Any]:
            if best is None:
                raise StageSkipped("no network was trained and evaluated")
            run_dir = self.out / "runs" / best
            result = explain_examples(run_dir, self.dataset, folder, n, self.cfg.seed)
            for example in result["examples"]:
                image = folder / "inputs" / f"{example['name']}.png"
                commands.append(_cmd("explain", run_dir, image, "--out", folder / example["name"]))
            return result

        params = {"best": best, "trained": self._finished(str(best)), "images": n}
        title = f"Explanations ({best})" if best else "Explanations"
        self._run(Stage("explain", folder, params, work, commands, title))

    # -- the whole study -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every stage in order, then the report; returns the study record (``study.json``)."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.before = previous_invocations(self.out)
        self.stage_data()
        self.stage_inspect()
        # each run is evaluated as soon as it is trained: in a study of many hours its figure
        # is in the report then, not after the last network
        runs: list[str] = []
        for feature in cfg.features:
            runs.append(self.stage_svm(feature))
            self.stage_evaluate(runs[-1])
        networks: list[str] = []
        for model in cfg.models:
            networks.append(self.stage_network(model, model))
            self.stage_evaluate(model)
        runs += networks
        if cfg.happy_sad:
            runs.append(self.stage_network("happy-sad", HAPPY_SAD_MODEL, list(HAPPY_SAD)))
            self.stage_evaluate("happy-sad")
        self.stage_compare(runs)
        self.stage_explain(networks)
        return self.publish(finished=True)

    def publish(self, finished: bool = False) -> dict[str, Any]:
        """Write ``study.json`` and the report as things stand; returns the study record.

        Called as each stage starts and ends, not only at the end: a full study runs for hours,
        and its user (or a killed run's next invocation) should see how far it got.
        """
        from ferkit.study.flags import cross_split_duplicates, study_warnings
        from ferkit.study.report import write_report

        seconds = round(time.perf_counter() - self.clock, 1)
        done = [r for r in self.records.values() if r.get("status") != "running"]
        ran = [r["stage"] for r in done if not r.get("reused")]
        this = {
            "started": self.started,
            "finished": utc_now() if finished else None,
            "status": "finished" if finished else "running",
            "seconds": seconds,
            "stages_run": ran,
            "stages_reused": len(done) - len(ran),
        }
        study = {
            "config": self.cfg.describe(),
            "dataset": str(self.dataset),
            "runs": self.planned,
            "in_progress": not finished,
            "stages": self.records,
            "seconds_this_invocation": seconds,
            "invocations": [*self.before, this],
        }
        study["warnings"] = study_warnings(study, cross_split_duplicates(study))
        io.write_json(self.out / "study.json", study)
        write_report(self.out, study)
        return study


def planned_runs(cfg: StudyConfig) -> list[str]:
    """The runs a study makes, in order (the report lists the ones not reached as pending)."""
    runs = [f"svm-{f}" for f in cfg.features] + list(cfg.models)
    return runs + (["happy-sad"] if cfg.happy_sad else [])


def previous_invocations(out: Path) -> list[dict[str, Any]]:
    """The invocations recorded in ``out/study.json``: a resumed study's cost is their sum,
    which the latest invocation alone would hide. One still marked running was killed; its
    seconds count up to the last stage boundary or training epoch it reached."""
    try:
        before = json.loads((out / "study.json").read_text()).get("invocations", [])
    except (OSError, ValueError):
        return []
    return [{**i, "status": "interrupted"} if i.get("status") == "running" else i for i in before]


def explain_examples(run_dir: Path, dataset: Path, folder: Path, n: int, seed: int) -> dict:
    """Grad-CAM + feature maps on ``n`` validation images, one class after another.

    The images are saved as PNGs in the run's own size and colour first, so each explanation is
    exactly what ``ferkit explain RUN IMAGE`` gives for that file.
    """
    import numpy as np
    from PIL import Image

    from ferkit.data.dataset import load_dataset
    from ferkit.evaluation.explain import explain_image
    from ferkit.models.store import load_run

    run = load_run(run_dir, backend="torch")
    ds = load_dataset(dataset, image_size=run.image_size, color=run.color,
                      splits=["val"], progress=False)  # fmt: skip
    val = ds.usable_split("val")
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(val.labels == c)) for c in range(len(val.classes))]
    chosen: list[tuple[int, str]] = []
    for i in range(n * len(val.classes)):
        pool = by_class[i % len(val.classes)]
        if len(pool) > i // len(val.classes):
            chosen.append((int(pool[i // len(val.classes)]), val.canonical[i % len(val.classes)]))
        if len(chosen) == n:
            break
    results = []
    for k, (idx, label) in enumerate(chosen):
        name = f"{k}-{label}"
        pixels = val.images[idx]
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        path = folder / "inputs" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        result = explain_image(run, path, folder / name, crop="whole")  # dataset crops
        predicted = result.predicted
        results.append(
            {
                "name": name,
                "true": label,
                "predicted": run.canonical[predicted.index],  # same vocabulary as "true"
                "probability": predicted.probability,
                "layer": result.layer,
            }
        )
    return {"run": run_dir.name, "examples": results}


def run_study(cfg: StudyConfig, log: Log = _stderr) -> StudyRecord:
    """Run (or resume) the study described by ``cfg``; see the module docstring."""
    return StudyRecord.from_dict(Study(cfg, log).run(), cfg.out / "study.json")


def stage_record(out: Path, *parts: str) -> dict[str, Any] | None:
    """The ``stage.json`` of the stage stored at ``out/parts...`` (for scripts and tests)."""
    return read_record(out.joinpath(*parts))
