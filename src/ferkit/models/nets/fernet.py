"""FerNet: ferkit's own expression network, sized for accuracy per CPU-second.

Design, for 48x48 gray (FER2013) and 96x96 RGB (AffectNet crops) trained on a 2-core CPU with
bf16 autocast and channels_last:

* **Dense 3x3 convs + BN + ReLU only.** oneDNN runs these fast in bf16 on CPU (AMX/AVX-512
  where present); depthwise and grouped convs have low arithmetic intensity and are slow there
  despite their small FLOP counts, so MobileNet-style blocks lose on CPU time.
* **Plain (post-activation) ResNet basic blocks**, widths (32, 64, 128, 256) x ``depth``. A
  residual network trains reliably from scratch at the high learning rates that short CPU
  budgets need; post-activation lets the last BN of each residual branch start at gamma = 0,
  so every block begins as the identity (Goyal et al. 2017) and early training is stable.
* **A resolution-aware stem.** It downsamples until the map is about 24 px:
  ``round(log2(image_size / 24))`` stride-2 convs, i.e. once for 48 px and twice for 96 px.
  Both inputs then reach stage 1 at 24x24 and the last stage at 3x3, so 96 px RGB costs the
  same as 48 px gray (about 81M multiply-adds per image either way; the extra stride-2 conv is
  cheap) and the stages see faces at a similar scale. The stem always has at least two convs,
  so 48 px input still gets one full-resolution 3x3 layer before it is strided. Running stage 1
  at 48x48 instead would cost about 4x the compute; striding once more (12x12) would leave
  little room for the small eye and mouth details that separate e.g. fear from surprise. The
  24 px target is that trade-off, chosen by cost rather than by a measured accuracy sweep.
* **ResNet-D shortcuts** (2x2 average pool, then 1x1 conv) when a stage downsamples: the same
  cost as a strided 1x1 conv, but the shortcut sees every input pixel instead of a quarter.
* **Global average pooling -> dropout -> linear head**: few parameters (about 2.8M at width
  1.0, most in the last stage), and ``features`` is a 256-d embedding.

Options: ``stem`` is the side stage 1 should see (default 24; 48 keeps FER2013's full
resolution into stage 1 at about 4x the compute), ``width`` scales every channel count (rounded
to multiples of 8, which keeps bf16 kernels on their fast paths), ``depth`` is the number of
blocks per stage, ``dropout`` the rate before the head. Convs use Kaiming-normal (fan-out) init.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import cast

import torch
from torch import nn

from ferkit.models.nets.base import (
    Network,
    check_int,
    check_positive,
    check_rate,
    init_linear,
    smallest_input,
)
from ferkit.models.nets.registry import register_model

NAME = "fernet"
WIDTHS = (32, 64, 128, 256)
STEM_TARGET = 24  # side of the map that stage 1 sees


def _stem_downsamples(image_size: int, stem: int = STEM_TARGET) -> int:
    """Stride-2 stem convs that bring ``image_size`` closest to ``stem`` px."""
    return max(0, round(math.log2(image_size / stem)))


def _out_side(image_size: int, stem: int = STEM_TARGET) -> int:
    """Side of the last stage's map without counting padding-only pixels (stem, then three
    stride-2 stages)."""
    return image_size // (2 ** _stem_downsamples(image_size, stem) * 8)


def _channels(base: int, width: float) -> int:
    """``base * width`` rounded to a multiple of 8 (at least 8)."""
    return max(8, int(base * width + 4) // 8 * 8)


def _conv_bn(in_channels: int, channels: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(
                in_channels, channels, kernel, stride=stride, padding=kernel // 2, bias=False
            ),
            bn=nn.BatchNorm2d(channels),
        )
    )


class Block(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN (+ shortcut) -> ReLU; the stride sits on the first conv."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(in_channels, channels, stride=stride)
        self.conv2 = _conv_bn(channels, channels)
        if stride == 1 and in_channels == channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if stride > 1:
                layers["pool"] = nn.AvgPool2d(stride, ceil_mode=True, count_include_pad=False)
            layers["proj"] = _conv_bn(in_channels, channels, kernel=1)
            self.shortcut = nn.Sequential(layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.relu(self.conv1(x)))
        return self.relu(y + self.shortcut(x))


class FerNet(Network):
    """Stem -> stage1..stage4 -> global average pool -> dropout -> head (see module doc)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        width: float,
        depth: int,
        dropout: float,
        stem: int = STEM_TARGET,
    ) -> None:
        check_int(f"{NAME}: stem", stem, minimum=1)
        super().__init__(
            name=NAME,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            min_image_size=smallest_input(lambda side: _out_side(side, stem)),
            kwargs={"width": width, "depth": depth, "dropout": dropout, "stem": stem},
        )
        check_positive(f"{NAME}: width", width)
        check_int(f"{NAME}: depth", depth, minimum=1)
        widths = [_channels(c, width) for c in WIDTHS]

        downsamples = _stem_downsamples(image_size, stem)
        convs = max(2, downsamples)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for i in range(convs):
            out = widths[0] if i == convs - 1 else widths[0] // 2
            stride = 2 if i >= convs - downsamples else 1
            layers[f"conv{i + 1}"] = _conv_bn(channels, out, stride=stride)
            layers[f"relu{i + 1}"] = nn.ReLU(inplace=True)
            channels = out
        self.stem = nn.Sequential(layers)

        self.stage1 = self._stage(widths[0], widths[0], depth, stride=1)
        self.stage2 = self._stage(widths[0], widths[1], depth, stride=2)
        self.stage3 = self._stage(widths[1], widths[2], depth, stride=2)
        self.stage4 = self._stage(widths[2], widths[3], depth, stride=2)
        self.pool = nn.Sequential(
            OrderedDict(
                gap=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                dropout=nn.Dropout(check_rate(f"{NAME}: dropout", dropout)),
            )
        )
        self.head = nn.Linear(widths[3], num_classes)
        self.cam_layer = "stage4"
        self._init_weights()

    @staticmethod
    def _stage(in_channels: int, channels: int, depth: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            OrderedDict(
                (
                    f"block{i + 1}",
                    Block(in_channels if i == 0 else channels, channels, stride if i == 0 else 1),
                )
                for i in range(depth)
            )
        )

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for module in self.modules():
            if isinstance(module, Block):
                nn.init.zeros_(cast(nn.BatchNorm2d, module.conv2.bn).weight)
        init_linear(self.head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return self.pool(x)


@register_model(NAME)
def fernet(
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    width: float = 1.0,
    depth: int = 2,
    dropout: float = 0.2,
    stem: int = STEM_TARGET,
) -> FerNet:
    """FerNet at 48 px gray or 96 px RGB: 2.8M parameters, 81M multiply-adds per image at the
    defaults. ``stem=48`` keeps a 48 px input at full resolution into stage 1 (about 4x the
    compute)."""
    return FerNet(num_classes, in_channels, image_size, width, depth, dropout, stem)
