"""The contract every ferkit deep network keeps, so training, evaluation and explanation code can
treat all families alike.

A :class:`Network` maps float NCHW images (already normalised) to logits. Its last layer is a
plain ``nn.Linear`` called ``head``; everything before it is ``features``. That split is what
fine-tuning (swap the head), embedding export (call ``features``) and Grad-CAM (hook the module
named by ``cam_layer``) rely on. ``config`` is the JSON-serialisable recipe that rebuilds the
same architecture through :func:`ferkit.models.nets.create_model`, so a saved run only needs the
config and a state_dict.

``prefilter`` runs on the input before ``features``: the identity, or weightless eval-mode steps
that make the inputs it will see look like the images it was trained on: a
:class:`~ferkit.models.nets.resample.ResampleMatch` when the training images went through a
resize round trip (``resample_via`` in the config), then a
:class:`~ferkit.models.nets.sharpness.SharpnessMatch` when they were blurrier
(``sharpness_target``). Callers that want the embedding use :meth:`Network.embed`, which
includes it.

``flip_average`` (test-time augmentation, ``flip_average: true`` in the config) makes an
eval-mode network average the embeddings of each image and its mirror image. Expressions are
left-right symmetric in the label (a mirrored smile is a smile), every family trains with random
flips, and the head is linear, so this is the mean of the two views' logits at twice the cost.
Training mode stays single-view: the augmentation already shows both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ferkit.errors import FerkitError

IN_CHANNELS = (1, 3)


class Network(nn.Module):
    """Base class: subclasses build their layers, set ``head`` and ``cam_layer``, and implement
    :meth:`features`.

    The constructor validates what every family shares (class count, channels, image size) so
    a bad option fails before any layer is allocated.
    """

    head: nn.Linear
    cam_layer: str

    def __init__(
        self,
        *,
        name: str,
        num_classes: int,
        in_channels: int,
        image_size: int,
        min_image_size: int,
        kwargs: Mapping[str, Any],
    ) -> None:
        super().__init__()
        check_int(f"{name}: num_classes", num_classes, minimum=2)
        if isinstance(in_channels, bool) or in_channels not in IN_CHANNELS:
            raise FerkitError(
                f"{name}: in_channels must be 1 (gray) or 3 (RGB), got {in_channels!r}"
            )
        check_int(f"{name}: image_size", image_size, minimum=1)
        if image_size < min_image_size:
            raise FerkitError(
                f"{name}: image_size {image_size} is too small for its downsampling; "
                f"the minimum is {min_image_size}"
            )
        self.config: dict[str, Any] = {
            "name": name,
            "num_classes": num_classes,
            "in_channels": in_channels,
            "image_size": image_size,
            "kwargs": dict(kwargs),
        }
        self.prefilter: nn.Module = nn.Identity()
        self.flip_average = False

    def match_sharpness(self, target: float) -> None:
        """Blur eval-mode inputs to at most ``target`` sharpness before ``features`` (see
        :mod:`ferkit.models.nets.sharpness`); recorded in ``config`` so a saved run rebuilds it."""
        from ferkit.models.nets.sharpness import SharpnessMatch

        self._set_prefilter(SharpnessMatch, SharpnessMatch(target, int(self.config["image_size"])))
        self.config["kwargs"]["sharpness_target"] = float(target)

    def match_resampling(self, via: int) -> None:
        """Pass eval-mode inputs through the ``image_size -> via -> image_size`` resize round
        trip the training images went through (see :mod:`ferkit.models.nets.resample`), ahead
        of any sharpness matching; recorded in ``config`` so a saved run rebuilds it."""
        from ferkit.models.nets.resample import ResampleMatch

        self._set_prefilter(ResampleMatch, ResampleMatch(via, int(self.config["image_size"])))
        self.config["kwargs"]["resample_via"] = int(via)

    def drop_resampling(self) -> None:
        """Remove the resampling step, if any (a teacher scoring training images that went
        through the round trip already); the network's other steps stay."""
        from ferkit.models.nets.resample import ResampleMatch

        old = self.prefilter
        steps = list(old) if isinstance(old, nn.Sequential) else [old]
        steps = [s for s in steps if not isinstance(s, nn.Identity | ResampleMatch)]
        self.prefilter = (
            nn.Identity() if not steps else steps[0] if len(steps) == 1 else nn.Sequential(*steps)
        )
        self.prefilter.train(self.training)
        self.config["kwargs"].pop("resample_via", None)

    def _set_prefilter(self, kind: type[nn.Module], step: nn.Module) -> None:
        """Put ``step`` in ``prefilter``, replacing an earlier step of the same ``kind``;
        resampling runs before sharpness matching (the order the training data was made in)."""
        from ferkit.models.nets.resample import ResampleMatch

        old = self.prefilter
        steps = list(old) if isinstance(old, nn.Sequential) else [old]
        steps = [s for s in steps if not isinstance(s, nn.Identity | kind)] + [step]
        steps.sort(key=lambda s: not isinstance(s, ResampleMatch))
        self.prefilter = steps[0] if len(steps) == 1 else nn.Sequential(*steps)
        # a new module starts in training mode, where these steps do nothing: it takes the
        # network's mode, so a step added to a loaded (eval-mode) network acts at once
        self.prefilter.train(self.training)

    def average_flips(self, enabled: bool = True) -> None:
        """Average each eval-mode input with its mirror image (see the module docstring);
        recorded in ``config`` so a saved run rebuilds it."""
        self.flip_average = bool(enabled)
        if enabled:
            self.config["kwargs"]["flip_average"] = True
        else:
            self.config["kwargs"].pop("flip_average", None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, D) embedding that ``head`` classifies; D == ``head.in_features``.
        Subclasses implement it; callers use :meth:`embed`, which applies ``prefilter`` first."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor, flip: bool = True) -> torch.Tensor:
        """The (N, D) embedding of input ``x`` (``prefilter`` then ``features``; in eval mode
        with ``flip_average``, the mean over ``x`` and its mirror image).

        ``flip=False`` skips that averaging for this call only (``Predictor(flip=False)``,
        ``--no-flip``): the network itself is not changed, so a module shared by other
        callers keeps answering with both views."""
        if not (flip and self.flip_average and not self.training):
            return self.features(self.prefilter(x))
        # the mirror view first: hooks that keep a layer's last call (Grad-CAM, feature maps)
        # then see the image as given, not its mirror image
        mirrored = self.features(self.prefilter(x.flip(-1)))
        return (mirrored + self.features(self.prefilter(x))) / 2

    def forward(self, x: torch.Tensor, flip: bool = True) -> torch.Tensor:
        """Logits (N, num_classes); no softmax, so losses get the numerically stable form.
        ``flip``: as in :meth:`embed`."""
        return self.head(self.embed(x, flip))

    @property
    def num_classes(self) -> int:
        return int(self.config["num_classes"])

    def reset_head(self, num_classes: int) -> None:
        """Replace ``head`` with a freshly initialised Linear for ``num_classes`` classes
        (fine-tuning onto another label set); the rest of the network is untouched."""
        name = self.config["name"]
        check_int(f"{name}: num_classes", num_classes, minimum=2)
        old = self.head
        self.head = nn.Linear(
            old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype
        )
        init_linear(self.head)
        self.config["num_classes"] = num_classes


def init_linear(layer: nn.Linear | nn.Conv2d) -> None:
    """Keras' default init (Glorot-uniform kernel, zero bias).

    Used for the notebook reproductions, whose results were obtained with it, and for every fresh
    head: a zero bias starts the classifier at a uniform prior over the classes.
    """
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def keras_init(module: nn.Module) -> None:
    """Apply :func:`init_linear` to every conv and linear layer of ``module`` (BN keeps its
    gamma=1, beta=0 default, as in Keras)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            init_linear(layer)


def keras_batch_norm(channels: int, eps: float = 1e-3) -> nn.BatchNorm2d:
    """``keras.layers.BatchNormalization()``: epsilon 1e-3 and moving-average momentum 0.99,
    which is torch's ``momentum=0.01`` (torch weights the new batch, Keras the old average)."""
    return nn.BatchNorm2d(channels, eps=eps, momentum=0.01)


def smallest_input(out_size: Callable[[int], int], limit: int = 4096) -> int:
    """The smallest image side for which ``out_size`` (a network's last spatial size as a
    function of its input side) is at least 1; derived rather than hand-computed so it cannot
    drift from the layer arithmetic it mirrors."""
    for side in range(1, limit + 1):
        if out_size(side) >= 1:
            return side
    raise ValueError(f"no input side up to {limit} gives a non-empty output")


def check_int(what: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else a FerkitError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FerkitError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def check_rate(what: str, value: Any) -> float:
    """``value`` as a dropout probability in [0, 1), else a FerkitError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise FerkitError(f"{what} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_positive(what: str, value: Any) -> float:
    """``value`` as a float > 0, else a FerkitError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise FerkitError(f"{what} must be a number > 0, got {value!r}")
    return float(value)
