"""int8 copies of an exported graph with ``onnxruntime.quantization``: a maintainer's step.

Three recipes, all from the float ``model.onnx`` after ``quant_pre_process`` (shape inference
and constant folding: the exporter leaves some convolution weights behind ``Constant`` nodes,
which the quantiser refuses):

* ``dynamic``: int8 weights, activations quantised per batch at run time (``ConvInteger``);
* ``qdq``: static, calibrated on real training crops (MinMax), QuantizeLinear/DequantizeLinear
  pairs around each op, which onnxruntime fuses into int8 kernels;
* ``qop``: static as well, in the QOperator format (``QLinearConv``...).

Which one is shipped, if any, is decided by measurement (``benchmarks/classify_throughput.py``
and ``benchmarks/ship_onnx.py --int8``, docs/BENCHMARKS.md): only a graph that loses at most
:data:`MAX_ACCURACY_DROP` of val accuracy. Needs the ``onnx`` extra; imported only here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ferkit.errors import OptionError

QUANT_KINDS = ("dynamic", "qdq", "qop")
MAX_ACCURACY_DROP = 0.003  # 0.3 points of val accuracy: the adoption rule of issue 19
CALIBRATION_BATCH = 32


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over uint8 crops, a batch at a time."""

    def __init__(self, images: np.ndarray, input_name: str) -> None:
        starts = range(0, len(images), CALIBRATION_BATCH)
        self._batches = iter([images[i : i + CALIBRATION_BATCH] for i in starts])
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}


def float_nodes(graph: Path) -> list[str]:
    """Nodes of ``graph`` left in float by static quantisation: the MatMuls, which in a ferkit
    network are only its weightless input prefilters (the resampling and sharpness matrices,
    :mod:`ferkit.models.nets.resample`); the classifier head is a Gemm. Quantised, the
    resampling matrix and its input cost 0.3 points of FER2013 val on their own, for no time
    worth having: two 48x48 matrix products against the convolutions."""
    import onnx

    return [n.name for n in onnx.load(str(graph)).graph.node if n.op_type == "MatMul"]


def quantize_graph(
    source: Path, kind: str, calibration: np.ndarray | None, out: Path, input_name: str = "images"
) -> Path:
    """Write the ``kind`` int8 copy of ``source`` to ``out``; ``calibration`` (uint8 crops in
    the graph's layout) is required for the static kinds. Deterministic for the same inputs."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if kind not in QUANT_KINDS:
        raise OptionError(f"kind must be one of {QUANT_KINDS}, got {kind!r}")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        if kind == "dynamic":
            quantize_dynamic(prepared, out, weight_type=QuantType.QInt8, per_channel=True)
            return out
        if calibration is None or len(calibration) == 0:
            raise OptionError("static quantisation needs calibration images")
        quantize_static(
            prepared,
            out,
            _Calibration(calibration, input_name),
            nodes_to_exclude=float_nodes(prepared),
            quant_format=QuantFormat.QDQ if kind == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return out
