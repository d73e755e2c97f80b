"""The ``ferkit`` command line: a thin layer over the Python API (nothing imports it)."""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from ferkit import __version__
from ferkit.errors import FerkitError, did_you_mean
from ferkit.options import choices, default_of, field_of, flag
from ferkit.records import ExplainResult, StudyRecord
from ferkit.study.config import StudyConfig
from ferkit.training.config import CLASS_NAMES_HELP, SVMConfig, TrainConfig, TuneConfig


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


ClassNamesArg = Annotated[str | None, typer.Option(help=CLASS_NAMES_HELP)]


class CropOption(StrEnum):  # ferkit.evaluation.explain.CROPS
    auto = "auto"
    face = "face"
    whole = "whole"


# help panels of the long commands (train, svm, tune, study), so that --help can be scanned
DATA_PANEL = "Data"
MODEL_PANEL = "Model"
FEATURES_PANEL = "Features and SVM"
SEARCH_PANEL = "Search"
OPTIM_PANEL = "Optimisation"
AUGMENT_PANEL = "Augmentation"
HARDWARE_PANEL = "Hardware"
OUTPUT_PANEL = "Output"

# -- train, svm, tune and study: each option is a field of the command's config dataclass -----
# The signatures below name each option's parameter and panel; its flag, help text, default,
# limits and choices are read from the field (ferkit.options), written nowhere else.
AUTO = "auto"  # the choice that leaves a field None (--color auto: the data's own)


def _setting(cls: type, name: str, panel: str, *, help: str | None = None) -> Any:
    """The typer option that sets field ``name`` of config ``cls``: flag, help text and limits
    from the field (``help``: only where a command means something else by the field)."""
    f = field_of(cls, name)
    decl = flag(f)
    if isinstance(default_of(f), bool):
        decl += "/--no-" + decl.removeprefix("--")
    bounds = {k: f.metadata[k] for k in ("min", "max") if f.metadata.get(k) is not None}
    return typer.Option(decl, help=help or f.metadata["help"], rich_help_panel=panel, **bounds)


def _default(cls: type, name: str) -> Any:
    """The option's default: the field's, as the command line writes it (a list comma-joined,
    None as ``auto`` for a choice, a dict as no ``key=value`` pair)."""
    value = default_of(field_of(cls, name))
    if value is None and choices(cls, name) is not None:
        return AUTO
    if isinstance(value, list):
        return ",".join(value)
    return None if isinstance(value, dict) else value


def _choice(cls: type, name: str) -> Any:
    """The option's type: the field's ``Literal`` (typer offers its values), with ``auto`` first
    when the field may be None and its deprecated old names last (the config maps them)."""
    f = field_of(cls, name)
    auto = (AUTO,) if default_of(f) is None else ()
    values = (*auto, *(choices(cls, name) or ()), *f.metadata["aliases"])
    return cast(Any, Literal).__getitem__(values)


def _none_if_auto(value: str) -> str | None:
    return None if value == AUTO else value


if TYPE_CHECKING:  # mypy reads a choice as the str it is; typer reads the Literal built below
    ColorChoice = str
    SharpnessChoice = str
    BalanceChoice = str
    OptimizerChoice = str
    ScheduleChoice = str
    AugmentChoice = str
    TtaChoice = str
    DistillViewsChoice = str
    FeaturesChoice = str
    MethodChoice = str
    KernelChoice = str
    RecipeChoice = str
    SvmMethodChoice = str
else:
    ColorChoice = _choice(TrainConfig, "color")  # SVMConfig's is the same (test_options)
    SharpnessChoice = _choice(TrainConfig, "match_sharpness")
    BalanceChoice = _choice(TrainConfig, "balance")
    OptimizerChoice = _choice(TrainConfig, "optimizer")
    ScheduleChoice = _choice(TrainConfig, "schedule")
    AugmentChoice = _choice(TrainConfig, "augment")
    TtaChoice = _choice(TrainConfig, "tta")
    DistillViewsChoice = _choice(TrainConfig, "distill_views")
    FeaturesChoice = _choice(SVMConfig, "features")
    MethodChoice = _choice(SVMConfig, "method")
    KernelChoice = _choice(SVMConfig, "kernel")
    RecipeChoice = _choice(StudyConfig, "recipe")
    SvmMethodChoice = _choice(StudyConfig, "svm_method")


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
    color: Annotated[ColorChoice, typer.Option(help="Decode as rgb or gray.")] = AUTO,
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
        color=_none_if_auto(color),
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


@app.command()
def svm(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Dataset folder, data.yaml or FER2013 CSV.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder to write.", rich_help_panel=OUTPUT_PANEL)
    ],
    features: Annotated[FeaturesChoice, _setting(SVMConfig, "features", FEATURES_PANEL)] = _default(
        SVMConfig, "features"
    ),
    network: Annotated[str | None, _setting(SVMConfig, "network", FEATURES_PANEL)] = _default(
        SVMConfig, "network"
    ),
    method: Annotated[MethodChoice, _setting(SVMConfig, "method", FEATURES_PANEL)] = _default(
        SVMConfig, "method"
    ),
    pca_components: Annotated[
        int | None, _setting(SVMConfig, "pca_components", FEATURES_PANEL)
    ] = _default(SVMConfig, "pca_components"),
    kernel: Annotated[KernelChoice, _setting(SVMConfig, "kernel", FEATURES_PANEL)] = _default(
        SVMConfig, "kernel"
    ),
    c: Annotated[float, _setting(SVMConfig, "C", FEATURES_PANEL)] = _default(SVMConfig, "C"),
    gamma: Annotated[str, _setting(SVMConfig, "gamma", FEATURES_PANEL)] = _default(
        SVMConfig, "gamma"
    ),
    search: Annotated[bool, _setting(SVMConfig, "search", SEARCH_PANEL)] = _default(
        SVMConfig, "search"
    ),
    search_on: Annotated[str, _setting(SVMConfig, "search_on", SEARCH_PANEL)] = _default(
        SVMConfig, "search_on"
    ),
    search_size: Annotated[int, _setting(SVMConfig, "search_size", SEARCH_PANEL)] = _default(
        SVMConfig, "search_size"
    ),
    margin: Annotated[int, _setting(SVMConfig, "margin", DATA_PANEL)] = _default(
        SVMConfig, "margin"
    ),
    size: Annotated[int | None, _setting(SVMConfig, "image_size", DATA_PANEL)] = _default(
        SVMConfig, "image_size"
    ),
    color: Annotated[ColorChoice, _setting(SVMConfig, "color", DATA_PANEL)] = _default(
        SVMConfig, "color"
    ),
    match_sharpness: Annotated[
        SharpnessChoice, _setting(SVMConfig, "match_sharpness", DATA_PANEL)
    ] = _default(SVMConfig, "match_sharpness"),
    dedupe: Annotated[bool, _setting(SVMConfig, "dedupe", DATA_PANEL)] = _default(
        SVMConfig, "dedupe"
    ),
    group_by: Annotated[str | None, _setting(SVMConfig, "group_by", SEARCH_PANEL)] = _default(
        SVMConfig, "group_by"
    ),
    seed: Annotated[int, _setting(SVMConfig, "seed", DATA_PANEL)] = _default(SVMConfig, "seed"),
    config: ConfigFileArg = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the summary as JSON.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
) -> None:
    """Train the notebook's SVM baseline on raw, HOG, landmark, dlib-embedding or CNN features."""
    from ferkit.training.svm import train_svm

    values: dict[str, Any] = {
        "features": features, "network": network, "method": method,
        "pca_components": pca_components, "kernel": kernel, "C": c, "gamma": gamma,
        "search": search, "search_on": search_on, "search_size": search_size, "margin": margin,
        "image_size": size, "color": _none_if_auto(color),
        "match_sharpness": match_sharpness, "dedupe": dedupe, "group_by": group_by,
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
    model: Annotated[str, _setting(TrainConfig, "model", MODEL_PANEL)] = _default(
        TrainConfig, "model"
    ),
    arg: Annotated[list[str] | None, _setting(TrainConfig, "model_kwargs", MODEL_PANEL)] = _default(
        TrainConfig, "model_kwargs"
    ),
    size: Annotated[int | None, _setting(TrainConfig, "image_size", DATA_PANEL)] = _default(
        TrainConfig, "image_size"
    ),
    color: Annotated[ColorChoice, _setting(TrainConfig, "color", DATA_PANEL)] = _default(
        TrainConfig, "color"
    ),
    classes: Annotated[str | None, _setting(TrainConfig, "classes", DATA_PANEL)] = _default(
        TrainConfig, "classes"
    ),
    balance: Annotated[BalanceChoice, _setting(TrainConfig, "balance", DATA_PANEL)] = _default(
        TrainConfig, "balance"
    ),
    margin: Annotated[int, _setting(TrainConfig, "margin", DATA_PANEL)] = _default(
        TrainConfig, "margin"
    ),
    train_split: Annotated[str, _setting(TrainConfig, "train_split", DATA_PANEL)] = _default(
        TrainConfig, "train_split"
    ),
    val_split: Annotated[str, _setting(TrainConfig, "val_split", DATA_PANEL)] = _default(
        TrainConfig, "val_split"
    ),
    max_train: Annotated[int | None, _setting(TrainConfig, "max_train", DATA_PANEL)] = _default(
        TrainConfig, "max_train"
    ),
    class_names: Annotated[str | None, _setting(TrainConfig, "class_names", DATA_PANEL)] = _default(
        TrainConfig, "class_names"
    ),
    dedupe: Annotated[bool, _setting(TrainConfig, "dedupe", DATA_PANEL)] = _default(
        TrainConfig, "dedupe"
    ),
    group_by: Annotated[str | None, _setting(TrainConfig, "group_by", DATA_PANEL)] = _default(
        TrainConfig, "group_by"
    ),
    match_sharpness: Annotated[
        SharpnessChoice, _setting(TrainConfig, "match_sharpness", DATA_PANEL)
    ] = _default(TrainConfig, "match_sharpness"),
    resample_via: Annotated[
        int | None, _setting(TrainConfig, "resample_via", DATA_PANEL)
    ] = _default(TrainConfig, "resample_via"),
    init: Annotated[Path | None, _setting(TrainConfig, "init", MODEL_PANEL)] = _default(
        TrainConfig, "init"
    ),
    tta: Annotated[TtaChoice, _setting(TrainConfig, "tta", MODEL_PANEL)] = _default(
        TrainConfig, "tta"
    ),
    teacher: Annotated[str | None, _setting(TrainConfig, "teacher", MODEL_PANEL)] = _default(
        TrainConfig, "teacher"
    ),
    distill: Annotated[float, _setting(TrainConfig, "distill", OPTIM_PANEL)] = _default(
        TrainConfig, "distill"
    ),
    distill_temperature: Annotated[
        float, _setting(TrainConfig, "distill_temperature", OPTIM_PANEL)
    ] = _default(TrainConfig, "distill_temperature"),
    distill_views: Annotated[
        DistillViewsChoice, _setting(TrainConfig, "distill_views", OPTIM_PANEL)
    ] = _default(TrainConfig, "distill_views"),
    epochs: Annotated[int, _setting(TrainConfig, "epochs", OPTIM_PANEL)] = _default(
        TrainConfig, "epochs"
    ),
    batch_size: Annotated[int, _setting(TrainConfig, "batch_size", OPTIM_PANEL)] = _default(
        TrainConfig, "batch_size"
    ),
    lr: Annotated[float, _setting(TrainConfig, "lr", OPTIM_PANEL)] = _default(TrainConfig, "lr"),
    weight_decay: Annotated[float, _setting(TrainConfig, "weight_decay", OPTIM_PANEL)] = _default(
        TrainConfig, "weight_decay"
    ),
    optimizer: Annotated[
        OptimizerChoice, _setting(TrainConfig, "optimizer", OPTIM_PANEL)
    ] = _default(TrainConfig, "optimizer"),
    schedule: Annotated[ScheduleChoice, _setting(TrainConfig, "schedule", OPTIM_PANEL)] = _default(
        TrainConfig, "schedule"
    ),
    plateau_factor: Annotated[
        float, _setting(TrainConfig, "plateau_factor", OPTIM_PANEL)
    ] = _default(TrainConfig, "plateau_factor"),
    plateau_patience: Annotated[
        int, _setting(TrainConfig, "plateau_patience", OPTIM_PANEL)
    ] = _default(TrainConfig, "plateau_patience"),
    patience: Annotated[int, _setting(TrainConfig, "patience", OPTIM_PANEL)] = _default(
        TrainConfig, "patience"
    ),
    label_smoothing: Annotated[
        float, _setting(TrainConfig, "label_smoothing", OPTIM_PANEL)
    ] = _default(TrainConfig, "label_smoothing"),
    seed: Annotated[int, _setting(TrainConfig, "seed", OPTIM_PANEL)] = _default(
        TrainConfig, "seed"
    ),
    augment: Annotated[AugmentChoice, _setting(TrainConfig, "augment", AUGMENT_PANEL)] = _default(
        TrainConfig, "augment"
    ),
    mixup: Annotated[float, _setting(TrainConfig, "mixup", AUGMENT_PANEL)] = _default(
        TrainConfig, "mixup"
    ),
    ema: Annotated[float, _setting(TrainConfig, "ema", OPTIM_PANEL)] = _default(TrainConfig, "ema"),
    device: Annotated[str, _setting(TrainConfig, "device", HARDWARE_PANEL)] = _default(
        TrainConfig, "device"
    ),
    bf16: Annotated[bool, _setting(TrainConfig, "bf16", HARDWARE_PANEL)] = _default(
        TrainConfig, "bf16"
    ),
    channels_last: Annotated[
        bool, _setting(TrainConfig, "channels_last", HARDWARE_PANEL)
    ] = _default(TrainConfig, "channels_last"),
    nproc: Annotated[int, _setting(TrainConfig, "nproc", HARDWARE_PANEL)] = _default(
        TrainConfig, "nproc"
    ),
    threads: Annotated[int | None, _setting(TrainConfig, "threads", HARDWARE_PANEL)] = _default(
        TrainConfig, "threads"
    ),
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
    from ferkit.training.deep import train_network

    values: dict[str, Any] = {
        "model": model, "image_size": size, "color": _none_if_auto(color),
        "classes": [c.strip() for c in classes.split(",")] if classes else None,
        "class_names": class_names, "balance": balance, "margin": margin,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "optimizer": optimizer, "schedule": schedule,
        "plateau_factor": plateau_factor, "plateau_patience": plateau_patience,
        "patience": patience, "augment": augment, "label_smoothing": label_smoothing,
        "mixup": mixup, "ema": ema, "seed": seed, "device": device, "bf16": bf16,
        "channels_last": channels_last, "train_split": train_split, "val_split": val_split,
        "max_train": max_train, "group_by": group_by, "init": str(init) if init else None,
        "threads": threads, "nproc": nproc, "match_sharpness": match_sharpness,
        "resample_via": resample_via, "tta": tta, "dedupe": dedupe,
        "teacher": [t.strip() for t in teacher.split(",") if t.strip()] if teacher else None,
        "distill": distill, "distill_temperature": distill_temperature,
        "distill_views": distill_views,
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
    model: Annotated[str, _setting(TuneConfig, "model", MODEL_PANEL)] = _default(
        TuneConfig, "model"
    ),
    trials: Annotated[int, _setting(TuneConfig, "trials", SEARCH_PANEL)] = _default(
        TuneConfig, "trials"
    ),
    max_epochs: Annotated[int, _setting(TuneConfig, "max_epochs", SEARCH_PANEL)] = _default(
        TuneConfig, "max_epochs"
    ),
    timeout: Annotated[float | None, _setting(TuneConfig, "timeout", SEARCH_PANEL)] = _default(
        TuneConfig, "timeout"
    ),
    size: Annotated[int | None, _setting(TrainConfig, "image_size", DATA_PANEL)] = _default(
        TrainConfig, "image_size"
    ),
    color: Annotated[ColorChoice, _setting(TrainConfig, "color", DATA_PANEL)] = _default(
        TrainConfig, "color"
    ),
    classes: Annotated[str | None, _setting(TrainConfig, "classes", DATA_PANEL)] = _default(
        TrainConfig, "classes"
    ),
    balance: Annotated[BalanceChoice, _setting(TrainConfig, "balance", DATA_PANEL)] = _default(
        TrainConfig, "balance"
    ),
    max_train: Annotated[int | None, _setting(TrainConfig, "max_train", DATA_PANEL)] = _default(
        TrainConfig, "max_train"
    ),
    batch_size: Annotated[int, _setting(TrainConfig, "batch_size", OPTIM_PANEL)] = _default(
        TrainConfig, "batch_size"
    ),
    augment: Annotated[AugmentChoice, _setting(TrainConfig, "augment", AUGMENT_PANEL)] = _default(
        TrainConfig, "augment"
    ),
    epochs: Annotated[
        int,
        _setting(
            TrainConfig, "epochs", OPTIM_PANEL, help="Epochs of the final command in best.json."
        ),
    ] = _default(TrainConfig, "epochs"),
    seed: Annotated[int, _setting(TuneConfig, "seed", OPTIM_PANEL)] = _default(TuneConfig, "seed"),
    device: Annotated[str, _setting(TrainConfig, "device", HARDWARE_PANEL)] = _default(
        TrainConfig, "device"
    ),
    threads: Annotated[int | None, _setting(TrainConfig, "threads", HARDWARE_PANEL)] = _default(
        TrainConfig, "threads"
    ),
    config: ConfigFileArg = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print best.json.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
) -> None:
    """Hyperband search (Optuna) over the notebook's space: dense units, dropout, lr, L2."""
    from ferkit.training.tune import tune as run_tune  # optuna: the `tune` extra

    own: dict[str, Any] = {"model": model, "trials": trials, "max_epochs": max_epochs,
                           "timeout": timeout, "seed": seed}  # fmt: skip
    values: dict[str, Any] = {
        **own, "image_size": size, "color": _none_if_auto(color),
        "classes": [c.strip() for c in classes.split(",")] if classes else None,
        "balance": balance, "batch_size": batch_size, "augment": augment,
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
    flip: Annotated[
        str,
        typer.Option(
            help="For a network trained with --tta flip: 'inside' averages the mirror view in "
            "the graph (self-contained, the default); 'outside' exports one view and ferkit "
            "adds the mirror at run time, so --no-flip can skip it (the shipped networks).",
        ),
    ] = "inside",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a network run for deployment; onnxruntime then serves it (when installed)."""
    if not onnx:
        raise FerkitError("say which format to export: --onnx")
    from ferkit.models.onnx_export import DEFAULT_OPSET, export_onnx

    if out is not None and out.suffix.lower() == ".onnx":
        _check_out(None, out, "--out")
    opset = DEFAULT_OPSET if opset is None else opset
    result = export_onnx(run, out, opset=opset, batch=batch, flip=flip)
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


FLIP_HELP = (
    "--no-flip: score each face once, without its mirror image (half the network time of a "
    "model trained with --tta flip, as the shipped networks are; some accuracy lost). Changes "
    "nothing for a model trained without flip TTA."
)
FlipArg = Annotated[bool, typer.Option("--flip/--no-flip", help=FLIP_HELP)]

# ferkit.models.crops.DEFAULT_CROP_FRACTION, not imported here: it would import numpy
DEFAULT_CROP_FRACTION = 44 / 48
CROPS_HELP = (
    "Score each face as N views averaged: 5 = its four corners and centre (side "
    "--crop-fraction of the face, resized back). N times the network time (2N for a model "
    "that also averages the mirror, as the shipped networks do); measured +1.0 to +1.5 "
    "points of FER2013 val accuracy (5 crops of 44/48 with the flip). 1: the face as cut."
)
CropsArg = Annotated[int, typer.Option("--crops", metavar="N", help=CROPS_HELP)]
CROP_FRACTION_HELP = (
    "Side of each --crops view as a fraction of the face, in (0.5, 1). Default 44/48 "
    "(0.9167): 42/48 and 40/48 did no better on FER2013."
)
CropFractionArg = Annotated[
    float, typer.Option("--crop-fraction", metavar="FRACTION", help=CROP_FRACTION_HELP)
]
RESAMPLE_VIA_HELP = (
    "Pass each face (each --crops view) through a resize round trip: bicubic up to N px, "
    "area down to the model's input, as the training images of a network trained on a split "
    "that was resized so went (FER2013 here: 224). Runs the torch network; default: the "
    "network's own (ferkit train --resample-via), none for most."
)
ResampleViaArg = Annotated[
    int | None, typer.Option("--resample-via", metavar="N", help=RESAMPLE_VIA_HELP)
]


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
    flip: FlipArg = True,
    crops: CropsArg = 1,
    crop_fraction: CropFractionArg = DEFAULT_CROP_FRACTION,
    resample_via: ResampleViaArg = None,
) -> None:
    """Accuracy, macro-F1, per-class metrics and confusion matrix of a run on a split."""
    from ferkit import io
    from ferkit.evaluation.evaluate import evaluate_run
    from ferkit.models import load_run
    from ferkit.models.crops import check_crop_options
    from ferkit.models.flip import single_view
    from ferkit.models.resampling import resampling_backend

    _check_out(out, json_out)
    check_crop_options(crops, crop_fraction)  # before the model loads
    model = load_run(run, resampling_backend(resample_via))
    model = model if flip else single_view(model)
    report = evaluate_run(
        model, data, split, out, seed=seed, faces=faces.value, detector=detector.value,
        crops=crops, crop_fraction=crop_fraction, resample_via=resample_via,
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
    if not flip or report.flip_averaged:  # a network trained with --tta flip, or asked
        views = "each image and its mirror image" if report.flip_averaged else "one view"
        out_console.print(f"scored {views}{'' if flip else ' (--no-flip)'}")
    if report.crops and report.crops > 1:
        out_console.print(f"averaged over {report.crops} crops of {report.crop_fraction:.4f}")
    if report.resample_via is not None:
        out_console.print(f"resampled via {report.resample_via} px")
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
    crops: CropsArg = 1,
    crop_fraction: CropFractionArg = DEFAULT_CROP_FRACTION,
    resample_via: ResampleViaArg = None,
) -> None:
    """One table of several runs on the same split: accuracy and macro-F1 with 95% intervals,
    and McNemar's paired test of each pair ("A beats B" only when p < 0.05)."""
    from ferkit import io
    from ferkit.evaluation.compare import compare_runs, markdown_table
    from ferkit.models.crops import check_crop_options

    _check_out(out, json_out)
    check_crop_options(crops, crop_fraction)  # before any model loads
    rows, tests = compare_runs(
        runs, data, split, out, faces=faces.value, detector=detector.value,
        crops=crops, crop_fraction=crop_fraction, resample_via=resample_via,
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
    flip: FlipArg = True,
    crops: CropsArg = 1,
    crop_fraction: CropFractionArg = DEFAULT_CROP_FRACTION,
    resample_via: ResampleViaArg = None,
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
        flip=flip,
        crops=crops,
        crop_fraction=crop_fraction,
        resample_via=resample_via,
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
    flip: FlipArg = True,
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
        flip=flip,
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
    quick: Annotated[bool, _setting(StudyConfig, "quick", DATA_PANEL)] = _default(
        StudyConfig, "quick"
    ),
    max_train: Annotated[int | None, _setting(StudyConfig, "max_train", DATA_PANEL)] = _default(
        StudyConfig, "max_train"
    ),
    max_val: Annotated[int | None, _setting(StudyConfig, "max_val", DATA_PANEL)] = _default(
        StudyConfig, "max_val"
    ),
    dedupe: Annotated[bool, _setting(StudyConfig, "dedupe", DATA_PANEL)] = _default(
        StudyConfig, "dedupe"
    ),
    image_size: Annotated[int | None, _setting(StudyConfig, "image_size", DATA_PANEL)] = _default(
        StudyConfig, "image_size"
    ),
    seed: Annotated[int, _setting(StudyConfig, "seed", DATA_PANEL)] = _default(StudyConfig, "seed"),
    group_by: Annotated[str | None, _setting(StudyConfig, "group_by", DATA_PANEL)] = _default(
        StudyConfig, "group_by"
    ),
    models: Annotated[str, _setting(StudyConfig, "models", MODEL_PANEL)] = _default(
        StudyConfig, "models"
    ),
    arg: Annotated[list[str] | None, _setting(StudyConfig, "model_kwargs", MODEL_PANEL)] = _default(
        StudyConfig, "model_kwargs"
    ),
    happy_sad: Annotated[bool, _setting(StudyConfig, "happy_sad", MODEL_PANEL)] = _default(
        StudyConfig, "happy_sad"
    ),
    features: Annotated[str, _setting(StudyConfig, "features", FEATURES_PANEL)] = _default(
        StudyConfig, "features"
    ),
    search_size: Annotated[
        int | None, _setting(StudyConfig, "search_size", FEATURES_PANEL)
    ] = _default(StudyConfig, "search_size"),
    svm_method: Annotated[
        SvmMethodChoice, _setting(StudyConfig, "svm_method", FEATURES_PANEL)
    ] = _default(StudyConfig, "svm_method"),
    recipe: Annotated[RecipeChoice, _setting(StudyConfig, "recipe", OPTIM_PANEL)] = _default(
        StudyConfig, "recipe"
    ),
    epochs: Annotated[int | None, _setting(StudyConfig, "epochs", OPTIM_PANEL)] = _default(
        StudyConfig, "epochs"
    ),
    batch_size: Annotated[int | None, _setting(StudyConfig, "batch_size", OPTIM_PANEL)] = _default(
        StudyConfig, "batch_size"
    ),
    patience: Annotated[int | None, _setting(StudyConfig, "patience", OPTIM_PANEL)] = _default(
        StudyConfig, "patience"
    ),
    threads: Annotated[int | None, _setting(StudyConfig, "threads", HARDWARE_PANEL)] = _default(
        StudyConfig, "threads"
    ),
    explain_images: Annotated[
        int, _setting(StudyConfig, "explain_images", OUTPUT_PANEL)
    ] = _default(StudyConfig, "explain_images"),
    embed_samples: Annotated[
        int | None, _setting(StudyConfig, "embed_samples", OUTPUT_PANEL)
    ] = _default(StudyConfig, "embed_samples"),
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
    from ferkit.study import run_study

    values: dict[str, Any] = {
        "quick": quick, "models": _names(models), "features": _names(features),
        "seed": seed, "epochs": epochs, "max_train": max_train, "max_val": max_val,
        "search_size": search_size, "batch_size": batch_size, "patience": patience,
        "explain_images": explain_images, "embed_samples": embed_samples,
        "svm_method": svm_method, "recipe": recipe, "happy_sad": happy_sad,
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
