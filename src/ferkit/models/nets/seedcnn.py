"""The small FER2013 CNN of the 48x48 grayscale Keras write-up (16/32/64 filters)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ferkit.models.nets.base import (
    Network,
    check_int,
    check_rate,
    keras_batch_norm,
    keras_init,
    smallest_input,
)
from ferkit.models.nets.registry import register_model

NAME = "seedcnn"


def _out_side(side: int) -> int:
    """Three 3x3 'valid' convs each followed by a 2x2 max-pool, plus one extra pool."""
    for _ in range(3):
        side = (side - 2) // 2
    return side // 2


class SeedCNN(Network):
    """The write-up's Keras model, in its order::

        Conv2D(16, 3x3, relu) -> MaxPooling2D(2) -> BatchNormalization
        Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> BatchNormalization
        Conv2D(64, 3x3, relu) -> MaxPooling2D(2) -> MaxPooling2D(2) -> BatchNormalization
        Dropout(0.25) -> Flatten -> Dense(units, relu) -> Dense(num_classes)

    Convs are 'valid' (the write-up: "without padding, size 2 px smaller"); at 48x48 the last
    map is 2x2x64. The write-up only says "dense layers with relu and softmax" were added and
    prints no summary, so ``dense_units`` (default 128) is ferkit's choice and there is no
    parameter count to match. It was trained with Adam at Keras' default 1e-3, batch 32.
    """

    def __init__(
        self, num_classes: int, in_channels: int, image_size: int, dense_units: int, dropout: float
    ) -> None:
        super().__init__(
            name=NAME,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            min_image_size=smallest_input(_out_side),
            kwargs={"dense_units": dense_units, "dropout": dropout},
        )
        check_int(f"{NAME}: dense_units", dense_units, minimum=1)
        self.block1 = self._block(in_channels, 16, pools=1)
        self.block2 = self._block(16, 32, pools=1)
        self.block3 = self._block(32, 64, pools=2)
        side = _out_side(image_size)
        self.classifier = nn.Sequential(
            OrderedDict(
                dropout=nn.Dropout(check_rate(f"{NAME}: dropout", dropout)),
                flatten=nn.Flatten(),
                dense=nn.Linear(64 * side * side, dense_units),
                relu=nn.ReLU(inplace=True),
            )
        )
        self.head = nn.Linear(dense_units, num_classes)
        # The last conv's own output (8x8 at 48px), not the 2x2 map after the double pool.
        self.cam_layer = "block3.relu"
        keras_init(self)

    @staticmethod
    def _block(in_channels: int, channels: int, pools: int) -> nn.Sequential:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, channels, 3, padding="valid"),
            relu=nn.ReLU(inplace=True),
        )
        for i in range(1, pools + 1):
            layers[f"pool{i}" if pools > 1 else "pool"] = nn.MaxPool2d(2)
        layers["bn"] = keras_batch_norm(channels)
        return nn.Sequential(layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block3(self.block2(self.block1(x))))


@register_model(NAME, in_channels=1, image_size=48)
def seedcnn(
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    dense_units: int = 128,
    dropout: float = 0.25,
) -> SeedCNN:
    """The 16/32/64 FER2013 CNN, designed for 48x48 gray input."""
    return SeedCNN(num_classes, in_channels, image_size, dense_units, dropout)
