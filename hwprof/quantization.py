"""INT8 models for the real runtimes: one calibration recipe, recorded with every row.

Every int8 measurement in hwprof is of a statically quantized model calibrated
on the same seeded synthetic inputs (:data:`CALIBRATION`), so that rows from
``cpu``, ``openvino-cpu`` and ``litert-cpu`` are comparable and reproducible:

- onnxruntime and OpenVINO run a QDQ model written by onnxruntime's static
  quantizer (:func:`quantize_qdq`): int8 weights, symmetric per output
  channel; 8-bit activations, asymmetric per tensor, from min/max ranges,
  stored as uint8 (the "U8S8" form both runtimes' x86 int8 kernels take: with
  int8 activations onnxruntime falls back to slower kernels and OpenVINO's
  outputs drift, measured in ``benchmarks/bench_runtimes.py``); float input and
  output (QuantizeLinear/DequantizeLinear pairs around each quantized op,
  which both runtimes fold into int8 kernels); for hwprof's convolutional
  graphs :mod:`hwprof.qdq` writes that same model directly, several times
  faster;
- LiteRT runs a full-integer flatbuffer (:mod:`hwprof.build_tflite`).

The dtype is a device setting, so int8 rows never share a dataset key or a
predictor with float32 rows.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx

from hwprof.errors import HwprofError

DTYPES = ("float32", "float16", "int8")
CALIBRATION = {"inputs": 8, "distribution": "standard normal", "seed": 0, "ranges": "min/max"}
QDQ_SCHEME = ("onnxruntime static QDQ (U8S8): int8 weights (symmetric, per output channel), uint8 activations "
              "(asymmetric, per tensor), float input and output")


def calibration_inputs(shape: tuple[int, ...], n: int = CALIBRATION["inputs"],
                       seed: int = CALIBRATION["seed"]) -> list[np.ndarray]:
    """The seeded synthetic inputs int8 ranges are calibrated on (the model's own layout, float32)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def is_quantized(model: onnx.ModelProto) -> bool:
    """Whether an ONNX model already holds quantized ops (QDQ pairs or QLinear/Integer ops)."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
               or n.op_type.startswith("QLinear") or n.op_type.endswith("Integer") for n in model.graph.node)


def quantize_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """A statically quantized QDQ copy of a float ONNX model (see the module docstring).

    Raises:
        HwprofError: if onnxruntime's quantizer rejects the model.
    """
    from hwprof.onnx_inputs import model_input

    from hwprof import qdq
    from hwprof.graph_rewrites import apply_rewrites, find_rewrites

    name, shape, _ = model_input(model)
    folds = [r for r in find_rewrites(model) if r.kind == "bn-fold"]
    model = apply_rewrites(model, folds) if folds else model  # as a deployment export would have it
    if qdq.supports(model):  # the same model, written without the quantizer's per-channel Python loops
        return qdq.quantize(model, calibration_inputs(shape))
    return _quantize_with_onnxruntime(model, name, shape)


def _quantize_with_onnxruntime(model: onnx.ModelProto, name: str, shape: tuple[int, ...]) -> onnx.ModelProto:
    """:func:`quantize_qdq` through onnxruntime's static quantizer (any graph it can quantize)."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._inputs = iter(calibration_inputs(shape))

        def get_next(self):
            x = next(self._inputs, None)
            return None if x is None else {name: x}

    with tempfile.TemporaryDirectory(prefix="hwprof-q-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # the quantizer warns through the root logger
        try:
            quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "CalibTensorRangeSymmetric": False})
        except Exception as exc:  # the quantizer raises many kinds
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HwprofError(f"onnxruntime cannot quantize the model: {first}",
                              "measure it in float32, or bring an already quantized (QDQ) model") from None
        finally:
            root.level = level
        out = onnx.load(str(dst))
    out.graph.name = model.graph.name
    return out


def as_dtype(model: onnx.ModelProto, dtype: str) -> onnx.ModelProto:
    """``model`` quantized for ``int8`` unless it already is; otherwise unchanged."""
    if dtype == "int8" and not is_quantized(model):
        return quantize_qdq(model)
    return model


def check_dtype(dtype: str, allowed: tuple[str, ...], device: str) -> None:
    """Raise a one-line error for a dtype ``device`` cannot run."""
    if dtype not in allowed:
        raise HwprofError(f"device '{device}' does not run {dtype} models", f"use --dtype {' or '.join(allowed)}")
