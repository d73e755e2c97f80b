"""A command's settings declared once, as a config dataclass, and read from three places.

``TrainConfig``, ``SVMConfig``, ``StudyConfig`` and ``TuneConfig`` are the one declaration of
what ``ferkit train``, ``svm``, ``study`` and ``tune`` can be told: each field's type (a
``Literal`` for a choice), default and help, and its flag when the flag is not the field's name
(``image_size`` is ``--size``). From that declaration:

* :func:`to_argv` writes the command line that reproduces a config (best.json's ``ferkit train``
  command, the commands a study records), so no module keeps its own field -> flag table;
* :func:`load_settings` reads a ``--config FILE.yaml`` (keys: the field names, or the flags'
  spelling with dashes), refusing an unknown key with a close match and a wrong type with the
  type expected;
* the CLI (typer reads options from a function signature, so each command keeps a signature
  with its flags' names and panels) takes every option's help, default, limits and choices from
  the field (``ferkit.cli._setting``), and tests/test_options.py checks that each command's
  options are exactly the fields.

A field's ``min`` / ``max`` bound both the option and the same key in a ``--config`` file.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from ferkit.errors import OptionError, did_you_mean

__all__ = [
    "GROUP_BY_HELP",
    "SHARPNESS_HELP",
    "Color",
    "Sharpness",
    "choices",
    "field_of",
    "flag",
    "load_settings",
    "option",
    "settable",
    "to_argv",
]

Format = Callable[[Any], list[str]]

# choices and help shared by several commands' configs
Color = Literal["rgb", "gray"]  # None: the data's own
Sharpness = Literal["auto", "on", "off"]  # ferkit.data.sharpness.MODES
# The notebook's "undersample the majority classes by 750 images": the default of every
# --margin, here rather than in ferkit.data.balance so the CLI's option table loads no numpy.
NOTEBOOK_MARGIN = 750
GROUP_BY_HELP = (
    "Data without a val split: hold out by subject, the first capture group of this "
    "regex in each item's path (e.g. 'S(\\d+)_'). Default: detected in the file names "
    "(CK+ S010_..., RaFD, subjectN, JAFFE, KDEF), else a random hold-out with a warning; "
    "'none': random."
)
SHARPNESS_HELP = (
    "Blur inputs to the training images' sharpness before the model: auto (when "
    "train is much blurrier than val), on or off."
)


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    flag: str | None = None,
    factory: Callable[[], Any] | None = None,
    argv: Format | None = None,
    aliases: Iterable[str] = (),
    cli: bool = True,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """A config field with its CLI metadata.

    ``flag``: the option's name when it is not ``--`` + the field's name with dashes.
    ``argv``: how :func:`to_argv` writes a value that is not a plain scalar, list or flag
    (``model_kwargs`` as ``--arg key=value``). ``aliases``: old values still accepted (they
    warn and are mapped by the config itself). ``cli=False``: set in Python or a file only,
    never a flag (the study's data and out, which are an argument and ``--out``). ``min`` /
    ``max``: the bounds of a number, for the option and the ``--config`` file alike (None is
    always allowed where the field allows it)."""
    metadata = {"help": help, "flag": flag, "argv": argv, "aliases": tuple(aliases), "cli": cli,
                "min": min, "max": max}  # fmt: skip
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_of(cls: type, name: str) -> dataclasses.Field[Any]:
    """Field ``name`` of config dataclass ``cls`` (a KeyError names a field that is not one)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def flag(f: dataclasses.Field[Any]) -> str:
    """The ``--option`` that sets field ``f``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def settable(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of ``cls`` a command line sets (all but those marked ``cli=False``)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def choices(cls: type, name: str) -> tuple[Any, ...] | None:
    """The values a ``Literal`` field allows (``None`` excluded), or None for a free field."""
    for arg in _members(typing.get_type_hints(cls)[name]):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return None


def _members(hint: Any) -> tuple[Any, ...]:
    """``X | None`` -> (X, NoneType); any other hint -> (hint,)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


# -- config -> command line -------------------------------------------------------------------
def _scalar(value: Any) -> str:
    """Numbers as ``repr`` (an exact round trip), strings and paths bare."""
    return repr(value) if isinstance(value, float) else str(value)


def to_argv(
    config: Any,
    *,
    base: Any = None,
    always: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> list[str]:
    """The options that make the command build ``config``: every settable field that differs
    from ``base`` (default: the fields' defaults) or is named in ``always``, in field order.

    Booleans are written as ``--name`` / ``--no-name``, lists comma-joined, ``None`` left out
    (a field is None only at its default, or in ``always`` where None means "not set")."""
    always, skip = set(always), set(skip)
    argv: list[str] = []
    for f in settable(type(config)):
        value = getattr(config, f.name)
        reference = getattr(base, f.name) if base is not None else default_of(f)
        if f.name in skip or (f.name not in always and value == reference) or value is None:
            continue
        name, write = flag(f), f.metadata.get("argv")
        if write is not None:
            argv += write(value)
        elif isinstance(value, bool):
            argv.append(name if value else "--no-" + name.removeprefix("--"))
        elif isinstance(value, list | tuple):
            argv += [name, ",".join(str(v) for v in value)]
        else:
            argv += [name, _scalar(value)]
    return argv


def json_pairs(flag_name: str) -> Format:
    """``{"width": 0.5}`` -> ``[flag, "width=0.5"]``: a dict option the CLI parses back from
    repeated ``key=value`` (values as JSON, a bare string when they are not)."""

    def write(value: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        for key, item in value.items():
            out += [flag_name, f"{key}={item if isinstance(item, str) else json.dumps(item)}"]
        return out

    return write


# -- --config FILE.yaml -----------------------------------------------------------------------
def load_settings(path: str | Path, *classes: type) -> dict[str, Any]:
    """The settings in YAML file ``path`` as field -> value, each key a settable field of one of
    ``classes`` (or its flag, dashes and all) and each value of the field's type.

    A file is typed by hand, so every mistake is named: an unknown key with the closest field,
    a value of the wrong type with the type expected, a choice outside its ``Literal``."""
    import yaml

    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise OptionError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise OptionError(f"{path}: a config file is a mapping of setting: value")
    known: dict[str, tuple[type, dataclasses.Field[Any]]] = {}
    for cls in classes:
        for f in settable(cls):
            known.setdefault(f.name, (cls, f))
            known.setdefault(flag(f).removeprefix("--").replace("-", "_"), (cls, f))
    settings: dict[str, Any] = {}
    for key, value in loaded.items():
        name = str(key).removeprefix("--").replace("-", "_")
        if name not in known:
            names = sorted({f.name for _, f in known.values()})
            hint = did_you_mean(str(key), names)
            raise OptionError(f"{path}: unknown setting {key!r}{hint} (known: {', '.join(names)})")
        cls, f = known[name]
        settings[f.name] = _within(path, str(key), _coerce(path, str(key), value, cls, f), f)
    return settings


def _within(path: Path, key: str, value: Any, f: dataclasses.Field[Any]) -> Any:
    """``value`` when it is inside the field's ``min`` / ``max`` (the limits its option has)."""
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if low is not None and value < low:
        raise OptionError(f"{path}: {key} must be at least {low}, not {value}")
    if high is not None and value > high:
        raise OptionError(f"{path}: {key} must be at most {high}, not {value}")
    return value


def _coerce(path: Path, key: str, value: Any, cls: type, f: dataclasses.Field[Any]) -> Any:
    hint = typing.get_type_hints(cls)[f.name]
    for member in _members(hint):
        ok, converted = _convert(value, member, f)
        if ok:
            return converted
    allowed = choices(cls, f.name)
    if allowed is not None and isinstance(value, str):
        shown = ", ".join(repr(a) for a in allowed)
        raise OptionError(
            f"{path}: {key} must be one of {shown}, not {value!r}{did_you_mean(value, allowed)}"
        )
    raise OptionError(
        f"{path}: {key} must be {_describe(hint)}, not {type(value).__name__} {value!r}"
    )


def _convert(value: Any, hint: Any, f: dataclasses.Field[Any]) -> tuple[bool, Any]:
    """(True, the value as ``hint``) when ``value`` is one, else (False, None)."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return value is None, None
    if origin is Literal:
        allowed = (*typing.get_args(hint), *f.metadata.get("aliases", ()))
        return value in allowed, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint in (str, Path):
        return isinstance(value, str), hint(value) if isinstance(value, str) else None
    if origin is list:
        if isinstance(value, str):  # the flag's spelling: a,b,c
            value = [v.strip() for v in value.split(",") if v.strip()]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, list(value) if ok else None
    if origin is dict:
        return isinstance(value, dict), dict(value) if isinstance(value, dict) else None
    return False, None


def _describe(hint: Any) -> str:
    """A type as a person reads it: ``int or null``, ``one of 'rgb', 'gray'``."""
    names = []
    for member in _members(hint):
        if typing.get_origin(member) is Literal:
            names.append("one of " + ", ".join(repr(a) for a in typing.get_args(member)))
        elif member is type(None):
            names.append("null")
        elif typing.get_origin(member) is list:
            names.append("a list of strings")
        elif typing.get_origin(member) is dict:
            names.append("a mapping")
        else:
            names.append({int: "an integer", float: "a number", bool: "true or false"}.get(
                member, "a string"
            ))  # fmt: skip
    return " or ".join(names)
