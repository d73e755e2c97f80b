"""Forward hooks that capture a layer's output (and the gradient into it) for one image,
with the network in eval mode, fp32 and autocast off, every module's mode restored after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit.errors import FerkitError


@contextmanager
def _explaining(model: nn.Module) -> Iterator[None]:
    """Eval mode, grad on, autocast off for the block; every module's mode restored after.

    Each module's own ``training`` flag is saved (not just the root's) because a caller may
    have put parts of a model in different modes, e.g. frozen batch-norm during fine-tuning.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad(), _no_autocast():
            yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def _no_autocast() -> Iterator[None]:
    """Autocast disabled for every device type that may be active, so the maps are fp32."""
    with torch.autocast("cpu", enabled=False):
        if torch.cuda.is_available():
            with torch.autocast("cuda", enabled=False):
                yield
        else:
            yield


class _Capture:
    """Forward hook that keeps a module's output and (optionally) the gradient flowing into it.

    The gradient is caught with a hook on the output *tensor*, not a module backward hook:
    module backward hooks break on in-place activations (``ReLU(inplace=True)``, used by most
    ferkit networks), while a tensor hook receives the gradient of exactly the value the module
    produced, even if a later in-place op overwrites it. The activation is cloned for the same
    reason. A module called more than once per forward (a shared ReLU) is captured at its
    last call, which is the one nearest the output.
    """

    def __init__(self, want_grad: bool) -> None:
        self.want_grad = want_grad
        self.calls: list[dict[str, torch.Tensor]] = []

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        slot: dict[str, torch.Tensor] = {"activation": output.detach().float().clone()}
        self.calls.append(slot)
        if self.want_grad and output.requires_grad:
            output.register_hook(lambda grad: slot.__setitem__("grad", grad.detach().float()))

    def last(self, layer: str, choices: Callable[[], list[str]]) -> dict[str, torch.Tensor]:
        """The layer's last captured call; an error lists ``choices()`` (the layers one can
        explain, computed only then)."""
        if not self.calls:
            raise FerkitError(
                f"layer {layer!r} did not produce a tensor in the forward pass; choose one of: "
                f"{', '.join(choices())}"
            )
        slot = self.calls[-1]
        act = slot["activation"]
        if act.ndim != 4:
            raise FerkitError(
                f"layer {layer!r} outputs shape {tuple(act.shape)}, not an (N, C, H, W) feature "
                f"map; choose one of: {', '.join(choices())}"
            )
        return slot


def _one_image(model: nn.Module, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``x`` as a fresh fp32 (1, C, H, W) tensor on the model's device, detached from the
    caller's graph so nothing the caller holds gains a gradient."""
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise FerkitError(
            f"explanations take one image as a (1, C, H, W) or (C, H, W) tensor, got shape "
            f"{tuple(x.shape)}"
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    return x.detach().to(device=device, dtype=torch.float32).clone()
