"""The ``ferkit`` command line: a thin layer over the Python API (nothing imports it)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
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
out_console = Console(soft_wrap=True)  # long paths stay whole on one line (copy-paste)
err_console = Console(stderr=True)


class ColorOption(StrEnum):
    auto = "auto"
    rgb = "rgb"
    gray = "gray"


class SharpnessOption(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


class TtaOption(StrEnum):
    none = "none"
    flip = "flip"


class DetectorOption(StrEnum):
    auto = "auto"
    dlib = "dlib"
    haar = "haar"


class FacesOption(StrEnum):  # ferkit.evaluation.evaluate.FACES
    given = "given"
    detect = "detect"


FacesArg = Annotated[
    FacesOption,
    typer.Option(
        help="given: the images are face crops (datasets); detect: photos, each cut to its "
        "largest face as `predict` cuts it (images without one are listed, not scored)."
    ),
]
DetectorArg = Annotated[DetectorOption, typer.Option(help="Face detector (auto: dlib, then Haar).")]


ClassNamesArg = Annotated[
    str | None,
    typer.Option(
        help="Class folders not named by emotion: a preset (rafdb: RAF-DB's 1-7; fer2013: "
        "0-6) or FOLDER=EMOTION pairs, e.g. 1=surprise,2=fear."
    ),
]


class CropOption(StrEnum):  # ferkit.evaluation.explain.CROPS
    auto = "auto"
    face = "face"
    whole = "whole"


# one option for `ferkit train` and `ferkit svm` (ferkit.data.sharpness.matching_target)
MatchSharpness = Annotated[
    SharpnessOption,
    typer.Option(
        help="Blur inputs to the training images' sharpness before the model: auto (when "
        "train is much blurrier than val), on or off."
    ),
]


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


def _stderr_line(text: str) -> None:
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def _check_out(folder: Path | None, file: Path | None = None, option: str = "--json") -> None:
    """Fail in one line, before any long work, when ``--out`` (a folder) or a file to write
    (``--json FILE``) cannot be written: read-only, full disk, a file in the way."""
    from ferkit import io

    if folder is not None:
        io.ensure_writable_dir(folder)
    if file is not None:
        io.ensure_writable_file(file, option)


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
    sharp = [f"{s['median_sharpness']:.3g}" for s in summary["splits"].values()]
    table.add_row("", "median sharpness", "", *sharp)
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
        int | None,
        typer.Option(min=8, max=1024, help="Image side in pixels (default: the data's)."),
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
    class_names: ClassNamesArg = None,
) -> None:
    """Layout, classes, per-split counts, imbalance and every problem of a dataset."""
    from ferkit.reports.inspect import inspect_dataset

    try:
        _check_out(out)
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
            class_names=class_names,
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
    cnn = "cnn"


class MethodOption(StrEnum):
    exact = "exact"
    pca = "pca"
    fast = "fast"


@app.command()
def svm(
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")],
    features: Annotated[FeatureOption, typer.Option(help="Feature extractor.")] = FeatureOption.hog,
    method: Annotated[
        MethodOption,
        typer.Option(help="exact SVC, pca (SVC on PCA-256) or fast (PCA+Nystroem+linear)."),
    ] = MethodOption.exact,
    pca_components: Annotated[
        int | None,
        typer.Option(min=1, help="Principal components for --method pca (256) or fast (512)."),
    ] = None,
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
    network: Annotated[
        str | None, typer.Option(help="For --features cnn: network run folder or shipped name.")
    ] = None,
    match_sharpness: MatchSharpness = SharpnessOption.auto,
    seed: Annotated[int, typer.Option(help="Seed for sampling and solvers.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train the seed's SVM baseline on raw, HOG, landmark, dlib-embedding or CNN features."""
    from ferkit.training.svm import train_svm

    params = None if search else {"kernel": kernel, "C": c, "gamma": _number(gamma)}
    try:
        _check_out(out)
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
            feature_params={"run": network} if network else None,
            pca_components=pca_components,
            match_sharpness=match_sharpness.value,
            log=_stderr_line if sys.stderr.isatty() else None,  # the fit has no progress bar
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


def _kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as JSON when they can be: numbers, true, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FerkitError(f"expected key=value, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            out[key.replace("-", "_")] = value
    return out


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")],
    model: Annotated[str, typer.Option(help="Registered network (see `ferkit models`).")] = (
        "fernet"
    ),
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="Network argument key=value (repeatable).")
    ] = None,
    size: Annotated[int | None, typer.Option(min=8, max=1024, help="Image side.")] = None,
    color: Annotated[ColorOption, typer.Option(help="Decode as rgb or gray.")] = ColorOption.auto,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated class subset, e.g. happiness,sadness.")
    ] = None,
    balance: Annotated[
        str, typer.Option(help="undersample (the seed's, largest - margin), weights or none.")
    ] = "undersample",
    margin: Annotated[int, typer.Option(help="Undersampling margin.")] = 750,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs.")] = 50,
    batch_size: Annotated[int, typer.Option(min=2, help="Global batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Initial learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="L2 / weight decay.")] = 0.0,
    optimizer: Annotated[str, typer.Option(help="adam, adamw or sgd.")] = "adam",
    schedule: Annotated[
        str, typer.Option(help="plateau (ReduceLROnPlateau 0.1/3, the seed's) or cosine.")
    ] = "plateau",
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 8,
    augment: Annotated[str, typer.Option(help="none, seed or strong.")] = "seed",
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing.")] = 0.0,
    mixup: Annotated[float, typer.Option(help="Mixup alpha (0 = off).")] = 0.0,
    val_split: Annotated[str, typer.Option(help="Validation split.")] = "val",
    max_train: Annotated[int | None, typer.Option(help="Use a stratified train subset.")] = None,
    init: Annotated[Path | None, typer.Option(help="Start from this run's weights.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (CPU AMX / CUDA).")] = True,
    nproc: Annotated[int, typer.Option(min=1, help="DistributedDataParallel processes.")] = 1,
    threads: Annotated[int | None, typer.Option(help="Torch threads per process.")] = None,
    match_sharpness: MatchSharpness = SharpnessOption.auto,
    tta: Annotated[
        TtaOption,
        typer.Option(
            help="Test-time augmentation saved with the model: none, or flip (average each "
            "image with its mirror; twice the inference cost). Validation uses it too."
        ),
    ] = TtaOption.none,
    seed: Annotated[int, typer.Option(help="Seed for sampling, init and augmentation.")] = 0,
    class_names: ClassNamesArg = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train a network (checkpoint every epoch, early stopping, resumable with --resume)."""
    from ferkit.training.deep import TrainConfig, train_network

    try:
        _check_out(out)
        cfg = TrainConfig(
            model=model,
            model_kwargs=_kwargs(arg),
            image_size=size,
            color=None if color is ColorOption.auto else color.value,
            classes=[c.strip() for c in classes.split(",")] if classes else None,
            class_names=class_names,
            balance=balance,
            margin=margin,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            schedule=schedule,
            patience=patience,
            augment=augment,
            label_smoothing=label_smoothing,
            mixup=mixup,
            seed=seed,
            device=device,
            bf16=bf16,
            val_split=val_split,
            max_train=max_train,
            init=str(init) if init else None,
            threads=threads,
            nproc=nproc,
            match_sharpness=match_sharpness.value,
            tta=tta.value,
        )
        # bars on a terminal; a line per epoch in a log (a background run's only news)
        progress = True if sys.stderr.isatty() else "epochs"
        summary = train_network(data, out, cfg, resume=resume, progress=progress)
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    out_console.print(
        f"{cfg.model}: best validation accuracy {summary['val_accuracy']:.1%} at epoch "
        f"{summary['best_epoch']} of {summary['epochs_run']}"
        + (" (stopped early)" if summary["stopped_early"] else "")
        + f"; {summary['train_seconds_total']} s training"
    )
    out_console.print(f"run saved in {out} (model.safetensors, history.json, curves.png)")


@app.command()
def tune(
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Study folder (resumable).")],
    model: Annotated[str, typer.Option(help="Registered network.")] = "seedcnn",
    trials: Annotated[int, typer.Option(min=1, help="Total finished trials wanted.")] = 20,
    max_epochs: Annotated[int, typer.Option(min=1, help="Hyperband's epoch budget.")] = 10,
    size: Annotated[int | None, typer.Option(min=8, max=1024, help="Image side.")] = None,
    color: Annotated[ColorOption, typer.Option(help="Decode as rgb or gray.")] = ColorOption.auto,
    classes: Annotated[str | None, typer.Option(help="Comma-separated class subset.")] = None,
    balance: Annotated[str, typer.Option(help="undersample, weights or none.")] = "undersample",
    batch_size: Annotated[int, typer.Option(min=2, help="Batch size.")] = 64,
    augment: Annotated[str, typer.Option(help="none, seed or strong.")] = "seed",
    max_train: Annotated[int | None, typer.Option(help="Stratified train subset.")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of the final command in best.json.")] = 50,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after s.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="Torch threads.")] = None,
    seed: Annotated[int, typer.Option(help="Sampler and training seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print best.json.")] = False,
) -> None:
    """Hyperband search (Optuna) over the seed's space: dense units, dropout, lr, L2."""
    from ferkit.training.deep import TrainConfig
    from ferkit.training.tune import tune as run_tune

    try:
        _check_out(out)
        base = TrainConfig(
            model=model,
            image_size=size,
            color=None if color is ColorOption.auto else color.value,
            classes=[c.strip() for c in classes.split(",")] if classes else None,
            balance=balance,
            batch_size=batch_size,
            augment=augment,
            max_train=max_train,
            epochs=epochs,
            device=device,
            threads=threads,
            seed=seed,
        )
        result = run_tune(
            data,
            out,
            model=model,
            trials=trials,
            max_epochs=max_epochs,
            seed=seed,
            base=base,
            timeout=timeout,
            progress=sys.stderr.isatty(),
        )
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    result.pop("table", None)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    out_console.print((out / "trials.md").read_text(), markup=False, highlight=False)
    if result.get("value") is not None:
        out_console.print(f"best validation accuracy {result['value']:.1%}: {result['params']}")
        out_console.print(f"train it: {result['command']}", markup=False, highlight=False)


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="Run folder of a network (or a shipped name).")],
    image: Annotated[
        Path | None, typer.Argument(help="Face image to explain (not needed for --list-layers).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the figures.")] = Path(
        "explain-out"
    ),
    layer: Annotated[
        str | None,
        typer.Option(
            help="Layer to explain (default: the deepest with a map of at least 6x6; "
            "--list-layers shows them)."
        ),
    ] = None,
    list_layers: Annotated[
        bool,
        typer.Option(
            "--list-layers", help="List the layers --layer takes, with their output sizes."
        ),
    ] = False,
    target: Annotated[
        str | None, typer.Option(help="Class to explain (default: the predicted one).")
    ] = None,
    crop: Annotated[
        CropOption,
        typer.Option(
            help="face: the photo's largest face, cut as `predict` cuts it; whole: the whole "
            "image; auto: whole for a crop up to twice the model's side, else the face."
        ),
    ] = CropOption.auto,
    detector: DetectorArg = DetectorOption.auto,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Grad-CAM overlay and feature-map grid of one image (gradcam.png, feature_maps.png)."""
    from ferkit.evaluation.explain import explain_image, run_layers

    if list_layers:
        try:
            listing = run_layers(run)
        except (FerkitError, ValueError, OSError) as exc:
            raise _fail(exc) from None
        if as_json:
            typer.echo(json.dumps(listing, indent=2))
        else:
            _print_layers(listing)
        return
    try:
        if image is None:
            raise FerkitError("give an IMAGE to explain (or --list-layers to list the layers)")
        _check_out(out)
        result = explain_image(
            run, image, out, layer=layer, target=target, crop=crop.value, detector=detector.value
        )
    except (FerkitError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_explanation(result, out)


def _print_layers(listing: dict[str, Any]) -> None:
    """One layer a line, input to output, with its output size; the default is marked."""
    c, h, w = listing["input"]
    typer.echo(f"{listing['run']} ({listing['model']}, input {c}x{h}x{w}): layers for --layer")
    width = max(len(row["name"]) for row in listing["layers"])
    for row in listing["layers"]:
        shape = "x".join(map(str, row["shape"])) if row["shape"] else "not run"
        mark = "  <- default" if row["default"] else ""
        typer.echo(f"  {row['name']:<{width}}  {shape}{mark}")
    typer.echo(
        f"default: the deepest layer whose map is at least {listing['min_side']}x"
        f"{listing['min_side']} ({listing['default']})"
    )


def _print_explanation(result: dict[str, Any], out: Path) -> None:
    """What was explained and where the figures are, for a reader (``--json`` has it all);
    plain lines, so that long paths are never wrapped."""
    face = result["face"]
    if face is None:
        typer.echo(f"{result['image']}: the whole image, as given")
    elif face["faces_found"] == 0:
        typer.secho(f"{result['image']}: {face['note']}", fg="yellow")
    else:
        b = face["box"]
        text = f"{result['image']}: face at {b['left']},{b['top']} {b['width']}x{b['height']}"
        if face["faces_found"] > 1:
            text += f", the largest of {face['faces_found']}"
        if not face["quality_ok"]:
            text += f" (predict would reject it: {', '.join(face['quality_reasons'])})"
        typer.echo(text)
    top = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{name} {p:.1%}" for name, p in top)
    typer.echo(f"{result['model']} / layer {result['layer']}: {shown}")
    explained = result["gradcam_class"]["class"]
    typer.echo(f"Grad-CAM for {explained}: {out / result['files']['gradcam']}")
    typer.echo(f"feature maps: {out / result['files']['feature_maps']}")
    typer.echo(f"all of it as JSON: {out / result['files']['json']}")


@app.command("models")
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the registered networks and the shipped models (loadable by name)."""
    from ferkit.models.nets import list_models
    from ferkit.weights import shipped_cards

    shipped = [
        {
            "name": c["name"],
            "kind": c.get("kind"),
            "classes": c.get("canonical"),
            "input": f"{c.get('image_size')}x{c.get('image_size')} {c.get('color')}",
            "test_time": _test_time(c),
            "validation": c.get("validation"),
            "command": c.get("command"),
        }
        for c in shipped_cards()
    ]
    if as_json:
        typer.echo(json.dumps({"networks": list_models(), "shipped": shipped}, indent=2))
        return
    typer.echo("networks (ferkit train --model NAME):")
    for name in list_models():
        typer.echo(f"  {name}")
    typer.echo("shipped models (use the name wherever a run folder is expected):")
    for entry in shipped:
        score = entry["validation"] or {}
        figure = f"  {score['accuracy']:.1%} on {score['split']}" if "accuracy" in score else ""
        extras = "".join(f"  {t}" for t in entry["test_time"])
        typer.echo(f"  {entry['name']}  {entry['kind']}  {entry['input']}{extras}{figure}")


def _test_time(card: dict[str, Any]) -> list[str]:
    """What a network does to its input at test time beyond resizing (from its architecture)."""
    kwargs = (card.get("architecture") or {}).get("kwargs") or {}
    steps = []
    if kwargs.get("sharpness_target") is not None:
        steps.append(f"sharpness-matched ({kwargs['sharpness_target']:.3g})")
    if kwargs.get("flip_average"):
        steps.append("flip-averaged")
    return steps


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run folder of a network (or a shipped name).")],
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Export to ONNX (the only format so far).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where to write (default RUN/model.onnx, recorded in the card)."
        ),
    ] = None,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default 17).")] = None,
    batch: Annotated[
        str, typer.Option(help="'dynamic' (any batch size) or a fixed batch size.")
    ] = "dynamic",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a network run for deployment; onnxruntime then serves it (when installed)."""
    if not onnx:
        raise _fail(FerkitError("say which format to export: --onnx"))
    from ferkit.models.onnx_export import DEFAULT_OPSET, export_onnx

    try:
        _check_out(None, out, "--out")
        result = export_onnx(run, out, opset=DEFAULT_OPSET if opset is None else opset, batch=batch)
    except (FerkitError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(
        f"wrote {result.path} (opset {result.opset}, uint8 NHWC input, batch {result.batch})"
    )
    if result.card_updated:
        typer.echo("recorded in the run's model.json: load_run and evaluate now use onnxruntime")
    if result.max_abs_diff is None:
        typer.echo("not checked against torch: onnxruntime is not installed (ferkit[onnx])")
    else:
        typer.echo(
            f"max abs difference torch vs onnxruntime (class probabilities, random batch): "
            f"{result.max_abs_diff:.2e}"
        )


@app.command()
def trust(
    run: Annotated[Path, typer.Argument(help="Run folder whose files you trust.")],
    force: Annotated[
        bool, typer.Option(help="Also replace a checksum the file no longer matches.")
    ] = False,
) -> None:
    """Verify a run's files load safely and record their SHA-256 (runs from older ferkit)."""
    from ferkit.models.trust import trust_run

    try:
        lines = trust_run(run, force=force)
    except (FerkitError, OSError) as exc:
        raise _fail(exc) from None
    for line in lines:
        typer.echo(line)


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


SCORED_SPLIT_HELP = (
    "Split name or alias. Default: val, or all of a folder of class folders without splits."
)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder (model.json + weights).")],
    data: Annotated[Path, typer.Argument(help="Dataset to evaluate on.")],
    split: Annotated[str | None, typer.Option(help=SCORED_SPLIT_HELP)] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write metrics JSON here.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write confusion matrix + gallery here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the gallery sample.")] = 0,
    faces: FacesArg = FacesOption.given,
    detector: DetectorArg = DetectorOption.auto,
    class_names: ClassNamesArg = None,
) -> None:
    """Accuracy, macro-F1, per-class metrics and confusion matrix of a run on a split."""
    from ferkit import io
    from ferkit.evaluation.evaluate import evaluate_run

    try:
        _check_out(out, json_out)
        report = evaluate_run(
            run, data, split, out, seed=seed, faces=faces.value, detector=detector.value,
            class_names=class_names, progress=sys.stderr.isatty(),
        )  # fmt: skip
        _print_no_face(report["no_face"])
        if json_out is not None:
            io.write_json(json_out, report)
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
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


def _print_no_face(missing: list[dict[str, str]], show: int = 5) -> None:
    """Images ``--faces detect`` could not score: how many, and the first few with why."""
    if not missing:
        return
    typer.secho(f"{len(missing)} image(s) not scored (no face to cut):", fg="yellow", err=True)
    for item in missing[:show]:
        typer.echo(f"  {item['file']}: {item['reason']}", err=True)
    if len(missing) > show:
        typer.echo(f"  ... {len(missing) - show} more (all in --json)", err=True)


def _identity(report: dict[str, Any]) -> bool:
    """True when every data class maps to the model class of the same name."""
    return all(a == b for a, b in (line.split(" -> ") for line in report["mapping"]))


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset to evaluate on.")],
    split: Annotated[str | None, typer.Option(help=SCORED_SPLIT_HELP)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write md/csv/png here.")] = None,
    faces: FacesArg = FacesOption.given,
    detector: DetectorArg = DetectorOption.auto,
    class_names: ClassNamesArg = None,
) -> None:
    """One table of several runs on the same split."""
    from ferkit.evaluation.compare import compare_runs, markdown_table

    try:
        _check_out(out)
        rows = compare_runs(
            runs, data, split, out, faces=faces.value, detector=detector.value,
            class_names=class_names, progress=sys.stderr.isatty(),
        )  # fmt: skip
    except (FerkitError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(markdown_table(rows), nl=False)


def _face_line(where: str, number: int, face: Any) -> str:
    box = face["box"]
    text = f"{where}  face {number}  box {box['left']},{box['top']} {box['width']}x{box['height']}"
    quality = face["quality"] or {"ok": True, "reasons": []}
    if face["label"] is None:
        return f"{text}  rejected: {'; '.join(quality['reasons'])}"
    text += f"  {face['label']}"
    if face["score"] is not None:
        text += f" {face['score']:.2f}"
    if not quality["ok"]:
        text += f"  (rejected: {'; '.join(quality['reasons'])})"
    return text


def _result_lines(where: str, result: dict[str, Any]) -> list[str]:
    if not result["faces"]:
        return [f"{where}  no face"]
    return [_face_line(where, n, face) for n, face in enumerate(result["faces"], start=1)]


def _print_predictions(document: dict[str, Any]) -> None:
    """One line per face (or per image/frame without one), then the counts."""
    for image in document["images"]:
        for line in _result_lines(image["source"], image):
            typer.echo(line)
    for video in document["videos"]:
        for frame in video["frames"]:
            where = f"{video['source']}  frame {frame['frame']} ({frame['time_s']:.2f} s)"
            for line in _result_lines(where, frame):
                typer.echo(line)
    s = document["summary"]
    videos = f", {s['videos']} videos ({s['frames']} frames analysed)" if s["videos"] else ""
    extra = "".join(f", {s[k]} {k}" for k in ("skipped", "warnings") if s[k])
    typer.echo(
        f"{s['images']} images{videos}, {s['faces']} faces ({s['classified']} classified, "
        f"{s['rejected']} rejected), {s['errors']} errors{extra}; "
        f"model {document['model']['name']}"
    )


def _print_problems_to_stderr(document: dict[str, Any]) -> None:
    for title in ("errors", "warnings", "skipped"):
        for problem in document[title]:
            prefix = {"errors": "error", "warnings": "warning", "skipped": "skipped"}[title]
            typer.echo(f"{prefix}: {problem['path']}: {problem['reason']}", err=True)


@app.command()
def predict(
    inputs: Annotated[
        list[Path], typer.Argument(help="Image files, folders (searched recursively), videos.")
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Run folder or shipped model name (default: the default shipped model)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write annotated copies, video CSV/MP4, predictions.json."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the predictions as JSON (only that on stdout).")
    ] = False,
    detect: Annotated[
        bool,
        typer.Option("--detect/--no-detect", help="Find faces; --no-detect: inputs are crops."),
    ] = True,
    every: Annotated[int, typer.Option(min=1, help="Analyse every N-th video frame.")] = 1,
    landmarks: Annotated[
        bool, typer.Option(help="Keep the 68 landmarks in the results and draw them.")
    ] = False,
    detector: DetectorArg = DetectorOption.auto,
    classify_rejected: Annotated[
        bool, typer.Option(help="Also label faces that fail the quality gate (still flagged).")
    ] = False,
) -> None:
    """Emotion of every face in photos, folders and videos (exit 1 if an input was unreadable)."""
    from ferkit.inference import Predictor

    try:
        _check_out(out)
        predictor = Predictor(
            model,
            detect=detect,
            detector=detector.value,
            classify_rejected=classify_rejected,
            landmarks=landmarks,
        )
        report = predictor.predict_many(inputs, every=every, out=out, progress=sys.stderr.isatty())
    except (FerkitError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    document = report.to_dict()
    _print_problems_to_stderr(document)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_predictions(document)
        if out is not None:
            typer.echo(f"annotated copies and predictions.json in {out}")
    raise typer.Exit(code=0 if report.ok else 1)


@app.command()
def serve(
    model: Annotated[
        str | None,
        typer.Option(help="Run folder or shipped model name (default: the default shipped model)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    max_mb: Annotated[
        float, typer.Option("--max-mb", min=0.001, help="Largest upload accepted, in MiB.")
    ] = 10.0,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a request may wait for and take inference.")
    ] = 30.0,
    workers: Annotated[int, typer.Option(min=1, help="Images analysed at once.")] = 2,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FERKIT_SERVE_TOKEN",
            show_default=False,
            help="Bearer token every API request must send (at least 16 characters); needed "
            "to listen beyond loopback. Prefer the environment variable: it stays out of ps.",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(help="Listen beyond loopback without a token (a proxy controls access)."),
    ] = False,
    max_faces: Annotated[
        int, typer.Option(min=1, help="Faces analysed per image at most (the largest).")
    ] = 100,
    detect_mp: Annotated[
        float,
        typer.Option(
            "--detect-mp", min=0.05, help="Megapixels faces are searched on (larger: scaled)."
        ),
    ] = 2.0,
    header_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client has to send its request headers.")
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections at most; more are refused (503).")
    ] = 256,
) -> None:
    """Web page and JSON API: POST a photo, get its faces and their expressions (docs/serve.md)."""
    try:
        from ferkit.serve import MiB, check_exposure, check_token
        from ferkit.serve import serve as run_server

        token = check_token(token)
        check_exposure(host, token, insecure)
        shown = f"[{host}]" if ":" in host else host
        note = "; the API needs the token" if token else ""
        err_console.print(
            f"ferkit serve: http://{shown}:{port}/  (Ctrl+C stops it{note})",
            highlight=False,
            markup=False,
        )
        run_server(
            model,
            host=host,
            port=port,
            max_bytes=round(max_mb * MiB),
            timeout_s=timeout,
            workers=workers,
            max_detect_pixels=round(detect_mp * 1_000_000),
            max_faces=max_faces,
            token=token,
            insecure=insecure,
            header_timeout_s=header_timeout,
            max_connections=max_connections,
        )
    except (FerkitError, ValueError, OSError) as exc:
        raise _fail(exc) from None


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _model_args(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """``model:key=value`` pairs -> {model: {key: value}} (values parsed as JSON when they can)."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        model, sep, rest = pair.partition(":")
        if not sep or not model:
            raise FerkitError(f"expected model:key=value, got {pair!r}")
        out.setdefault(model, {}).update(_kwargs([rest]))
    return out


@app.command()
def study(
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Study folder (resumable).")],
    quick: Annotated[
        bool, typer.Option(help="~2,000 train / 800 val images, 3 epochs, small search.")
    ] = False,
    models: Annotated[
        str, typer.Option(help="Networks, comma-separated.")
    ] = "cnn10,convnet,fernet",
    features: Annotated[
        str, typer.Option(help="SVM features, comma-separated (raw, hog, landmarks, embedding).")
    ] = "raw,hog",
    seed: Annotated[int, typer.Option(help="Seed for sampling, searches and training.")] = 0,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (quick 3, full 50).")] = None,
    max_train: Annotated[int | None, typer.Option(min=10, help="Train images kept.")] = None,
    max_val: Annotated[int | None, typer.Option(min=10, help="Validation images kept.")] = None,
    search_size: Annotated[
        int | None, typer.Option(min=10, help="SVM grid-search samples (quick 400, full 2000).")
    ] = None,
    recipe: Annotated[
        str,
        typer.Option(help="How every network is trained: seed (the notebook's) or ferkit (ours)."),
    ] = "seed",
    batch_size: Annotated[
        int | None, typer.Option(min=2, help="Network batch size (the recipe's: seed 32).")
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(min=16, help="Image side for every model (default: the data's, at most 96)."),
    ] = None,
    explain_images: Annotated[int, typer.Option(min=1, help="Images explained.")] = 4,
    happy_sad: Annotated[bool, typer.Option(help="Train the happy-vs-sad ConvNet.")] = True,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Torch threads for training (default: the cores usable here)."),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="Network argument model:key=value, e.g. fernet:width=0.5."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print study.json's content.")] = False,
) -> None:
    """The seed study in one command: SVMs, CNNs, happy vs sad, evaluation and DIR/report.html.

    Inspects the data, fits the SVM baselines, trains the networks and the happy-vs-sad
    model, evaluates and compares them and explains the best; re-running resumes where it
    stopped."""
    from ferkit.features import EXTRACTORS
    from ferkit.models.nets import list_models
    from ferkit.study import StudyConfig, run_study

    try:
        cfg = StudyConfig(
            data=data, out=out, quick=quick, models=_names(models), features=_names(features),
            seed=seed, epochs=epochs, max_train=max_train, max_val=max_val,
            search_size=search_size, batch_size=batch_size, explain_images=explain_images,
            recipe=recipe,
            happy_sad=happy_sad, model_kwargs=_model_args(arg), image_size=image_size,
            threads=threads,
        )  # fmt: skip
        unknown = [m for m in cfg.models if m not in list_models()]
        unknown += [f for f in cfg.features if f not in EXTRACTORS or f == "cnn"]
        if unknown:
            raise FerkitError(f"unknown model or feature: {', '.join(unknown)}")
        if out.exists() and not out.is_dir():
            raise FerkitError(f"{out}: exists and is not a folder")
        _check_out(out)
        result = run_study(
            cfg, log=lambda m: err_console.print(f"[dim]study[/] {escape(m)}", highlight=False)
        )
    except (FerkitError, ValueError, RuntimeError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        from ferkit.study.report import accuracy_text, comparison_rows

        for row in comparison_rows(result, out):
            acc = accuracy_text(row)
            out_console.print(f"{row['run']:<12} {row['status']:<8} val accuracy {acc}")
        out_console.print(f"report: {out / 'report.html'}")
    failed = [n for n, r in result["stages"].items() if r.get("status") == "failed"]
    if failed:
        err_console.print(f"[yellow]failed stages:[/] {', '.join(failed)} (see the report)")
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover
    app()
