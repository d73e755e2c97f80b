"""Name -> factory registry for the deep networks (timm style).

Each family module decorates its factories with :func:`register_model`; importing
``ferkit.models.nets`` imports every family, so the registry is complete as soon as the package
is. A factory has the signature ``fn(num_classes, in_channels, image_size, *, **options)`` where
the keyword-only options (``dense_units``, ``dropout``, ...) are the model's tunable knobs; the
registry reads them from the signature to reject unknown options with a message that lists the
valid ones, instead of a bare ``TypeError`` from deep inside a constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ferkit.errors import FerkitError, OptionError, did_you_mean
from ferkit.models.nets.base import Network

Factory = Callable[..., Network]
F = TypeVar("F", bound=Factory)


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    in_channels: int
    image_size: int
    options: tuple[str, ...]


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, in_channels: int = 3, image_size: int = 96) -> Callable[[F], F]:
    """Register ``fn`` under ``name``; ``in_channels`` / ``image_size`` are the input it was
    designed for, used by :func:`create_model` when the caller leaves them out."""

    def decorate(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        params = list(inspect.signature(fn).parameters.values())
        positional = [p.name for p in params if p.kind is not p.KEYWORD_ONLY]
        if positional != ["num_classes", "in_channels", "image_size"]:
            raise TypeError(
                f"factory for {name!r} must take (num_classes, in_channels, image_size, *, ...)"
            )
        options = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
        _REGISTRY[name] = _Entry(fn, in_channels, image_size, options)
        return fn

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise OptionError(
            f"unknown model {name!r}{did_you_mean(name, _REGISTRY)} "
            f"(known models: {', '.join(list_models())})"
        ) from None


def default_input(name: str) -> tuple[int, int]:
    """``(in_channels, image_size)`` the model was designed for (e.g. 48x48 gray for
    ``seedcnn``), so callers can pick data settings that suit it."""
    entry = _entry(name)
    return entry.in_channels, entry.image_size


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options ``name`` accepts (its tunable knobs, e.g. ``dense_units``)."""
    return _entry(name).options


def create_model(
    name: str,
    num_classes: int,
    in_channels: int | None = None,
    image_size: int | None = None,
    **kwargs: Any,
) -> Network:
    """Build a freshly initialised ``name`` network.

    ``in_channels`` / ``image_size`` default to the model's design input (3 x 96 for most,
    1 x 48 for ``seedcnn``). ``create_model(**model.config)`` rebuilds the same architecture.
    ``resample_via`` (any family) adds the test-time resize round trip of
    :mod:`~ferkit.models.nets.resample`, ``sharpness_target`` test-time sharpness matching, and
    ``flip_average=True`` test-time averaging over the mirror image (see ``nets.base``).
    """
    entry = _entry(name)
    # every family takes them: they live in the Network base, not in a family
    target = kwargs.pop("sharpness_target", None)
    via = kwargs.pop("resample_via", None)
    flip_average = kwargs.pop("flip_average", False)
    unknown = sorted(set(kwargs) - set(entry.options))
    if unknown:
        valid = ", ".join(entry.options) or "none"
        raise OptionError(
            f"model {name!r} got unknown option(s) {unknown}; valid options: {valid} "
            "(and resample_via, sharpness_target, flip_average, which every model takes)"
        )
    network = entry.factory(
        num_classes,
        entry.in_channels if in_channels is None else in_channels,
        entry.image_size if image_size is None else image_size,
        **kwargs,
    )
    if not isinstance(flip_average, bool):
        raise FerkitError(
            f"model {name!r}: flip_average must be true or false, got {flip_average!r}"
        )
    network.average_flips(flip_average)
    if via is not None:
        try:
            network.match_resampling(via)
        except OptionError as exc:
            raise OptionError(f"model {name!r}: {exc}") from None
    if target is not None:
        try:
            network.match_sharpness(target)
        except ValueError as exc:
            raise FerkitError(f"model {name!r}: {exc}") from None
    return network
