"""Deep networks for expression recognition: a registry of model families built in plain torch.

Importing this package registers every family (each module's ``@register_model`` runs on
import), so ``create_model("fernet", num_classes=7)`` works without further imports.

Families: ``cnn10`` (Dada et al. 2023), ``convnet`` (Debnath et al. 2022), ``resnet50`` /
``resnet18`` (from scratch, with the study notebook's dense head), ``seedcnn`` (the small 48x48
FER2013 CNN of the second notebook; the name, kept so saved runs and commands stay valid, is
the notebook's, not the RNG seed's) and ``fernet`` (ferkit's own CPU-efficient ResNet).
A new family is also named in ``ferkit.models.catalog.NETWORKS``, which ``ferkit models`` lists
without importing torch (a test keeps the two equal).
"""

from ferkit.models.nets import cnn10, convnet, fernet, resnet, seedcnn
from ferkit.models.nets.base import Network
from ferkit.models.nets.registry import (
    create_model,
    default_input,
    list_models,
    model_options,
    register_model,
)

__all__ = [
    "Network",
    "cnn10",
    "convnet",
    "create_model",
    "default_input",
    "fernet",
    "list_models",
    "model_options",
    "register_model",
    "resnet",
    "seedcnn",
]
