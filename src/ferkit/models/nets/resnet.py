"""ResNet-50 (and a cheap ResNet-18) trained from scratch, with the study notebook's head.

The notebook fine-tuned ``keras.applications.ResNet50(include_top=False, pooling='avg')`` at
96x96x3 and added ``Flatten -> Dense(units, relu) -> Dropout -> Dense(num_classes)``. ImageNet
weights cannot be fetched here, so the backbone is rebuilt layer for layer and trained from
scratch; its conventions are Keras' ResNet v1, not torchvision's v1.5:

* convolutions carry a bias (redundant before BN, but part of the Keras model and of its
  parameter count),
* a bottleneck's stride sits on its first 1x1 conv, not on the 3x3,
* BatchNormalization uses epsilon 1.001e-5 and moving-average momentum 0.99,
* the stem's ZeroPadding2D(3) + 7x7/2 'valid' conv is a 7x7/2 conv with padding 3, and its
  ZeroPadding2D(1) + 3x3/2 max-pool is a max-pool with padding 1 (torch pads with -inf, Keras
  with 0, which agree because the input is post-ReLU and never negative),
* kernels start Glorot-uniform, biases at zero.

At 96x96x3 with 8 classes ``resnet50`` has 24,587,784 trainable parameters and 53,120 BN
moving statistics: the notebook's summary total of 24,640,904.

The notebook tuned the head with keras-tuner Hyperband: ``units`` in 32..512 step 32 (chose
512), ``dropout`` in 0.0..0.5 step 0.05 (chose 0.4), Adam learning rate in {1e-2, 1e-3, 1e-4}
(chose 1e-4), and an L2 kernel regulariser on both head Dense layers in 1e-5..1e-2 log-scale
(chose 1.77e-4). Keras adds ``l2 * sum(w**2)`` to the loss, whose gradient is ``2 * l2 * w``,
so the equivalent is Adam (coupled L2, not AdamW) with ``weight_decay = 2 * 1.77e-4 = 3.5e-4``
on ``head.weight`` and ``classifier.dense.weight`` only; the backbone was not regularised.
The model does not apply it itself: weight decay belongs to the optimiser's parameter groups.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ferkit.models.nets.base import Network, check_int, check_rate, keras_batch_norm, keras_init
from ferkit.models.nets.registry import register_model

BN_EPS = 1.001e-5  # keras.applications.resnet's BatchNormalization epsilon


def _conv_bn(in_channels: int, channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv2D (with bias, 'same' padding for odd kernels) followed by BatchNormalization."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, channels, kernel, stride=stride, padding=kernel // 2),
            bn=keras_batch_norm(channels, eps=BN_EPS),
        )
    )


class Bottleneck(nn.Module):
    """Keras ``resnet.block1``: 1x1 (stride) -> 3x3 -> 1x1 (x4 channels), plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = _conv_bn(in_channels, width, 1, stride)
        self.conv2 = _conv_bn(width, width, 3)
        self.conv3 = _conv_bn(width, out, 1)
        self.shortcut = (
            _conv_bn(in_channels, out, 1, stride)
            if stride != 1 or in_channels != out
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        y = self.relu(self.conv2(y))
        return self.relu(self.conv3(y) + self.shortcut(x))


class BasicBlock(nn.Module):
    """Two 3x3 convs (stride on the first), plus the shortcut: the ResNet-18/34 block."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(in_channels, width, 3, stride)
        self.conv2 = _conv_bn(width, width, 3)
        self.shortcut = (
            _conv_bn(in_channels, width, 1, stride)
            if stride != 1 or in_channels != width
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        return self.relu(self.conv2(y) + self.shortcut(x))


def _stage(
    block: type[Bottleneck | BasicBlock], in_channels: int, width: int, blocks: int, stride: int
) -> tuple[nn.Sequential, int]:
    """``blocks`` residual blocks (the first one strides) and the stage's output channels."""
    stage: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(blocks):
        stage[f"block{i + 1}"] = block(in_channels, width, stride if i == 0 else 1)
        in_channels = width * block.expansion
    return nn.Sequential(stage), in_channels


class ResNet(Network):
    """Stem -> four stages (widths 64..512, stride 2 from the second) -> global average pool ->
    the notebook's head. The backbone downsamples by 32, hence the 32-pixel minimum input."""

    def __init__(
        self,
        *,
        name: str,
        block: type[Bottleneck | BasicBlock],
        layers: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int,
        image_size: int,
        dense_units: int,
        dropout: float,
    ) -> None:
        super().__init__(
            name=name,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            min_image_size=32,
            kwargs={"dense_units": dense_units, "dropout": dropout},
        )
        check_int(f"{name}: dense_units", dense_units, minimum=1)
        self.stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, 64, 7, stride=2, padding=3),
                bn=keras_batch_norm(64, eps=BN_EPS),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, stride=2, padding=1),
            )
        )
        self.layer1, channels = _stage(block, 64, 64, layers[0], stride=1)
        self.layer2, channels = _stage(block, channels, 128, layers[1], stride=2)
        self.layer3, channels = _stage(block, channels, 256, layers[2], stride=2)
        self.layer4, channels = _stage(block, channels, 512, layers[3], stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                dense=nn.Linear(channels, dense_units),
                relu=nn.ReLU(inplace=True),
                dropout=nn.Dropout(check_rate(f"{name}: dropout", dropout)),
            )
        )
        self.head = nn.Linear(dense_units, num_classes)
        self.cam_layer = "layer4"
        keras_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(self.pool(x))


@register_model("resnet50")
def resnet50(
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    dense_units: int = 512,
    dropout: float = 0.4,
) -> ResNet:
    """Bottleneck ResNet-50 ([3, 4, 6, 3]) with the notebook's tuned head (512 units, 0.4)."""
    return ResNet(
        name="resnet50",
        block=Bottleneck,
        layers=(3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        dense_units=dense_units,
        dropout=dropout,
    )


@register_model("resnet18")
def resnet18(
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    dense_units: int = 512,
    dropout: float = 0.4,
) -> ResNet:
    """Basic-block ResNet-18 ([2, 2, 2, 2]): the same family and head at about half the
    parameters and half the multiply-adds of ``resnet50`` (333M vs 709M at 96 px)."""
    return ResNet(
        name="resnet18",
        block=BasicBlock,
        layers=(2, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        dense_units=dense_units,
        dropout=dropout,
    )
