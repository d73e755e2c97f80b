"""The ``ferkit`` command line: a thin layer over the Python API (nothing imports it)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ferkit import __version__
from ferkit.errors import FerkitError

app = typer.Typer(
    name="ferkit",
    help="Train, compare, explain and deploy facial-expression recognisers, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console()
err_console = Console(stderr=True)


class ColorOption(StrEnum):
    auto = "auto"
    rgb = "rgb"
    gray = "gray"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ferkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """ferkit: facial-expression recognition you can train, compare, explain and deploy."""


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


def _print_summary(summary: dict[str, Any], show_problems: int) -> None:
    out_console.print(
        f"[bold]{summary['path']}[/]  layout: {summary['layout']}  "
        f"images: {summary['image_size']}x{summary['image_size']} {summary['color']}  "
        f"total: {summary['total']:,}"
    )
    table = Table(title="classes (own name -> canonical) and samples per split")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("canonical")
    for name in summary["splits"]:
        table.add_column(name, justify="right")
    for cls in summary["classes"]:
        counts = [f"{s['per_class'][cls['name']]:,}" for s in summary["splits"].values()]
        table.add_row(str(cls["index"]), cls["name"], cls["canonical"], *counts)
    totals = [f"[bold]{s['count']:,}[/]" for s in summary["splits"].values()]
    table.add_row("", "[bold]total[/]", "", *totals)
    ratios = [str(s["imbalance_ratio"]) for s in summary["splits"].values()]
    table.add_row("", "imbalance (max/min)", "", *ratios)
    out_console.print(table)
    _print_problems(summary, show_problems)
    for name, path in summary.get("figures", {}).items():
        out_console.print(f"figure {name}: {path}")
    for note in summary.get("figure_notes", []):
        out_console.print(f"[yellow]{note}[/]")


def _print_problems(summary: dict[str, Any], show: int) -> None:
    for title, items in (("warnings", summary["warnings"]), ("skipped", summary["skipped"])):
        if not items:
            continue
        noun = "warning" if title == "warnings" and len(items) == 1 else title
        out_console.print(f"[bold yellow]{len(items)} {noun}[/]")
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for p in items:
            by_kind.setdefault(p["kind"], []).append(p)
        for kind, group in by_kind.items():
            out_console.print(f"  {kind}: {len(group)}")
            for p in group[:show]:
                out_console.print(f"    {p['path']}: {p['reason']}", highlight=False, markup=False)
            if len(group) > show:
                out_console.print(f"    ... {len(group) - show} more (all in --json / --out)")
    if not summary["warnings"] and not summary["skipped"]:
        out_console.print("[green]no problems found[/]")


@app.command()
def inspect(
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write figures, inspect.json, problems.csv.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    strict: Annotated[bool, typer.Option(help="Any problem is an error (exit 2).")] = False,
    size: Annotated[
        int | None, typer.Option(min=8, max=1024, help="Image side in pixels [default: data's].")
    ] = None,
    color: Annotated[ColorOption, typer.Option(help="Decode as rgb or gray.")] = ColorOption.auto,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Only these splits (repeatable).")
    ] = None,
    cache: Annotated[bool, typer.Option(help="Use the decoded-pixel cache.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for sampled figures.")] = 0,
    embed_samples: Annotated[
        int, typer.Option(min=5, help="Samples in the PCA / t-SNE views.")
    ] = 1000,
    show_problems: Annotated[
        int, typer.Option(min=0, help="Problems listed per kind in the text output.")
    ] = 10,
    keep_unknown_classes: Annotated[
        bool, typer.Option(help="Keep class folders that are not emotion names.")
    ] = False,
) -> None:
    """Layout, classes, per-split counts, imbalance and every problem of a dataset."""
    from ferkit.reports.inspect import inspect_dataset

    try:
        _, summary = inspect_dataset(
            data,
            out,
            seed=seed,
            embed_samples=embed_samples,
            image_size=size,
            color=None if color is ColorOption.auto else color.value,
            splits=split,
            strict=strict,
            cache=cache,
            keep_unknown_classes=keep_unknown_classes,
            progress=sys.stderr.isatty(),
        )
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, show_problems)


class FeatureOption(StrEnum):
    raw = "raw"
    hog = "hog"
    landmarks = "landmarks"
    embedding = "embedding"


class MethodOption(StrEnum):
    exact = "exact"
    fast = "fast"


@app.command()
def svm(
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")],
    features: Annotated[FeatureOption, typer.Option(help="Feature extractor.")] = FeatureOption.hog,
    method: Annotated[
        MethodOption, typer.Option(help="exact SVC, or fast PCA+Nystroem+linear SVM.")
    ] = MethodOption.exact,
    search: Annotated[bool, typer.Option(help="Grid-search kernel, C, gamma first.")] = False,
    search_on: Annotated[
        str, typer.Option(help="Split to search on (the seed: val), or 'train' for plain CV.")
    ] = "val",
    search_size: Annotated[int, typer.Option(min=10, help="Samples used by the search.")] = 2000,
    kernel: Annotated[str, typer.Option(help="Kernel when not searching.")] = "rbf",
    c: Annotated[float, typer.Option("--C", help="C when not searching.")] = 10.0,
    gamma: Annotated[str, typer.Option(help="gamma when not searching.")] = "scale",
    margin: Annotated[int, typer.Option(help="Undersample classes to largest - margin.")] = 750,
    size: Annotated[int | None, typer.Option(min=8, max=1024, help="Image side.")] = None,
    color: Annotated[ColorOption, typer.Option(help="Decode as rgb or gray.")] = ColorOption.auto,
    seed: Annotated[int, typer.Option(help="Seed for sampling and solvers.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train the seed's SVM baseline on raw, HOG, landmark or embedding features."""
    from ferkit.training.svm import train_svm

    params = None if search else {"kernel": kernel, "C": c, "gamma": _number(gamma)}
    try:
        summary = train_svm(
            data,
            out,
            features=features.value,
            method=method.value,
            search=search,
            search_on=search_on,
            search_size=search_size,
            params=params,
            margin=margin,
            seed=seed,
            image_size=size,
            color=None if color is ColorOption.auto else color.value,
            progress=sys.stderr.isatty(),
        )
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if "search" in summary:
        s = summary["search"]
        out_console.print(
            f"search on {s['split']} ({s['samples']} samples, {s['folds']}-fold): "
            f"best {s['best_params']} cv accuracy {s['best_cv_accuracy']:.3f}"
        )
    if "feature_report" in summary:
        out_console.print(f"features: {summary['feature_report']}")
    out_console.print(
        f"fitted {summary['method']} SVM on {summary['train_samples']} samples in "
        f"{summary['fit_seconds']} s (features {summary['feature_seconds']} s)"
    )
    out_console.print(f"run saved in {out}")


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder (model.json + weights).")],
    data: Annotated[Path, typer.Argument(help="Dataset to evaluate on.")],
    split: Annotated[str, typer.Option(help="Split name or alias.")] = "val",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write metrics JSON here.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write confusion matrix + gallery here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the gallery sample.")] = 0,
) -> None:
    """Accuracy, macro-F1, per-class metrics and confusion matrix of a run on a split."""
    from ferkit import io
    from ferkit.evaluation.evaluate import evaluate_run

    try:
        report = evaluate_run(run, data, split, out, seed=seed, progress=sys.stderr.isatty())
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    if json_out is not None:
        io.write_json(json_out, report)
    if not _identity(report):  # dropped classes never map to themselves, so they show too
        out_console.print("class mapping (data -> model):")
        for line in report["mapping"]:
            out_console.print(f"  {line}")
    table = Table(title=f"{report['model']} on {report['split']} ({report['n']:,} samples)")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, m in report["per_class"].items():
        table.add_row(
            name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"])
        )
    out_console.print(table)
    out_console.print(f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")
    for name, path in report.get("figures", {}).items():
        out_console.print(f"figure {name}: {path}")


def _identity(report: dict[str, Any]) -> bool:
    """True when every data class maps to the model class of the same name."""
    return all(a == b for a, b in (line.split(" -> ") for line in report["mapping"]))


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset to evaluate on.")],
    split: Annotated[str, typer.Option(help="Split name or alias.")] = "val",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write md/csv/png here.")] = None,
) -> None:
    """One table of several runs on the same split."""
    from ferkit.evaluation.compare import compare_runs, markdown_table

    try:
        rows = compare_runs(runs, data, split, out, progress=sys.stderr.isatty())
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(markdown_table(rows), nl=False)


if __name__ == "__main__":  # pragma: no cover
    app()
