"""Four-layer ConvNet (Debnath et al. 2022) as the AffectNet study notebook built it.

T. Debnath et al., "Four-layer ConvNet to facial emotion recognition with minimal epochs and
the significance of data diversity", Scientific Reports 12, 6991 (2022).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ferkit.models.nets.base import Network, keras_batch_norm, keras_init, smallest_input
from ferkit.models.nets.registry import register_model

NAME = "convnet"


def _out_side(side: int) -> int:
    """Three blocks of two 3x3 'valid' convs (-4) and a 2x2 / stride-2 max-pool (floor)."""
    for _ in range(3):
        side = (side - 4) // 2
    return side


def _conv_block(in_channels: int, channels: int, dropout: float | None) -> nn.Sequential:
    """Conv2D(relu) x2 -> BatchNormalization -> MaxPooling2D(2, 2) [-> Dropout]."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(in_channels, channels, 3, padding="valid"),
        relu1=nn.ReLU(inplace=True),
        conv2=nn.Conv2d(channels, channels, 3, padding="valid"),
        relu2=nn.ReLU(inplace=True),
        bn=keras_batch_norm(channels),
        pool=nn.MaxPool2d(2, stride=2),
    )
    if dropout is not None:
        layers["dropout"] = nn.Dropout(dropout)
    return nn.Sequential(layers)


class ConvNet(Network):
    """The notebook's Keras ``Sequential``, layer for layer::

        [Conv2D(64) Conv2D(64) BN MaxPool Dropout(0.5)]
        [Conv2D(64) Conv2D(64) BN MaxPool Dropout(0.5)]
        [Conv2D(128) Conv2D(128) BN MaxPool]
        Flatten -> Dense(1024, relu) -> Dropout(0.2) -> Dense(1024, relu) -> Dropout(0.2)
        -> Dense(num_classes)

    All convs are 3x3, 'valid', ReLU. The notebook did not tune this model (fixed sizes, Adam at
    its default 1e-3, no regularisation), so it takes no options. At 96x96x3 with 8 classes it
    has 9,781,960 trainable parameters and 512 BN moving statistics: Keras' total of 9,782,472.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__(
            name=NAME,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            min_image_size=smallest_input(_out_side),
            kwargs={},
        )
        self.block1 = _conv_block(in_channels, 64, dropout=0.5)
        self.block2 = _conv_block(64, 64, dropout=0.5)
        self.block3 = _conv_block(64, 128, dropout=None)
        side = _out_side(image_size)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                dense1=nn.Linear(128 * side * side, 1024),
                relu1=nn.ReLU(inplace=True),
                dropout1=nn.Dropout(0.2),
                dense2=nn.Linear(1024, 1024),
                relu2=nn.ReLU(inplace=True),
                dropout2=nn.Dropout(0.2),
            )
        )
        self.head = nn.Linear(1024, num_classes)
        self.cam_layer = "block3.bn"
        keras_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block3(self.block2(self.block1(x))))


@register_model(NAME)
def convnet(num_classes: int, in_channels: int, image_size: int) -> ConvNet:
    """Debnath et al.'s four-layer ConvNet, exactly as the notebook sized it."""
    return ConvNet(num_classes, in_channels, image_size)
