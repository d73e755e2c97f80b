"""Explanations for neural-network runs: Grad-CAM overlays and feature-map grids.

The notebook's "Viewing The Filters" section cut a Keras model at a named conv layer and
showed every channel of its output for one test image (``coolwarm``, a square grid). This module
does the same for any torch ``nn.Module`` through forward hooks on a module named as in
``named_modules()`` (so it needs no model surgery and works for every ferkit network), and adds
Grad-CAM (Selvaraju et al. 2017), which answers the question the filter grid cannot: *where* in
the face the evidence for a class came from.

Everything is computed for one image, in fp32 with autocast off and the network in eval mode
(dropout and batch-norm statistics as at prediction time, so the explanation is of the same
forward pass that ``predict`` runs). Hooks are always removed and the module's train/eval flags
and its parameters' ``requires_grad`` are left as they were, so explaining a model never changes
what it does afterwards.

This module imports torch; it is deliberately not re-exported from ``ferkit.evaluation`` so
that importing that package stays light. Use ``from ferkit.evaluation.explain import ...``.

The code lives in :mod:`ferkit.evaluation.explaining`, one module per job: ``hooks``
(capturing a layer in eval mode, fp32), ``layers`` (listing, resolving, shapes, the default),
``gradcam``, ``feature_maps``, ``figures`` and ``image`` (one image explained with a run,
``explain.json``); this module gathers their public names.
"""

from ferkit.evaluation.explaining.feature_maps import feature_maps
from ferkit.evaluation.explaining.figures import feature_map_figure, gradcam_figure
from ferkit.evaluation.explaining.gradcam import grad_cam
from ferkit.evaluation.explaining.image import (
    CROPS,
    EXPLAIN_FILE,
    FEATURE_MAPS_FILE,
    GRADCAM_FILE,
    explain_image,
    resolve_target,
    run_layers,
)
from ferkit.evaluation.explaining.layers import (
    MIN_CAM_SIDE,
    default_layer,
    layer_shapes,
    layer_table,
    list_layers,
    resolve_layer,
)

__all__ = [
    "CROPS",
    "EXPLAIN_FILE",
    "FEATURE_MAPS_FILE",
    "GRADCAM_FILE",
    "MIN_CAM_SIDE",
    "default_layer",
    "explain_image",
    "feature_map_figure",
    "feature_maps",
    "grad_cam",
    "gradcam_figure",
    "layer_shapes",
    "layer_table",
    "list_layers",
    "resolve_layer",
    "resolve_target",
    "run_layers",
]
