"""The ``ferkit`` command line: a thin layer over the Python API (nothing imports it)."""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from ferkit import __version__
from ferkit.errors import FerkitError, did_you_mean
from ferkit.records import ExplainResult, StudyRecord


class _Commands(TyperGroup):
    """The CLI's one error handler, around every command (and its option parsing).

    A :class:`FerkitError` (the user's to fix: ``ferkit.errors``) becomes one line, ``error:
    ...``, and exit code 2. Every other exception goes on up with its traceback: it is a bug,
    and a message without its stack would hide where. One special case: a command that needs
    an optional dependency that is not installed (ModuleNotFoundError for a module an extra
    provides, see ``EXTRAS``) ends with the ``pip install 'ferkit[...]'`` line, not a traceback.
    """

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context (not public)
        try:
            return super().invoke(ctx)
        except FerkitError as exc:
            raise _fail(exc) from None
        except ModuleNotFoundError as exc:
            command = f"ferkit {ctx.invoked_subcommand}" if ctx.invoked_subcommand else "ferkit"
            raise _fail(_missing_extra(exc, command)) from None


app = typer.Typer(
    cls=_Commands,
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
    retinaface = "retinaface"
    dlib_haar = "dlib-haar"


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
DetectorArg = Annotated[
    DetectorOption,
    typer.Option(help="Face detector (auto: RetinaFace; dlib-haar: dlib, then Haar)."),
]


CLASS_NAMES_HELP = (
    "Class folders not named by emotion: a preset (rafdb: RAF-DB's 1-7; fer2013: "
    "0-6) or FOLDER=EMOTION pairs, e.g. 1=surprise,2=fear."
)
ClassNamesArg = Annotated[str | None, typer.Option(help=CLASS_NAMES_HELP)]


class CropOption(StrEnum):  # ferkit.evaluation.explain.CROPS
    auto = "auto"
    face = "face"
    whole = "whole"


class BalanceOption(StrEnum):  # ferkit.training.config.BALANCING
    undersample = "undersample"
    weights = "weights"
    none = "none"


class OptimizerOption(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class ScheduleOption(StrEnum):
    plateau = "plateau"
    cosine = "cosine"


class AugmentOption(StrEnum):  # ferkit.training.augment.AUGMENTATIONS
    none = "none"
    notebook = "notebook"
    strong = "strong"
    seed = "seed"  # notebook's old name (ferkit.training.recipes.OLD_NAMES): accepted, warns


class KernelOption(StrEnum):  # ferkit.models.svm.SVMClassifier
    linear = "linear"
    rbf = "rbf"


class RecipeOption(StrEnum):  # ferkit.training.recipes.RECIPES
    notebook = "notebook"
    ferkit = "ferkit"
    seed = "seed"  # notebook's old name (ferkit.training.recipes.OLD_NAMES): accepted, warns


# help panels of the long commands (train, svm, tune, study), so that --help can be scanned
DATA_PANEL = "Data"
MODEL_PANEL = "Model"
FEATURES_PANEL = "Features and SVM"
SEARCH_PANEL = "Search"
OPTIM_PANEL = "Optimisation"
AUGMENT_PANEL = "Augmentation"
HARDWARE_PANEL = "Hardware"
OUTPUT_PANEL = "Output"

# one option for `ferkit train` and `ferkit svm` (ferkit.data.sharpness.matching_target)
MatchSharpness = Annotated[
    SharpnessOption,
    typer.Option(
        help="Blur inputs to the training images' sharpness before the model: auto (when "
        "train is much blurrier than val), on or off.",
        rich_help_panel=DATA_PANEL,
    ),
]
GroupByArg = Annotated[
    str | None,
    typer.Option(
        help="Data without a val split: hold out by subject, the first capture group of this "
        "regex in each item's path (e.g. 'S(\\d+)_'). Default: detected in the file names "
        "(CK+ S010_..., RaFD, subjectN, JAFFE, KDEF), else a random hold-out with a warning; "
        "'none': random.",
        rich_help_panel=DATA_PANEL,
    ),
]
ConfigFileArg = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file of settings (keys: the option names, e.g. lr: 0.01); options given "
        "on the command line override it.",
        dir_okay=False,
    ),
]


def _with_file(
    ctx: typer.Context,
    file: Path | None,
    values: dict[str, Any],
    *classes: type,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``values`` (config field -> the command line's value) under the settings of the
    ``--config`` file: a setting of the file wins over an option left at its default, an option
    typed on the command line wins over the file. ``params`` names the parameter of a field
    whose option is not named after it (``image_size``: ``size``)."""
    if file is None:
        return values
    from ferkit.options import load_settings

    settings = load_settings(file, *classes)
    given = {k for k in values if _typed(ctx, (params or {}).get(k, k))}
    return {**values, **{k: v for k, v in settings.items() if k not in given}}


def _typed(ctx: typer.Context, param: str) -> bool:
    """Whether option ``param`` was given on the command line (or its environment variable),
    not left at its default. By the source's name: typer vendors its own click."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


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
    warnings.showwarning = _show_warning


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


def _message(exc: BaseException) -> str:
    """An exception's text for a person: never a tuple repr (``Exception("a", "b")`` prints
    ``('a', 'b')``) nor KeyError's quotes, and never empty (the class name stands in).
    Exceptions that format themselves (OSError's ``[Errno 2] ...: 'path'``) keep their text."""
    plain = type(exc).__str__ in (BaseException.__str__, KeyError.__str__)
    text = ": ".join(str(a) for a in exc.args) if plain else str(exc)
    return text or type(exc).__name__


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(
        f"[bold red]error:[/] {escape(_message(exc))}", highlight=False, markup=True, soft_wrap=True
    )
    return typer.Exit(code=2)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """ferkit's and the libraries' Python warnings as one ``warning: ...`` line on stderr,
    without the file:line and source line a user cannot act on."""
    text = " ".join(str(message).split())  # one line, whatever the library wrapped
    _stderr_line(f"warning: {text}")


def _usage_error(exc: Any) -> None:
    """A typo'd option or choice in the same one-line ``error: ...`` style as ferkit's own
    errors (typer draws a box), with a "did you mean" for a choice close to a valid one."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed
        return
    text = " ".join(exc.format_message().replace("Value error, ", "").split())
    choice = re.search(r"'([^']*)' is not one of (.*?)\.?$", text)
    if choice:
        text = text.rstrip(".") + did_you_mean(choice[1], re.findall(r"'([^']*)'", choice[2]))
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    _stderr_line(f"error: {text}{hint}")


def _typer_output() -> None:
    """Two changes to typer's output: usage errors as one ``error:`` line (``_usage_error``);
    no ``<bool>`` after a flag (``--json <bool>`` reads as if it took a value)."""
    from typer import rich_utils
    from typer.core import TyperOption

    # a monkeypatch of typer's function, which it calls positionally: its parameter's name
    # (self) is not part of the contract
    rich_utils.rich_format_error = _usage_error  # type: ignore[assignment]

    shown = TyperOption.display_type_rich
    if getattr(shown, "_ferkit", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    # a marker on the function and a patched method of typer's class: neither is in its types
    display_type_rich._ferkit = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_typer_output()


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
    if dup := summary.get("duplicates"):
        _print_duplicates(dup)
    _print_problems(summary, show_problems)
    for name, path in summary.get("figures", {}).items():
        out_console.print(f"figure {name}: {path}")
    for note in summary.get("figure_notes", []):
        out_console.print(f"[yellow]{note}[/]")


def _print_duplicates(dup: dict[str, Any]) -> None:
    """Pair counts within and across splits; across ones say what to do about them."""
    across = dup["exact_across"] + dup["near_across"]
    out_console.print(
        f"duplicates (pHash distance <= {dup['threshold']}, similarity >= {dup['similarity']}): "
        f"within splits "
        f"{dup['exact_within']:,} exact + {dup['near_within']:,} near pairs; across splits "
        f"{dup['exact_across']:,} exact + {dup['near_across']:,} near pairs"
        + (
            f"; {dup['label_conflicts']:,} pairs labelled differently"
            if dup["label_conflicts"]
            else ""
        )
    )
    if across:
        shown = ", ".join(
            f"{k} {v['exact'] + v['near']:,}" for k, v in dup["by_splits"].items() if "-" in k
        )
        out_console.print(
            f"[yellow]images shared across splits ({shown}) inflate validation/test scores: "
            "train with --dedupe to drop the train copies[/]"
        )


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
    duplicates: Annotated[
        bool, typer.Option(help="Look for exact and near-duplicate images within/across splits.")
    ] = True,
    near_threshold: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=32,
            help="Near duplicates: pHash distance at most this, of 64 bits (default: 10, "
            "measured), and thumbnails correlated at 0.92 or more.",
        ),
    ] = None,
) -> None:
    """Layout, classes, per-split counts, imbalance, duplicates and every problem of a dataset."""
    from ferkit.reports.inspect import inspect_dataset

    _check_out(out)
    _, summary = inspect_dataset(
        data,
        out,
        seed=seed,
        embed_samples=embed_samples,
        duplicates=duplicates,
        near_threshold=near_threshold,
        image_size=size,
        color=None if color is ColorOption.auto else color.value,
        splits=split,
        strict=strict,
        cache=cache,
        keep_unknown_classes=keep_unknown_classes,
        class_names=class_names,
        progress=sys.stderr.isatty(),
    )
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
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder to write.", rich_help_panel=OUTPUT_PANEL)
    ],
    features: Annotated[
        FeatureOption, typer.Option(help="Feature extractor.", rich_help_panel=FEATURES_PANEL)
    ] = FeatureOption.hog,
    network: Annotated[
        str | None,
        typer.Option(
            help="For --features cnn: network run folder or shipped name.",
            rich_help_panel=FEATURES_PANEL,
        ),
    ] = None,
    method: Annotated[
        MethodOption,
        typer.Option(
            help="pca (SVC on PCA-256, the recommended path), exact SVC (the notebook's) or fast "
            "(PCA+Nystroem+linear).",
            rich_help_panel=FEATURES_PANEL,
        ),
    ] = MethodOption.pca,
    pca_components: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Principal components for --method pca (256) or fast (512).",
            rich_help_panel=FEATURES_PANEL,
        ),
    ] = None,
    kernel: Annotated[
        KernelOption,
        typer.Option(help="Kernel when not searching.", rich_help_panel=FEATURES_PANEL),
    ] = KernelOption.rbf,
    c: Annotated[
        float, typer.Option("--C", help="C when not searching.", rich_help_panel=FEATURES_PANEL)
    ] = 10.0,
    gamma: Annotated[
        str, typer.Option(help="gamma when not searching.", rich_help_panel=FEATURES_PANEL)
    ] = "scale",
    search: Annotated[
        bool, typer.Option(help="Grid-search kernel, C, gamma first.", rich_help_panel=SEARCH_PANEL)
    ] = False,
    search_on: Annotated[
        str,
        typer.Option(
            help="Split to search on (the notebook's: val), or 'train' for plain CV.",
            rich_help_panel=SEARCH_PANEL,
        ),
    ] = "val",
    search_size: Annotated[
        int, typer.Option(min=10, help="Samples used by the search.", rich_help_panel=SEARCH_PANEL)
    ] = 2000,
    margin: Annotated[
        int,
        typer.Option(help="Undersample classes to largest - margin.", rich_help_panel=DATA_PANEL),
    ] = 750,
    size: Annotated[
        int | None, typer.Option(min=8, max=1024, help="Image side.", rich_help_panel=DATA_PANEL)
    ] = None,
    color: Annotated[
        ColorOption, typer.Option(help="Decode as rgb or gray.", rich_help_panel=DATA_PANEL)
    ] = ColorOption.auto,
    match_sharpness: MatchSharpness = SharpnessOption.auto,
    dedupe: Annotated[
        bool,
        typer.Option(
            help="Drop train images that duplicate (exactly or nearly) a val/test image.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = False,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="Grid search: keep each subject in one CV fold, the subject being the first "
            "capture group of this regex in each item's path. Default: detected in the file "
            "names (CK+ S010_..., RaFD, subjectN, JAFFE, KDEF); 'none': plain stratified folds.",
            rich_help_panel=SEARCH_PANEL,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for sampling and solvers.", rich_help_panel=DATA_PANEL)
    ] = 0,
    config: ConfigFileArg = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the summary as JSON.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
) -> None:
    """Train the notebook's SVM baseline on raw, HOG, landmark, dlib-embedding or CNN features."""
    from ferkit.training.svm import SVMConfig, train_svm

    values: dict[str, Any] = {
        "features": features.value, "network": network, "method": method.value,
        "pca_components": pca_components, "kernel": kernel.value, "C": c, "gamma": gamma,
        "search": search, "search_on": search_on, "search_size": search_size, "margin": margin,
        "image_size": size, "color": None if color is ColorOption.auto else color.value,
        "match_sharpness": match_sharpness.value, "dedupe": dedupe, "group_by": group_by,
        "seed": seed,
    }  # fmt: skip
    values = _with_file(ctx, config, values, SVMConfig, params={"image_size": "size", "C": "c"})
    cfg = SVMConfig(**values)
    _check_out(out)
    summary = train_svm(
        data,
        out,
        **cfg.train_kwargs(),
        progress=sys.stderr.isatty(),
        log=_stderr_line if sys.stderr.isatty() else None,  # the fit has no progress bar
    )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    if (s := summary.search) is not None:
        by = ", by subject" if s.grouped else ""
        out_console.print(
            f"search on {s.split} ({s.samples} samples, {s.folds}-fold{by}): "
            f"best {s.best_params} cv accuracy {s.best_cv_accuracy or 0:.3f}"
        )
    if summary.feature_report is not None:
        out_console.print(f"features: {summary.feature_report}")
    out_console.print(
        f"fitted {summary.method} SVM on {summary.train_samples} samples in "
        f"{summary.fit_seconds} s (features {summary.feature_seconds} s)"
    )
    if (val := summary.validation) is not None:
        out_console.print(
            f"validation accuracy {val.accuracy or 0:.1%} on {val.split} ({val.n or 0:,} images)"
        )
    else:
        out_console.print("no validation split: not scored (ferkit evaluate RUN DATA --split ...)")
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
    ctx: typer.Context,
    data: Annotated[
        list[Path],
        typer.Argument(
            metavar="DATA",
            help="Dataset folder, data.yaml or FER2013 CSV; several are trained on together "
            "(labels by canonical emotion name; size: the largest up to 96 unless --size; "
            "rgb when any is rgb unless --color).",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder to write.", rich_help_panel=OUTPUT_PANEL)
    ],
    model: Annotated[
        str,
        typer.Option(help="Registered network (see `ferkit models`).", rich_help_panel=MODEL_PANEL),
    ] = "fernet",
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg", help="Network argument key=value (repeatable).", rich_help_panel=MODEL_PANEL
        ),
    ] = None,
    size: Annotated[
        int | None, typer.Option(min=8, max=1024, help="Image side.", rich_help_panel=DATA_PANEL)
    ] = None,
    color: Annotated[
        ColorOption, typer.Option(help="Decode as rgb or gray.", rich_help_panel=DATA_PANEL)
    ] = ColorOption.auto,
    classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated class subset, e.g. happiness,sadness.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    balance: Annotated[
        BalanceOption,
        typer.Option(
            help="undersample (the notebook's, largest - margin), weights or none.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = BalanceOption.undersample,
    margin: Annotated[
        int, typer.Option(help="Undersampling margin.", rich_help_panel=DATA_PANEL)
    ] = 750,
    train_split: Annotated[
        str, typer.Option(help="Training split.", rich_help_panel=DATA_PANEL)
    ] = "train",
    val_split: Annotated[
        str, typer.Option(help="Validation split.", rich_help_panel=DATA_PANEL)
    ] = "val",
    max_train: Annotated[
        int | None,
        typer.Option(help="Use a stratified train subset.", rich_help_panel=DATA_PANEL),
    ] = None,
    class_names: Annotated[
        str | None, typer.Option(help=CLASS_NAMES_HELP, rich_help_panel=DATA_PANEL)
    ] = None,
    dedupe: Annotated[
        bool,
        typer.Option(
            help="Drop train images that duplicate (exactly or nearly) a val/test image.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = False,
    group_by: GroupByArg = None,
    match_sharpness: MatchSharpness = SharpnessOption.auto,
    init: Annotated[
        Path | None,
        typer.Option(help="Start from this run's weights.", rich_help_panel=MODEL_PANEL),
    ] = None,
    tta: Annotated[
        TtaOption,
        typer.Option(
            help="Test-time augmentation saved with the model: none, or flip (average each "
            "image with its mirror; twice the inference cost). Validation uses it too.",
            rich_help_panel=MODEL_PANEL,
        ),
    ] = TtaOption.none,
    epochs: Annotated[
        int, typer.Option(min=1, help="Maximum epochs.", rich_help_panel=OPTIM_PANEL)
    ] = 50,
    batch_size: Annotated[
        int, typer.Option(min=2, help="Global batch size.", rich_help_panel=OPTIM_PANEL)
    ] = 64,
    lr: Annotated[
        float, typer.Option(help="Initial learning rate.", rich_help_panel=OPTIM_PANEL)
    ] = 1e-3,
    weight_decay: Annotated[
        float, typer.Option(help="L2 / weight decay.", rich_help_panel=OPTIM_PANEL)
    ] = 0.0,
    optimizer: Annotated[
        OptimizerOption, typer.Option(help="Optimiser.", rich_help_panel=OPTIM_PANEL)
    ] = OptimizerOption.adam,
    schedule: Annotated[
        ScheduleOption,
        typer.Option(
            help="plateau (ReduceLROnPlateau 0.1/3, the notebook's) or cosine.",
            rich_help_panel=OPTIM_PANEL,
        ),
    ] = ScheduleOption.plateau,
    plateau_factor: Annotated[
        float,
        typer.Option(
            help="Learning-rate factor of the plateau schedule.", rich_help_panel=OPTIM_PANEL
        ),
    ] = 0.1,
    plateau_patience: Annotated[
        int,
        typer.Option(
            help="Epochs without progress before plateau cuts it.", rich_help_panel=OPTIM_PANEL
        ),
    ] = 3,
    patience: Annotated[
        int, typer.Option(help="Early-stopping patience (epochs).", rich_help_panel=OPTIM_PANEL)
    ] = 8,
    label_smoothing: Annotated[
        float, typer.Option(help="Label smoothing.", rich_help_panel=OPTIM_PANEL)
    ] = 0.0,
    seed: Annotated[
        int,
        typer.Option(help="Seed for sampling, init and augmentation.", rich_help_panel=OPTIM_PANEL),
    ] = 0,
    augment: Annotated[
        AugmentOption,
        typer.Option(
            help="Training-image augmentation (notebook: the notebook's flip, rotation, zoom and "
            "shear; 'seed' is its deprecated old name).",
            rich_help_panel=AUGMENT_PANEL,
        ),
    ] = AugmentOption.notebook,
    mixup: Annotated[
        float, typer.Option(help="Mixup alpha (0 = off).", rich_help_panel=AUGMENT_PANEL)
    ] = 0.0,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda or cuda:N.", rich_help_panel=HARDWARE_PANEL)
    ] = "auto",
    bf16: Annotated[
        bool,
        typer.Option(
            "--bf16/--no-bf16",
            help="bf16 autocast (CPU AMX / CUDA).",
            rich_help_panel=HARDWARE_PANEL,
        ),
    ] = True,
    channels_last: Annotated[
        bool,
        typer.Option(
            help="channels-last memory format (faster convolutions).",
            rich_help_panel=HARDWARE_PANEL,
        ),
    ] = True,
    nproc: Annotated[
        int,
        typer.Option(
            min=1, help="DistributedDataParallel processes.", rich_help_panel=HARDWARE_PANEL
        ),
    ] = 1,
    threads: Annotated[
        int | None, typer.Option(help="Torch threads per process.", rich_help_panel=HARDWARE_PANEL)
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
    config: ConfigFileArg = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the summary as JSON.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
) -> None:
    """Train a network on one or several datasets (checkpoint every epoch, early stopping,
    resumable with --resume)."""
    from ferkit.training.deep import TrainConfig, train_network

    values: dict[str, Any] = {
        "model": model, "image_size": size,
        "color": None if color is ColorOption.auto else color.value,
        "classes": [c.strip() for c in classes.split(",")] if classes else None,
        "class_names": class_names, "balance": balance.value, "margin": margin,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "optimizer": optimizer.value, "schedule": schedule.value,
        "plateau_factor": plateau_factor, "plateau_patience": plateau_patience,
        "patience": patience, "augment": augment.value, "label_smoothing": label_smoothing,
        "mixup": mixup, "seed": seed, "device": device, "bf16": bf16,
        "channels_last": channels_last, "train_split": train_split, "val_split": val_split,
        "max_train": max_train, "group_by": group_by, "init": str(init) if init else None,
        "threads": threads, "nproc": nproc, "match_sharpness": match_sharpness.value,
        "tta": tta.value, "dedupe": dedupe,
    }  # fmt: skip
    values["model_kwargs"] = _kwargs(arg)
    fields = {"image_size": "size", "model_kwargs": "arg"}
    cfg = TrainConfig(**_with_file(ctx, config, values, TrainConfig, params=fields))
    _check_out(out)  # after the settings: a bad --config file creates no folder
    # bars on a terminal; a line per epoch in a log (a background run's only news)
    progress: bool | Literal["epochs"] = True if sys.stderr.isatty() else "epochs"
    started = time.perf_counter()
    summary = train_network(data, out, cfg, resume=resume, progress=progress)
    wall = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    out_console.print(
        f"{cfg.model}: best validation accuracy {summary.val_accuracy or 0:.1%} at epoch "
        f"{summary.best_epoch} of {summary.epochs_run}"
        + (" (stopped early)" if summary.stopped_early else "")
        + f"; {_train_time(wall, summary.train_seconds_total or 0.0, resume)}"
    )
    if by_dataset := summary.val_accuracy_by_dataset:
        shown = ", ".join(f"{name} {acc:.1%}" for name, acc in by_dataset.items())
        out_console.print(f"validation accuracy per dataset (same epoch): {shown}")
    out_console.print(f"run saved in {out} (model.safetensors, history.json, curves.png)")


def _train_time(wall: float, passes: float, resumed: bool) -> str:
    """The wall time of this command, and what the history's seconds count: the training
    passes alone (no data loading, validation or saving), over every attempt of a resumed run."""
    attempts = " over every attempt" if resumed else ""
    return f"{wall:.1f} s wall time ({passes:.1f} s of it training passes{attempts})"


@app.command()
def tune(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Study folder (resumable).", rich_help_panel=OUTPUT_PANEL),
    ],
    model: Annotated[
        str, typer.Option(help="Registered network.", rich_help_panel=MODEL_PANEL)
    ] = "seedcnn",
    trials: Annotated[
        int, typer.Option(min=1, help="Total finished trials wanted.", rich_help_panel=SEARCH_PANEL)
    ] = 20,
    max_epochs: Annotated[
        int, typer.Option(min=1, help="Hyperband's epoch budget.", rich_help_panel=SEARCH_PANEL)
    ] = 10,
    timeout: Annotated[
        float | None,
        typer.Option(help="Stop starting trials after s.", rich_help_panel=SEARCH_PANEL),
    ] = None,
    size: Annotated[
        int | None, typer.Option(min=8, max=1024, help="Image side.", rich_help_panel=DATA_PANEL)
    ] = None,
    color: Annotated[
        ColorOption, typer.Option(help="Decode as rgb or gray.", rich_help_panel=DATA_PANEL)
    ] = ColorOption.auto,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated class subset.", rich_help_panel=DATA_PANEL)
    ] = None,
    balance: Annotated[
        BalanceOption, typer.Option(help="Class balancing.", rich_help_panel=DATA_PANEL)
    ] = BalanceOption.undersample,
    max_train: Annotated[
        int | None, typer.Option(help="Stratified train subset.", rich_help_panel=DATA_PANEL)
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=2, help="Batch size.", rich_help_panel=OPTIM_PANEL)
    ] = 64,
    augment: Annotated[
        AugmentOption,
        typer.Option(
            help="Training-image augmentation (notebook: the notebook's flip, rotation, zoom and "
            "shear; 'seed' is its deprecated old name).",
            rich_help_panel=AUGMENT_PANEL,
        ),
    ] = AugmentOption.notebook,
    epochs: Annotated[
        int,
        typer.Option(help="Epochs of the final command in best.json.", rich_help_panel=OPTIM_PANEL),
    ] = 50,
    seed: Annotated[
        int, typer.Option(help="Sampler and training seed.", rich_help_panel=OPTIM_PANEL)
    ] = 0,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda or cuda:N.", rich_help_panel=HARDWARE_PANEL)
    ] = "auto",
    threads: Annotated[
        int | None, typer.Option(help="Torch threads.", rich_help_panel=HARDWARE_PANEL)
    ] = None,
    config: ConfigFileArg = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print best.json.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
) -> None:
    """Hyperband search (Optuna) over the notebook's space: dense units, dropout, lr, L2."""
    from ferkit.training.config import TrainConfig
    from ferkit.training.tune import TuneConfig  # optuna: the `tune` extra
    from ferkit.training.tune import tune as run_tune

    own: dict[str, Any] = {"model": model, "trials": trials, "max_epochs": max_epochs,
                           "timeout": timeout, "seed": seed}  # fmt: skip
    values: dict[str, Any] = {
        **own, "image_size": size, "color": None if color is ColorOption.auto else color.value,
        "classes": [c.strip() for c in classes.split(",")] if classes else None,
        "balance": balance.value, "batch_size": batch_size, "augment": augment.value,
        "max_train": max_train, "epochs": epochs, "device": device, "threads": threads,
    }  # fmt: skip
    values = _with_file(ctx, config, values, TuneConfig, TrainConfig, params={"image_size": "size"})
    settings = TuneConfig(**{k: values.pop(k) for k in own})
    # the base of every trial: the data settings, and each trial's model and seed
    base = TrainConfig(**values, model=settings.model, seed=settings.seed)
    _check_out(out)
    result = run_tune(
        data,
        out,
        model=settings.model,
        trials=settings.trials,
        max_epochs=settings.max_epochs,
        seed=settings.seed,
        base=base,
        timeout=settings.timeout,
        progress=sys.stderr.isatty(),
    )
    if as_json:
        best = {k: v for k, v in result.to_dict().items() if k != "table"}  # best.json
        typer.echo(json.dumps(best, indent=2))
        return
    out_console.print((out / "trials.md").read_text(), markup=False, highlight=False)
    if result.value is not None:
        out_console.print(f"best validation accuracy {result.value:.1%}: {result.params}")
        out_console.print(f"train it: {result.command}", markup=False, highlight=False)


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
        listing = run_layers(run)
        if as_json:
            typer.echo(json.dumps(listing, indent=2))
        else:
            _print_layers(listing)
        return
    if image is None:
        raise FerkitError("give an IMAGE to explain (or --list-layers to list the layers)")
    _check_out(out)
    result = explain_image(
        run, image, out, layer=layer, target=target, crop=crop.value, detector=detector.value
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
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


def _print_explanation(result: ExplainResult, out: Path) -> None:
    """What was explained and where the figures are, for a reader (``--json`` has it all);
    plain lines, so that long paths are never wrapped."""
    face = result.face
    if face is None:
        typer.echo(f"{result.image}: the whole image, as given")
    elif face.faces_found == 0 or face.box is None:
        typer.secho(f"{result.image}: {face.note}", fg="yellow")
    else:
        b = face.box
        text = f"{result.image}: face at {b['left']},{b['top']} {b['width']}x{b['height']}"
        if face.faces_found > 1:
            text += f", the largest of {face.faces_found}"
        if not face.quality_ok:
            text += f" (predict would reject it: {', '.join(face.quality_reasons or [])})"
        typer.echo(text)
    shown = ", ".join(f"{name} {p:.1%}" for name, p in result.top(3))
    typer.echo(f"{result.model} / layer {result.layer}: {shown}")
    typer.echo(f"Grad-CAM for {result.gradcam_class.label}: {out / result.files['gradcam']}")
    typer.echo(f"feature maps: {out / result.files['feature_maps']}")
    typer.echo(f"all of it as JSON: {out / result.files['json']}")


@app.command("models")
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the shipped models as a markdown table.")
    ] = False,
) -> None:
    """List the registered networks and the shipped models (loadable by name) with their cards:
    classes, input, validation accuracy and macro-F1, training command and data."""
    from ferkit.models.catalog import NETWORKS  # the names without a torch import
    from ferkit.weights import models_table, shipped_listing

    shipped = shipped_listing()
    if as_json:
        typer.echo(json.dumps({"networks": list(NETWORKS), "shipped": shipped}, indent=2))
        return
    if markdown:
        typer.echo(models_table(shipped, markdown=True))
        return
    typer.echo("networks (ferkit train --model NAME): " + ", ".join(NETWORKS))
    typer.echo("shipped models (use the name wherever a run folder is expected):")
    typer.echo(models_table(shipped))
    typer.echo("each model's classes, training command and data: ferkit models --json")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run folder of a network (or a shipped name).")],
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Export to ONNX (the only format so far).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="FILE.onnx (the graph alone) or a folder (a copy of the run with model.onnx). "
            "Default RUN/model.onnx, recorded in the card; required for a shipped model.",
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
        raise FerkitError("say which format to export: --onnx")
    from ferkit.models.onnx_export import DEFAULT_OPSET, export_onnx

    if out is not None and out.suffix.lower() == ".onnx":
        _check_out(None, out, "--out")
    result = export_onnx(run, out, opset=DEFAULT_OPSET if opset is None else opset, batch=batch)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(
        f"wrote {result.path} (opset {result.opset}, uint8 NHWC input, batch {result.batch})"
    )
    if result.card_updated:
        typer.echo(
            f"recorded in {result.path.parent / 'model.json'}: loading that run now uses "
            "onnxruntime"
        )
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
    from ferkit.training.checkpoint import trust_run

    lines = trust_run(run, force=force)
    for line in lines:
        typer.echo(line)


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

    _check_out(out, json_out)
    report = evaluate_run(
        run, data, split, out, seed=seed, faces=faces.value, detector=detector.value,
        class_names=class_names, progress=sys.stderr.isatty(),
    )  # fmt: skip
    _print_load_problems(report.problems or [])
    _print_no_face(report.no_face or [])
    if json_out is not None:
        io.write_json(json_out, report.to_dict())
    if not report.same_classes:  # dropped classes never map to themselves, so they show too
        out_console.print("class mapping (data -> model):")
        for line in report.mapping or []:
            out_console.print(f"  {line}")
    table = Table(title=f"{report.model} on {report.split} ({report.n:,} samples)")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, m in report.per_class.items():
        table.add_row(name, f"{m.precision:.3f}", f"{m.recall:.3f}", f"{m.f1:.3f}", str(m.support))
    out_console.print(table)
    acc, f1 = report.accuracy_ci or [], report.macro_f1_ci or []
    out_console.print(
        f"accuracy {report.accuracy:.4f} (95% CI {acc[0]:.4f}-{acc[1]:.4f}, Wilson)  "
        f"macro-F1 {report.macro_f1:.4f} (95% CI {f1[0]:.4f}-{f1[1]:.4f}, bootstrap)"
    )
    for name, path in (report.figures or {}).items():
        out_console.print(f"figure {name}: {path}")


def _print_load_problems(problems: list[dict[str, Any]], show: int = 5) -> None:
    """What the reader skipped or warned about while loading the scored data: how many, and
    the first few with the file and the reason (all of them in --json)."""
    skipped = [p for p in problems if p.get("severity") == "skipped"]
    warned = [p for p in problems if p.get("severity") != "skipped"]
    for title, items in (("skipped (not scored)", skipped), ("warning(s)", warned)):
        if not items:
            continue
        typer.secho(f"{len(items)} {title}:", fg="yellow", err=True)
        for item in items[:show]:
            typer.echo(f"  {item['path']}: {item['kind']}: {item['reason']}", err=True)
        if len(items) > show:
            typer.echo(f"  ... {len(items) - show} more (all in --json)", err=True)


def _print_no_face(missing: list[dict[str, str]], show: int = 5) -> None:
    """Images ``--faces detect`` could not score: how many, and the first few with why."""
    if not missing:
        return
    typer.secho(f"{len(missing)} image(s) not scored (no face to cut):", fg="yellow", err=True)
    for item in missing[:show]:
        typer.echo(f"  {item['file']}: {item['reason']}", err=True)
    if len(missing) > show:
        typer.echo(f"  ... {len(missing) - show} more (all in --json)", err=True)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset to evaluate on.")],
    split: Annotated[str | None, typer.Option(help=SCORED_SPLIT_HELP)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write md/csv/png here.")] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the rows (95% intervals) and paired tests here."),
    ] = None,
    faces: FacesArg = FacesOption.given,
    detector: DetectorArg = DetectorOption.auto,
    class_names: ClassNamesArg = None,
) -> None:
    """One table of several runs on the same split: accuracy and macro-F1 with 95% intervals,
    and McNemar's paired test of each pair ("A beats B" only when p < 0.05)."""
    from ferkit import io
    from ferkit.evaluation.compare import compare_runs, markdown_table

    _check_out(out, json_out)
    rows, tests = compare_runs(
        runs, data, split, out, faces=faces.value, detector=detector.value,
        class_names=class_names, progress=sys.stderr.isatty(),
    )  # fmt: skip
    if json_out is not None:
        io.write_json(json_out, {"rows": rows, "tests": tests})
    typer.echo(markdown_table(rows, tests), nl=False)


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
        list[Path],
        # readable=False: an unreadable file is reported with the others, not a whole-run abort
        typer.Argument(help="Image files, folders (searched recursively), videos.", readable=False),
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
        bool,
        typer.Option(
            help="Fit dlib's 68 landmarks (instead of aligning from the detector's 5 points), "
            "keep them in the results and draw them."
        ),
    ] = False,
    detector: DetectorArg = DetectorOption.auto,
    classify_rejected: Annotated[
        bool, typer.Option(help="Also label faces that fail the quality gate (still flagged).")
    ] = False,
    detect_mp: Annotated[
        float,
        typer.Option(
            "--detect-mp",
            min=0.01,
            help="Look for faces on a copy of at most this many megapixels (bounds the time a "
            "large photo takes; boxes and crops are still the photo's own).",
        ),
    ] = 4.0,
) -> None:
    """Emotion of every face in photos, folders and videos (exit 1 if an input was unreadable)."""
    from ferkit.inference import Predictor

    _check_out(out)
    predictor = Predictor(
        model,
        detect=detect,
        detector=detector.value,
        classify_rejected=classify_rejected,
        landmarks=landmarks,
        max_detect_pixels=round(detect_mp * 1_000_000),
    )
    report = predictor.predict_many(inputs, every=every, out=out, progress=sys.stderr.isatty())
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
    from ferkit.serve import MiB, check_exposure, check_port, check_token
    from ferkit.serve import serve as run_server

    token = check_token(token)
    check_exposure(host, token, insecure)
    check_port(host, port)  # before the address is announced (serve checks it again)
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
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Study folder (resumable).", rich_help_panel=OUTPUT_PANEL),
    ],
    quick: Annotated[
        bool,
        typer.Option(
            help="~2,000 train / 800 val images, 3 epochs, small search.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = False,
    max_train: Annotated[
        int | None, typer.Option(min=10, help="Train images kept.", rich_help_panel=DATA_PANEL)
    ] = None,
    max_val: Annotated[
        int | None,
        typer.Option(min=10, help="Validation images kept.", rich_help_panel=DATA_PANEL),
    ] = None,
    dedupe: Annotated[
        bool,
        typer.Option(
            help="Drop train images that duplicate (exactly or nearly) a val/test image.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = False,
    image_size: Annotated[
        int | None,
        typer.Option(
            min=16,
            help="Image side for every model (default: the data's, at most 96).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(help="Seed for sampling, searches and training.", rich_help_panel=DATA_PANEL),
    ] = 0,
    group_by: GroupByArg = None,
    models: Annotated[
        str, typer.Option(help="Networks, comma-separated.", rich_help_panel=MODEL_PANEL)
    ] = "cnn10,convnet,fernet",
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            help="Network argument model:key=value, e.g. fernet:width=0.5.",
            rich_help_panel=MODEL_PANEL,
        ),
    ] = None,
    happy_sad: Annotated[
        bool,
        typer.Option(help="Train the happy-vs-sad ConvNet.", rich_help_panel=MODEL_PANEL),
    ] = True,
    features: Annotated[
        str,
        typer.Option(
            help="SVM features, comma-separated (raw, hog, landmarks, embedding).",
            rich_help_panel=FEATURES_PANEL,
        ),
    ] = "raw,hog",
    search_size: Annotated[
        int | None,
        typer.Option(
            min=10,
            help="SVM grid-search samples (quick 400, full 2000).",
            rich_help_panel=FEATURES_PANEL,
        ),
    ] = None,
    svm_method: Annotated[
        MethodOption,
        typer.Option(
            help="SVM method (ferkit svm --method): pca, exact or fast.",
            rich_help_panel=FEATURES_PANEL,
        ),
    ] = MethodOption.pca,
    recipe: Annotated[
        RecipeOption,
        typer.Option(
            help="How every network is trained: notebook (the notebook's; 'seed' is its "
            "deprecated old name) or ferkit (ours).",
            rich_help_panel=OPTIM_PANEL,
        ),
    ] = RecipeOption.notebook,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Epochs (quick 3, full 50).", rich_help_panel=OPTIM_PANEL),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Network batch size (the recipe's: notebook 32).",
            rich_help_panel=OPTIM_PANEL,
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Early-stopping patience of the networks (the recipe's: notebook 8).",
            rich_help_panel=OPTIM_PANEL,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Torch threads for training (default: the cores usable here).",
            rich_help_panel=HARDWARE_PANEL,
        ),
    ] = None,
    explain_images: Annotated[
        int, typer.Option(min=1, help="Images explained.", rich_help_panel=OUTPUT_PANEL)
    ] = 4,
    embed_samples: Annotated[
        int | None,
        typer.Option(
            min=5,
            help="Images in the inspection's PCA / t-SNE views (quick 500, full 1000).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    config: ConfigFileArg = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print study.json's content.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
) -> None:
    """The notebook's study in one command: SVMs, CNNs, happy vs sad, evaluation, DIR/report.html.

    Inspects the data, fits the SVM baselines, trains the networks and the happy-vs-sad
    model, evaluates and compares them and explains the best; re-running resumes where it
    stopped."""
    from ferkit.features import EXTRACTORS
    from ferkit.models.nets import list_models
    from ferkit.study import StudyConfig, run_study

    values: dict[str, Any] = {
        "quick": quick, "models": _names(models), "features": _names(features),
        "seed": seed, "epochs": epochs, "max_train": max_train, "max_val": max_val,
        "search_size": search_size, "batch_size": batch_size, "patience": patience,
        "explain_images": explain_images, "embed_samples": embed_samples,
        "svm_method": svm_method.value, "recipe": recipe.value, "happy_sad": happy_sad,
        "model_kwargs": _model_args(arg), "image_size": image_size, "threads": threads,
        "dedupe": dedupe, "group_by": group_by,
    }  # fmt: skip
    values = _with_file(ctx, config, values, StudyConfig, params={"model_kwargs": "arg"})
    cfg = StudyConfig(data=data, out=out, **values)
    unknown = [m for m in cfg.models if m not in list_models()]
    unknown += [f for f in cfg.features if f not in EXTRACTORS or f == "cnn"]
    if unknown:
        known = [*list_models(), *(f for f in EXTRACTORS if f != "cnn")]
        hints = "".join(did_you_mean(u, known) for u in unknown)
        raise FerkitError(f"unknown model or feature: {', '.join(unknown)}{hints}")
    if out.exists() and not out.is_dir():
        raise FerkitError(f"{out}: exists and is not a folder")
    _check_out(out)
    result = run_study(
        cfg, log=lambda m: err_console.print(f"[dim]study[/] {escape(m)}", highlight=False)
    )
    if not isinstance(result, StudyRecord):  # a stand-in returning study.json's dict
        result = StudyRecord.from_dict(result)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        from ferkit.study.report import accuracy_text, comparison_rows

        for row in comparison_rows(result.to_dict(), out):
            acc = accuracy_text(row)
            out_console.print(f"{row['run']:<12} {row['status']:<8} val accuracy {acc}")
        for warning in result.warnings or []:  # what to do: in the report
            err_console.print(
                f"[yellow]warning ({warning['kind']}):[/] {escape(warning['message'])}"
            )
        out_console.print(f"report: {out / 'report.html'}")
    failed = result.failed_stages()
    if failed:
        err_console.print(f"[yellow]failed stages:[/] {', '.join(failed)} (see the report)")
        raise typer.Exit(code=1)


# Optional dependencies, by the extra that installs them (pyproject.toml).
EXTRAS = {
    "matplotlib": "train",
    "kornia": "train",
    "optuna": "tune",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "python_multipart": "serve",
    "onnx": "onnx",
}


def _missing_extra(exc: ModuleNotFoundError, what: str = "this command") -> FerkitError:
    """The error for a missing optional dependency: which one, and the extra that brings it.
    Re-raises ``exc`` for a module no extra provides (a broken install, a bug)."""
    root = (exc.name or "").split(".")[0]
    if root not in EXTRAS:
        raise exc
    return FerkitError(
        f"{what} needs {root}, which is not installed: pip install 'ferkit[{EXTRAS[root]}]'"
    )


def run() -> None:
    """The ``ferkit`` console script. Errors are handled inside the app (``_Commands``), so
    ``CliRunner().invoke(app, ...)`` in the tests sees what a user sees."""
    app()


if __name__ == "__main__":  # pragma: no cover
    run()
