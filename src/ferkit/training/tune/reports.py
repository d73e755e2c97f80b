"""What ``ferkit tune`` writes after every trial: ``trials.csv``, ``trials.md``, ``best.json``
(with the ``ferkit train`` command of the best settings) and ``tuning.png``, read from the study
alone so they are current even after a kill."""

from __future__ import annotations

import csv
import io as _stdio
import math
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ferkit import io
from ferkit.records import TuneResult
from ferkit.training.config import TrainConfig
from ferkit.training.tune.space import trial_config, trial_params

# fields best.json's command always shows, at their default too: what a reader checks first
ALWAYS = ("model", "epochs", "batch_size", "lr", "weight_decay", "patience", "seed")


def _row(trial: FrozenTrial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    curve = trial.intermediate_values
    params = trial_params(trial, space)
    if trial.state is TrialState.COMPLETE:
        value: float | None = trial.value
    else:  # pruned or failed: the best epoch it reached, for the record (never the "best")
        value = max(curve.values()) if curve else None
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    row.update({name: params.get(name) for name in space})
    row.update(
        val_accuracy=None if value is None or math.isnan(value) else round(value, 6),
        epochs_run=trial.user_attrs.get("epochs_run", len(curve)),
        best_epoch=_int(trial.user_attrs.get("best_epoch")),
        seconds=trial.user_attrs.get("seconds"),
    )
    return row


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def write_reports(
    study: optuna.Study,
    out: Path,
    data: str | Path,
    base: TrainConfig,
    max_epochs: int,
    plot: bool = True,
) -> TuneResult:
    """trials.csv / trials.md / best.json (and tuning.png when ``plot``) from the study alone,
    written atomically. The plot is skipped between trials: drawing it costs more than a small
    trial's epoch, and the next call to :func:`tune` redraws it anyway."""
    setup = study.user_attrs["setup"]
    all_trials = study.get_trials(deepcopy=False)
    table = [_row(t, setup["space"]) for t in all_trials]
    best = _best(study, out, data, base, setup, max_epochs)
    io.write_text(out / "trials.csv", _csv(table))
    io.write_text(out / "trials.md", _markdown(table, best))
    io.write_json(out / "best.json", best)
    if plot:
        _plot(all_trials, best.get("trial"), out / "tuning.png")
    return TuneResult.from_dict({**best, "table": table})


def _best(
    study: optuna.Study,
    out: Path,
    data: str | Path,
    base: TrainConfig,
    setup: dict[str, Any],
    max_epochs: int,
) -> dict[str, Any]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    info: dict[str, Any] = {
        "model": setup["model"],
        "metric": "val_accuracy",
        "value": None,
        "trial": None,
        "params": None,
        "trials": {
            "complete": states.count(TrialState.COMPLETE),
            "pruned": states.count(TrialState.PRUNED),
            "failed": states.count(TrialState.FAIL),
            "running": states.count(TrialState.RUNNING),
        },
        "max_epochs": max_epochs,
        "search_space": setup["space"],
        "sampler": type(study.sampler).__name__,
        "pruner": study.user_attrs.get("pruner"),
    }
    complete = [t for t in study.get_trials(deepcopy=False) if t.state is TrialState.COMPLETE]
    if not complete:
        info["note"] = "no trial has completed yet"
        return info
    trial = max(complete, key=lambda t: (t.value, -t.number))
    params = trial_params(trial, setup["space"])
    cfg = trial_config(base, params, base.epochs)
    final_out = out / "best"
    info.update(
        value=trial.value,
        trial=trial.number,
        params=params,
        best_epoch=_int(trial.user_attrs.get("best_epoch")),
        epochs_run=_int(trial.user_attrs.get("epochs_run")),
        run=str(out / "trials" / str(trial.number)),
        config=asdict(cfg),
        command=train_command(data, final_out, cfg),
    )
    return info


def train_command(data: str | Path, out: str | Path, cfg: TrainConfig) -> str:
    """The ``ferkit train`` command line that trains ``cfg`` (every field has a flag)."""
    args = ["ferkit", "train", str(data), "--out", str(out), *cfg.to_argv(always=ALWAYS)]
    return " ".join(shlex.quote(a) for a in args)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _csv(table: list[dict[str, Any]]) -> str:
    buf = _stdio.StringIO()
    columns = list(table[0]) if table else ["trial", "state", "val_accuracy", "epochs_run"]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def _markdown(table: list[dict[str, Any]], best: dict[str, Any]) -> str:
    lines = [f"# Tuning {best['model']}: validation accuracy", ""]
    counts = best["trials"]
    lines.append(
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed; "
        f"max {best['max_epochs']} epochs per trial; pruner {best['pruner']}."
    )
    lines.append("")
    if best["trial"] is not None:
        lines += [
            f"Best: trial {best['trial']}, {best['value']:.2%}, params `{best['params']}`.",
            "",
            f"Train it fully: `{best['command']}`",
            "",
        ]
    if table:
        columns = list(table[0])
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        for row in table:
            cells = [_fmt(row[c]) for c in columns]
            if row["trial"] == best["trial"]:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(trials: list[FrozenTrial], best: int | None, target: Path) -> None:
    """Validation accuracy per epoch of every trial; pruned dashed, failed dotted, best bold."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    styles = {TrialState.PRUNED: "--", TrialState.FAIL: ":"}
    for t in trials:
        curve = sorted(t.intermediate_values.items())
        if not curve:
            continue
        steps, values = zip(*curve, strict=True)
        is_best = t.number == best
        ax.plot(
            steps,
            values,
            linestyle=styles.get(t.state, "-"),
            marker="o",
            markersize=3,
            linewidth=2.5 if is_best else 1,
            alpha=1.0 if is_best else 0.6,
            label=f"trial {t.number} (best)" if is_best else None,
        )
    ax.set(
        xlabel="epoch",
        ylabel="validation accuracy",
        title="validation accuracy per trial (pruned dashed, failed dotted)",
    )
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)
    ax.grid(alpha=0.3)
    if best is not None:
        ax.legend(loc="best", fontsize=8)
    io.save_figure(fig, target)
