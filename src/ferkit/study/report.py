"""``report.html`` + ``report.md``: the study as one readable page, rendered from stage records.

The page is plain HTML with inline CSS and **relative links to the PNGs the stages wrote in the
same folder** (nothing is fetched from elsewhere; the folder is the report, move it whole). It
is re-rendered as each stage starts and ends, so it always shows the latest state: the running
stage, pending runs, reused and failed stages included.
"""

from __future__ import annotations

import html
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ferkit import __version__, io
from ferkit.study.config import NOTEBOOK_FIGURES
from ferkit.study.stages import utc_now
from ferkit.training.history import history_summary
from ferkit.training.recipes import current_name

AFFECTNET8 = {"angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
NOTEBOOK_NOTE = (
    "The notebook's figures are accuracies on AffectNet's withheld test split (not shipped "
    "here), with its own sampling, training and ImageNet-pretrained ResNets; ours are on the "
    "validation split of this run's data. They orient, they are not comparable one-to-one."
)


def machine() -> dict[str, Any]:
    """Where the study ran: timings mean little without it."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    torch_version: str
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "not installed"
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch_version,
        "ferkit": __version__,
        "load_average": [round(x, 2) for x in load] if load else None,
        "rendered": utc_now(),
    }


def is_affectnet(study: dict[str, Any]) -> bool:
    """The notebook's dataset: named so, or the same eight emotions."""
    data = study["stages"].get("data", {}).get("result", {})
    name = Path(study["config"]["data"]).name.lower()
    return "affectnet" in name or set(data.get("source_canonical", [])) == AFFECTNET8


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def training_so_far(run_dir: Path) -> dict[str, Any] | None:
    """The epochs a network has finished and its best validation accuracy among them, from
    the ``history.json`` saved with each epoch checkpoint. A full-mode network trains for hours
    (and a resumed one logs nothing until its next epoch ends): the report shows how far it got
    instead of a bare "running"."""
    try:
        history = json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return None
    epochs = [h for h in history if isinstance(h, dict) and "val_accuracy" in h]
    if not epochs:
        return None
    summary = history_summary(epochs)
    return {"epoch": int(epochs[-1]["epoch"]), "best_epoch": int(summary["best_epoch"]),
            "best_val_accuracy": summary["val_accuracy"],
            "train_seconds": summary["train_seconds_total"]}  # fmt: skip


def _run_status(train: dict[str, Any], ev: dict[str, Any], so_far: dict[str, Any] | None) -> str:
    """A run's state: its training's until done, then its evaluation's; a training in progress
    says which epoch it reached."""
    status = train.get("status", "pending")
    if status == "running" and so_far:
        budget = (train.get("params") or {}).get("epochs")
        return f"running (epoch {so_far['epoch']}{f'/{budget}' if budget else ''} done)"
    if status == "running" and train.get("progress"):
        return f"running ({train['progress'].split(':')[0]})"
    if status != "done":
        return status
    return ev.get("status", "trained")  # evaluation not reached yet


def _interval(ci: Any) -> str:
    """`` [69.8-72.5%]``: a 95% interval after its score; nothing for records without one."""
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f" [{ci[0]:.1%}-{ci[1]:.1%}]"
    return ""


def accuracy_text(row: dict[str, Any]) -> str:
    """The row's validation accuracy with its 95% interval; for a network still training, its
    best epoch so far as the training loop measured it, marked so (the evaluation stage's
    figure comes later)."""
    so_far = row.get("so_far")
    if row["accuracy"] is None and so_far and row["status"].startswith("running"):
        return (f"{so_far['best_val_accuracy']:.1%} so far "
                f"(training loop, best epoch {so_far['best_epoch']})")  # fmt: skip
    return _pct(row["accuracy"]) + _interval(row.get("accuracy_ci"))


def f1_text(row: dict[str, Any]) -> str:
    """The row's macro-F1 with its 95% (bootstrap) interval."""
    return _pct(row["macro_f1"]) + _interval(row.get("macro_f1_ci"))


CI_NOTE = (
    "Brackets: 95% confidence intervals (accuracy: Wilson score; macro-F1: bootstrap "
    "percentile, 1000 resamples, seed 0). Two runs whose intervals overlap may not differ: "
    "the paired tests below say whether they do."
)


def paired_tests(study: dict[str, Any]) -> list[str]:
    """The comparison stage's McNemar verdicts ("A beats B" only when p < 0.05)."""
    record = study["stages"].get("compare") or {}
    result = (record.get("result") or {}) if record.get("status") == "done" else {}
    tests = [t for t in result.get("tests") or [] if t.get("verdict")]
    lines = [t["verdict"] for t in tests if "p_value" in t]
    untested = len(tests) - len(lines)
    if untested:  # happy-sad is scored on two classes: no pair with the others
        lines.append(f"{untested} pair(s) not tested: not scored on the same images "
                     "(compare/comparison.json says why)")  # fmt: skip
    return lines


def _warnings_html(study: dict[str, Any]) -> str:
    found = study.get("warnings") or []
    if not found:
        return (
            "<p>None: no score at or above 99% or below chance, no small validation split, "
            "no heavy imbalance, no sign of subject leakage.</p>"
        )
    items = "".join(
        f'<div class="warning"><b>{_esc(w["kind"])}</b>: {_esc(w["message"])}'
        f"<br><i>What to do:</i> {_esc(w['advice'])}</div>"
        for w in found
    )
    return items


def _warnings_markdown(study: dict[str, Any]) -> list[str]:
    found = study.get("warnings") or []
    if not found:
        return []
    lines = ["## Warnings", ""]
    lines += [f"- **{w['kind']}**: {w['message']} What to do: {w['advice']}" for w in found]
    return [*lines, ""]


def comparison_rows(study: dict[str, Any], out: Path | None = None) -> list[dict[str, Any]]:
    """One row per run: its evaluation (or why there is none) and the notebook's figure if any;
    with ``out`` (the study folder), a network still training also gets its progress so far."""
    seed = {run: (label, acc) for label, run, acc in NOTEBOOK_FIGURES if run}
    affectnet = is_affectnet(study)
    rows = []
    for run in study["runs"]:
        train = study["stages"].get(run, {})
        ev = study["stages"].get(f"eval-{run}", {})
        result = ev.get("result", {}) if ev.get("status") == "done" else {}
        label, figure = seed.get(run, (None, None)) if affectnet else (None, None)
        running = train.get("status") == "running"
        so_far = training_so_far(out / "runs" / run) if running and out is not None else None
        rows.append(
            {
                "run": run,
                "kind": "SVM" if run.startswith("svm-") else "network",
                "status": _run_status(train, ev, so_far),
                "so_far": so_far,
                "accuracy": result.get("accuracy"),
                "macro_f1": result.get("macro_f1"),
                "accuracy_ci": result.get("accuracy_ci"),
                "macro_f1_ci": result.get("macro_f1_ci"),
                "n": result.get("n"),
                "dropped": ",".join(result.get("dropped_classes") or []),
                # a network resumed after a kill: its training time over every attempt
                "train_seconds": (train.get("result") or {}).get("train_seconds_total")
                or (so_far or {}).get("train_seconds")  # still training: its epochs so far
                or train.get("seconds"),
                "seed_label": label,
                "seed_accuracy": figure,
            }
        )
    return rows


# (column, TrainConfig key) of the recipe table: what besides the architecture shapes a network
RECIPE = [
    ("optimizer", "optimizer"), ("lr", "lr"), ("weight decay", "weight_decay"),
    ("schedule", "schedule"), ("augmentation", "augment"), ("batch", "batch_size"),
    ("balance", "balance"), ("epochs (budget)", "epochs"), ("patience", "patience"),
    ("label smoothing", "label_smoothing"), ("test-time", "tta"),
]  # fmt: skip


def network_recipes(out: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each trained network's recipe, read from its card (``runs/<run>/model.json``): the
    report must say how the networks were trained, not only what they scored."""
    recipes = {}
    for row in rows:
        if row["kind"] != "network":
            continue
        try:
            card = json.loads((out / "runs" / row["run"] / "model.json").read_text())
        except (OSError, ValueError):
            continue  # not trained yet
        if isinstance(card.get("training"), dict):
            recipes[row["run"]] = {key: card["training"].get(key) for _, key in RECIPE}
            augment = recipes[row["run"]]["augment"]  # a card from when "notebook" was "seed"
            if isinstance(augment, str):
                recipes[row["run"]]["augment"] = current_name(augment, "augment", warn=False)
    return recipes


def recipe_note(recipes: dict[str, dict[str, Any]]) -> tuple[str, list[tuple[str, str]]]:
    """Whether the networks share one recipe, and how ferkit's shipped networks were trained
    (name and score, command): a study network below a shipped model's figure is often the
    recipe's doing, not the architecture's."""
    from ferkit.weights import shipped_cards

    same = len({json.dumps(r, sort_keys=True) for r in recipes.values()}) == 1
    two = " (happy-sad on two classes)" if "happy-sad" in recipes else ""
    head = (
        f"Every network here was trained with the same recipe{two}: they differ by "
        "architecture only."
        if same and len(recipes) > 1
        else "Each network was trained with the recipe in its row."
    )
    shipped = [
        (f"{c['name']} ({c['validation']['accuracy']:.1%} on {c['validation']['split']})",
         c["command"])
        for c in shipped_cards()
        if c.get("kind") == "torch" and c.get("command") and c.get("validation")
    ]  # fmt: skip
    if shipped:
        head += (
            " ferkit's shipped networks were trained with ferkit's recipe (`ferkit study "
            "--recipe ferkit` trains every network that way), by these commands:"
        )
    return head, shipped


def _recipe_cells(recipe: dict[str, Any]) -> list[str]:
    return ["-" if recipe.get(key) is None else str(recipe[key]) for _, key in RECIPE]


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines (the text twin of :func:`_table`)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _secs(value: Any) -> str:
    """Seconds as a reader takes them in: 9,103, not 9103.13."""
    return f"{value:,.0f}" if isinstance(value, int | float) else "-"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _img(out: Path, rel: str, alt: str) -> str:
    """An <img> for a file the stages wrote, or nothing when it is absent (no broken images)."""
    if not (out / rel).is_file():
        return ""
    return (
        f'<figure><a href="{_esc(rel)}"><img src="{_esc(rel)}" alt="{_esc(alt)}" '
        f'loading="eager"></a><figcaption>{_esc(alt)}</figcaption></figure>'
    )


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:1em 2em;color:#1d1d1f;background:#fff}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #e3e3e8;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #d6d6dc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f6}td.num{text-align:right}
.done{color:#1b7f2a}.pending,.trained{color:#6e6e73}.failed{color:#b3261e;font-weight:bold}.skipped,.running{color:#a15c00}
code,pre{font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f6f6f8}
pre{padding:.5em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;margin:.2em 0}
figure{display:inline-block;margin:.4em;vertical-align:top;max-width:100%}
figure img{max-width:100%;max-height:520px;border:1px solid #e3e3e8}
figcaption{font-size:12.5px;color:#555}.note{color:#555;font-size:13.5px;max-width:900px}
.error{background:#fdecea;border-left:4px solid #b3261e;padding:.5em 1em;margin:.5em 0}
.warning{background:#fff4e0;border-left:4px solid #a15c00;padding:.5em 1em;margin:.5em 0}
"""


def _status(status: str) -> str:
    return (
        f'<span class="{_esc(status.split()[0])}">{_esc(status)}</span>'  # "running (epoch 3/50)"
    )


def _machine_html(m: dict[str, Any]) -> str:
    rows = [[_esc(k), f"<code>{_esc(v)}</code>"] for k, v in m.items()]
    return _table(["", ""], rows)


SHOWN_PROBLEMS = 20  # items listed in the report; problems.csv beside it has every one


def dataset_problems(out: Path) -> dict[str, Any]:
    """What the dataset reader skipped or warned about, from ``inspect/inspect.json``: a user
    of an unfamiliar dataset must see that 5 files were unreadable, or that train is blurrier
    than val, in the report, not only in a CSV."""
    try:
        summary = json.loads((out / "inspect" / "inspect.json").read_text())
    except (OSError, ValueError):
        return {}
    items = list(summary.get("skipped") or []) + list(summary.get("warnings") or [])
    counts = ", ".join(f"{k}: {v}" for k, v in (summary.get("problem_counts") or {}).items())
    return {"counts": counts, "items": items[:SHOWN_PROBLEMS], "more": len(items) - SHOWN_PROBLEMS}


def _problems_html(out: Path) -> str:
    problems = dataset_problems(out)
    if not problems:
        return ""
    if not problems["items"]:
        return "<p>The reader skipped nothing and warned about nothing.</p>"
    rows = [[_esc(i.get("severity")), _esc(i.get("kind")), _esc(i.get("split") or "-"),
             f"<code>{_esc(i.get('path'))}</code>", _esc(i.get("reason"))]
            for i in problems["items"]]  # fmt: skip
    more = problems["more"]
    link = '<a href="inspect/problems.csv">inspect/problems.csv</a>'
    return (
        f"<h3>Skipped items and warnings ({_esc(problems['counts'])})</h3>"
        + _table(["severity", "kind", "split", "path", "reason"], rows, "problems")
        + (f"<p>{more} more in {link}.</p>" if more > 0 else f"<p>All of them: {link}.</p>")
    )


def _split_note(item: dict[str, Any]) -> str:
    """ " (train)" for a problem of one split; nothing for one of the whole dataset (data.yaml)."""
    return f" ({item['split']})" if item.get("split") else ""


def _problems_markdown(out: Path) -> list[str]:
    problems = dataset_problems(out)
    if not problems.get("items"):
        return []
    lines = ["", f"### Skipped items and warnings ({problems['counts']})", ""]
    lines += [f"- {i.get('severity')} {i.get('kind')}{_split_note(i)}: `{i.get('path')}`: "
              f"{i.get('reason')}" for i in problems["items"]]  # fmt: skip
    return [*lines, "", "All of them: inspect/problems.csv."]


def _dataset_html(out: Path, study: dict[str, Any]) -> str:
    data = study["stages"].get("data", {}).get("result", {})
    inspect = study["stages"].get("inspect", {}).get("result", {})
    parts = [f"<p>{_esc(source_line(study))}</p>"]
    if data.get("copied"):
        parts.append(
            f"<p>Working copy used by every stage: <code>{_esc(data.get('dataset'))}</code> "
            f"(validation: {_esc(data.get('val_source'))}). Train per class: "
            f"{_esc(data.get('train_counts'))}; validation per class: "
            f"{_esc(data.get('val_counts'))}.</p>"
        )
    figures = inspect.get("figures", {})
    parts.append(_problems_html(out))
    parts += [_img(out, f"inspect/{f}", n.replace("_", " ")) for n, f in figures.items()]
    parts += [f'<p class="note">{_esc(n)}</p>' for n in inspect.get("notes", [])]
    return "\n".join(parts)


def _counterpart(run: str | None, runs: list[str]) -> str:
    """The study run a notebook figure is set beside, or why there is none."""
    if run is None:
        return "no ferkit counterpart run"
    if run in runs:
        return run
    option = "--features" if run.startswith("svm-") else "--models"
    return f"{run}: not in this study (add it to {option})"


def _comparison_html(out: Path, study: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    affectnet = is_affectnet(study)
    headers = ["run", "kind", "status", "val accuracy [95% CI]", "macro-F1 [95% CI]", "n",
               "dropped classes", "train s"]  # fmt: skip
    if affectnet:
        headers.append("notebook's figure (test split)")
    body = []
    for r in rows:
        cells = [
            f"<b>{_esc(r['run'])}</b>", _esc(r["kind"]), _status(r["status"]),
            f'<span class="acc">{_esc(accuracy_text(r))}</span>', _esc(f1_text(r)),
            _esc(r["n"] if r["n"] is not None else "-"), _esc(r["dropped"]),
            _secs(r["train_seconds"]),
        ]  # fmt: skip
        if affectnet:
            seed = r["seed_accuracy"]
            cells.append(f"{_pct(seed)} ({_esc(r['seed_label'])})" if seed else "-")
        body.append(cells)
    parts = [_table(headers, body, "comparison")]
    parts.append(
        '<p class="note">Validation accuracy of each run on this study\'s validation split; '
        "happy-sad is scored on the happy and sad images only (its other classes are dropped), "
        "so its accuracy is a two-class figure. Train s: a network's training time summed over "
        "every attempt (resumed runs included), an SVM stage's time (search, features, fit). "
        f"{_esc(CI_NOTE)}</p>"
    )
    if tests := paired_tests(study):
        items = "".join(f"<li>{_esc(t)}</li>" for t in tests)
        parts.append(f"<h3>Paired tests (McNemar, same validation items)</h3><ul>{items}</ul>")
    parts.append(_img(out, "compare/comparison.png", "accuracy and macro-F1 per run"))
    recipes = network_recipes(out, rows)
    if recipes:
        parts.append("<h3>How the networks were trained (from each run's card)</h3>")
        body = [[f"<b>{_esc(run)}</b>", *map(_esc, _recipe_cells(r))] for run, r in recipes.items()]
        parts.append(_table(["run"] + [c for c, _ in RECIPE], body, "recipe"))
        head, shipped = recipe_note(recipes)
        items = "".join(f"<li>{_esc(n)}: <code>{_esc(c)}</code></li>" for n, c in shipped)
        parts.append(f'<p class="note">{_esc(head)}</p><ul class="note">{items}</ul>')
    if affectnet:
        seed_rows = [[_esc(label), _pct(acc), _esc(_counterpart(run, study["runs"]))]
                     for label, run, acc in NOTEBOOK_FIGURES]  # fmt: skip
        parts.append("<h3>The notebook's published figures (its AffectNet test split)</h3>")
        parts.append(
            _table(["notebook model", "its test accuracy", "study run"], seed_rows, "notebook")
        )
        parts.append(f'<p class="note">{_esc(NOTEBOOK_NOTE)}</p>')
    return "\n".join(parts)


def _runs_html(out: Path, rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        run = r["run"]
        parts.append(f"<h3>{_esc(run)} — validation accuracy {_esc(accuracy_text(r))}</h3>")
        figs = [
            _img(out, f"eval/{run}/confusion_matrix.png", f"{run}: confusion matrix"),
            _img(out, f"runs/{run}/curves.png", f"{run}: training curves"),
            _img(out, f"eval/{run}/misclassified.png", f"{run}: misclassified examples"),
        ]
        parts.append("\n".join(f for f in figs if f) or "<p>No figures (see stages).</p>")
    return "\n".join(parts)


def _explain_html(out: Path, study: dict[str, Any]) -> str:
    record = study["stages"].get("explain", {})
    result = record.get("result") or {}
    if record.get("status") != "done":
        return f"<p>{_status(record.get('status', 'pending'))} {_esc(record.get('reason', ''))}</p>"
    parts = [f"<p>Best network on validation: <b>{_esc(result.get('run'))}</b>.</p>"]
    for ex in result.get("examples", []):
        name = ex["name"]
        parts.append(
            f"<h4>{_esc(name)}: true {_esc(ex['true'])}, predicted {_esc(ex['predicted'])} "
            f"({ex['probability']:.0%}), layer <code>{_esc(ex['layer'])}</code></h4>"
        )
        parts.append(_img(out, f"explain/{name}/gradcam.png", f"{name}: Grad-CAM"))
        parts.append(_img(out, f"explain/{name}/feature_maps.png", f"{name}: feature maps"))
    return "\n".join(parts)


def _stages_html(study: dict[str, Any]) -> str:
    rows = []
    for name, rec in study["stages"].items():
        commands = "".join(f"<pre>{_esc(c)}</pre>" for c in rec.get("commands", []))
        note = rec.get("error") or rec.get("reason") or rec.get("progress") or ""
        rows.append([
            f"<b>{_esc(name)}</b><br>{_esc(rec.get('title', ''))}", _status(rec.get("status", "")),
            _secs(rec.get("seconds")), "reused" if rec.get("reused") else "this run",
            commands or "<i>no single ferkit command</i>", _esc(note),
        ])  # fmt: skip
    total = sum(r.get("seconds", 0) or 0 for r in study["stages"].values())
    table = _table(["stage", "status", "seconds", "when", "equivalent command", "note"], rows)
    invocations = study.get("invocations", [])
    calls = [
        [_esc(i.get("started", "-")), _esc(i.get("finished") or "-"),
         _status(i.get("status", "finished")), _secs(i.get("seconds")),
         _esc(", ".join(i.get("stages_run", [])) or "none"), _esc(i.get("stages_reused"))]
        for i in invocations
    ]  # fmt: skip
    headers = ["started", "finished", "status", "wall seconds", "stages run", "reused"]
    wall = sum(i.get("seconds", 0) or 0 for i in invocations)
    return (
        f"<p>The whole study (the same command resumes it): "
        f"<pre>{_esc(study['config'].get('command', '-'))}</pre></p>"
        f"{table}<p>Sum of the recorded stage times: {total:,.0f} s.</p>"
        f"<h3>Invocations</h3>{_table(headers, calls)}<p>Wall time of all invocations: "
        f"{wall:,.0f} s ({wall / 3600:.1f} h). {_esc(INTERRUPTED_NOTE)}</p>"
    )


def _failures_html(study: dict[str, Any]) -> str:
    failed = {n: r for n, r in study["stages"].items() if r.get("status") == "failed"}
    if not failed:
        return "<p>No stage failed.</p>"
    return "\n".join(
        f'<div class="error"><b>{_esc(n)}</b>: {_esc(r.get("error"))}'
        f"<pre>{_esc(r.get('traceback', ''))}</pre></div>"
        for n, r in failed.items()
    )


INTERRUPTED_NOTE = (
    "An interrupted invocation (killed) counts up to the last stage start or end, or training "
    "epoch, it recorded."
)


def progress_note(study: dict[str, Any]) -> str:
    """The banner of a report rendered while the study runs (or after it was killed)."""
    running = [n for n, r in study["stages"].items() if r.get("status") == "running"]
    now = f"running: {', '.join(running)}" if running else "between stages"
    return (
        f"In progress ({now}). This report is re-rendered as each stage starts and ends; runs "
        "not reached yet show as pending. If the study was killed, the same command resumes it."
    )


def render_html(out: Path, study: dict[str, Any], m: dict[str, Any]) -> str:
    cfg = study["config"]
    rows = comparison_rows(study, out)
    sections = [
        ("Warnings", _warnings_html(study)),
        ("Comparison", _comparison_html(out, study, rows)),
        ("Dataset", _dataset_html(out, study)),
        ("Runs: confusion matrices, training curves, misclassifications", _runs_html(out, rows)),
        ("Explanations: Grad-CAM and feature maps", _explain_html(out, study)),
        ("Failures", _failures_html(study)),
        ("Stages, timings and the exact commands", _stages_html(study)),
        ("Machine", _machine_html(m)),
        ("Settings", f"<pre>{_esc(cfg)}</pre>"),
    ]
    body = "\n".join(f"<h2>{_esc(t)}</h2>\n{s}" for t, s in sections)
    if study.get("in_progress"):
        body = f'<p class="error">{_esc(progress_note(study))}</p>\n{body}'
    title = f"ferkit study — {Path(cfg['data']).name} ({cfg['mode']})"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p class='note'>The notebook's study (inspect data, SVM baselines, "
        f"CNNs, happy vs sad, confusion matrices, feature maps, misclassifications) reproduced "
        f"by <code>ferkit study</code>. Rendered {_esc(m['rendered'])}; this invocation took "
        f"{_esc(study.get('seconds_this_invocation', '-'))} s (reused stages cost nothing).</p>"
        f"{body}</body></html>\n"
    )


def source_line(study: dict[str, Any]) -> str:
    """The dataset in one sentence: where, at which size and colour, classes, split sizes."""
    data = study["stages"].get("data", {}).get("result", {})
    side, native = data.get("image_size"), data.get("source_image_size")
    resized = (
        f" (resized from the data's own {native}x{native})" if native and native != side else ""
    )
    return (
        f"Source: {study['config']['data']}, studied at {side}x{side} {data.get('color')}"
        f"{resized}; classes: {', '.join(data.get('source_classes', []))}; "
        f"splits: {data.get('source_counts')}."
    )


def render_markdown(study: dict[str, Any], m: dict[str, Any], out: Path | None = None) -> str:
    """The report's text; ``out`` (the study folder) decides whether the chart is linked."""
    cfg = study["config"]
    rows = comparison_rows(study, out)
    affectnet = is_affectnet(study)
    lines = [f"# ferkit study — {Path(cfg['data']).name} ({cfg['mode']})", ""]
    if study.get("in_progress"):
        lines += [f"**{progress_note(study)}**", ""]
    lines += _warnings_markdown(study)
    lines += ["## Comparison", ""]
    head = ["run", "kind", "status", "val accuracy [95% CI]", "macro-F1 [95% CI]", "n"]
    if affectnet:
        head.append("notebook's figure (test split)")
    table = []
    for r in rows:
        cells = [r["run"], r["kind"], r["status"], accuracy_text(r), f1_text(r),
                 str(r["n"] if r["n"] is not None else "-")]  # fmt: skip
        if affectnet:
            cells.append(_pct(r["seed_accuracy"]) if r["seed_accuracy"] else "-")
        table.append(cells)
    lines += _md_table(head, table)
    lines += ["", CI_NOTE]
    if tests := paired_tests(study):
        lines += ["", "Paired tests (McNemar, same validation items):", *[f"- {t}" for t in tests]]
    if affectnet:
        figures = ", ".join(f"{label} {acc:.1%}" for label, _, acc in NOTEBOOK_FIGURES)
        lines += [
            "",
            f"The notebook's figures (AffectNet test split): {figures}.",
            "",
            NOTEBOOK_NOTE,
        ]
    if out is not None and (out / "compare" / "comparison.png").is_file():
        lines += ["", "![comparison](compare/comparison.png)"]
    recipes = network_recipes(out, rows) if out is not None else {}
    if recipes:
        lines += ["", "### How the networks were trained", ""]
        table = [[run, *_recipe_cells(r)] for run, r in recipes.items()]
        lines += _md_table(["run"] + [c for c, _ in RECIPE], table)
        note, shipped = recipe_note(recipes)
        lines += ["", note, *[f"- {n}: `{c}`" for n, c in shipped]]
    lines += ["", "## Dataset", "", source_line(study)]
    if out is not None:
        lines += _problems_markdown(out)
    lines += ["", "## Stages", ""]
    table = [
        [name, str(rec.get("status")), _secs(rec.get("seconds")),
         (rec.get("error") or rec.get("reason") or "").replace("|", "/")]
        for name, rec in study["stages"].items()
    ]  # fmt: skip
    lines += _md_table(["stage", "status", "seconds", "note"], table)
    wall = sum(i.get("seconds", 0) or 0 for i in study.get("invocations", []))
    calls = len(study.get("invocations", []))
    which = "the one invocation" if calls == 1 else f"all {calls} invocations"
    lines += ["", f"Wall time of {which}: {wall:,.0f} s "
              f"({wall / 3600:.1f} h). {INTERRUPTED_NOTE}"]  # fmt: skip
    lines += ["", "## Commands", ""]
    if cfg.get("command"):
        lines += [f"- the whole study (the same command resumes it): `{cfg['command']}`"]
    for name, rec in study["stages"].items():
        lines += [f"- {name}: `{c}`" for c in rec.get("commands", [])]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in m.items()]
    lines += ["", "Figures: see report.html (same folder)."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, study: dict[str, Any]) -> dict[str, str]:
    """Write ``report.html`` and ``report.md`` into ``out``; returns their paths."""
    m = machine()
    io.write_text(out / "report.html", render_html(out, study, m))
    io.write_text(out / "report.md", render_markdown(study, m, out))
    return {"html": str(out / "report.html"), "markdown": str(out / "report.md")}
