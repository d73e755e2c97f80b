"""Batch augmentation with kornia (torchvision does not load with this torch build).

``notebook`` reproduces the study notebook's Keras ImageDataGenerator: horizontal flip, rotation
5 degrees, zoom 0.1, shear 0.1 (Keras' shear_range is in degrees), edges filled with the nearest
pixel; its old name ``seed`` still works, with a warning. ``strong`` adds translation, more
rotation, brightness/contrast jitter and random erasing: the usual recipe for training small
expression networks from scratch, where overfitting and not capacity limits accuracy.
Augmentation runs on whole batches on the training device.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from ferkit.errors import OptionError
from ferkit.training.recipes import NOTEBOOK, current_name

AUGMENTATIONS = ("none", NOTEBOOK, "strong")


def build_augmentation(name: str) -> nn.Module:
    """The named augmentation pipeline, for float NCHW batches in [0, 1] (before normalising)."""
    name = current_name(name, "augmentation")
    if name == "none":
        return nn.Identity()
    if name == NOTEBOOK:
        return K.AugmentationSequential(
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=5.0, scale=(0.9, 1.1), shear=0.1, padding_mode="border", p=1.0),
        )
    if name == "strong":
        return K.AugmentationSequential(
            K.RandomHorizontalFlip(),
            K.RandomAffine(
                degrees=10.0,
                translate=(0.1, 0.1),
                scale=(0.85, 1.15),
                shear=5.0,
                padding_mode="border",
                p=1.0,
            ),
            K.ColorJiggle(brightness=0.3, contrast=0.3, p=0.8),
            K.RandomErasing(scale=(0.02, 0.2), ratio=(0.3, 3.3), p=0.5),
        )
    raise OptionError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")


@torch.no_grad()
def augment(pipeline: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``pipeline`` to a [0, 1] batch and clamp back into range."""
    return pipeline(x).clamp_(0.0, 1.0)
