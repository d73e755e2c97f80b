"""CNN-10 (Dada et al. 2023) as the AffectNet study notebook built and tuned it.

Emmanuel G. Dada et al., "Facial Emotion Recognition and Classification Using the Convolutional
Neural Network-10 (CNN-10)", Applied Computational Intelligence and Soft Computing, 2023.
"""

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

NAME = "cnn10"


def _out_side(side: int) -> int:
    """Two 3x3 'valid' convs (-2 each), then a 2x2 max-pool (floor)."""
    return (side - 4) // 2


class CNN10(Network):
    """The notebook's Keras ``Sequential``, layer for layer::

        Conv2D(32, 3x3, relu, valid) -> Conv2D(32, 3x3, relu, valid) -> BatchNormalization
        -> MaxPooling2D(2) -> Dropout(dropout_1) -> Flatten -> Dense(units, relu)
        -> Dropout(dropout_2) -> Dense(num_classes)

    The notebook also has ``LeakyReLU(alpha=0.5)`` right after the second conv's ReLU; its input
    is never negative there, so it is the identity and is left out (parameter count unchanged).
    The final softmax is left to the loss. At 96x96x3 with 8 classes this has 15,179,720
    trainable parameters and 64 BN moving statistics: Keras' summary total of 15,179,784.

    Tuned with keras-tuner Hyperband: ``units`` in 32..256 step 32 (chose 224), ``dropout_1`` and
    ``dropout_2`` in 0.1..0.5 step 0.1 (chose 0.1 and 0.2), Adam learning rate in {1e-2, 1e-3,
    1e-4} (chose 1e-3); no weight regularisation. Here ``dense_units`` = units,
    ``conv_dropout`` = dropout_1 and ``dropout`` = dropout_2, defaulting to the chosen values.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        dense_units: int,
        conv_dropout: float,
        dropout: float,
    ) -> None:
        super().__init__(
            name=NAME,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            min_image_size=smallest_input(_out_side),
            kwargs={"dense_units": dense_units, "conv_dropout": conv_dropout, "dropout": dropout},
        )
        check_int(f"{NAME}: dense_units", dense_units, minimum=1)
        self.block1 = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, 32, 3, padding="valid"),
                relu1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(32, 32, 3, padding="valid"),
                relu2=nn.ReLU(inplace=True),
                bn=keras_batch_norm(32),
                pool=nn.MaxPool2d(2),
                dropout=nn.Dropout(check_rate(f"{NAME}: conv_dropout", conv_dropout)),
            )
        )
        side = _out_side(image_size)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                dense=nn.Linear(32 * side * side, dense_units),
                relu=nn.ReLU(inplace=True),
                dropout=nn.Dropout(check_rate(f"{NAME}: dropout", dropout)),
            )
        )
        self.head = nn.Linear(dense_units, num_classes)
        self.cam_layer = "block1.bn"
        keras_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block1(x))


@register_model(NAME)
def cnn10(
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    dense_units: int = 224,
    conv_dropout: float = 0.1,
    dropout: float = 0.2,
) -> CNN10:
    """CNN-10 with the notebook's tuned head (224 units, dropouts 0.1 / 0.2)."""
    return CNN10(num_classes, in_channels, image_size, dense_units, conv_dropout, dropout)
