"""Static QDQ quantization of hwprof's convolutional graphs, written directly (vectorised).

onnxruntime's static quantizer computes per-channel weight parameters in a
Python loop over output channels: about 3 s per ``ofa`` network on this
machine, longer than measuring it. For graphs made only of the operators
hwprof's convolutional spaces build (:data:`SUPPORTED_OPS`) this module writes
the same QDQ model that onnxruntime's quantizer writes with hwprof's recipe
(:mod:`hwprof.quantization`): the same Quantize/DequantizeLinear nodes in the
same places under the same names, the same rules (activations quantized
around Conv, Gemm, Add, Mul, GlobalAveragePool and Concat with their own
ranges; reshapes, pools and splits sharing their input's parameters; a Relu
or Clip right after a quantized node folded into that node's output range),
int8 symmetric per-output-channel weights, int32 biases at input scale x
weight scale, uint8 asymmetric activations from min/max over the calibration
inputs. ``tests/test_runtimes.py`` checks node-for-node equality with
onnxruntime's quantizer on every convolutional space. Other graphs go through
onnxruntime's quantizer.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

SUPPORTED_OPS = frozenset({"Conv", "Gemm", "Add", "Mul", "Relu", "Clip", "GlobalAveragePool", "AveragePool",
                           "MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Split", "Concat",
                           "HardSigmoid", "HardSwish"})
_WEIGHTED = {"Conv", "Gemm"}  # input 0 and output quantized, weight per channel, bias int32
_OWN_PARAMS = {"Add", "Mul", "GlobalAveragePool", "Concat"}  # every input and output with its own range
_SHARED = {"AveragePool", "MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze"}  # output = input's
_REMOVABLE = {"Relu", "Clip"}  # folded into the producer's output range
_UINT8 = (0, 255)
_INT8_SYMMETRIC = 127


def supports(model: onnx.ModelProto) -> bool:
    """Whether :func:`quantize` handles ``model`` (else use onnxruntime's quantizer)."""
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in SUPPORTED_OPS:
            return False
        if node.op_type in _OWN_PARAMS and any(i in inits for i in node.input):
            return False  # constant operands would be quantized as weights; not built by hwprof
        if node.op_type in _WEIGHTED and (len(node.input) < 2 or node.input[1] not in inits
                                          or (len(node.input) > 2 and node.input[2] not in inits)):
            return False
        if node.op_type == "Gemm" and any(a.name == "beta" and a.f != 1.0 for a in node.attribute):
            return False
    return len(model.graph.input) == 1 and len(model.graph.output) == 1


def _plan(model: onnx.ModelProto) -> tuple[dict[str, str | None], dict[str, tuple[str, int]],
                                           dict[str, tuple[str, str, str]], list[onnx.NodeProto]]:
    """Which tensors are quantized, as onnxruntime's QDQ quantizer decides, in its order.

    Returns:
        (activation -> None for its own range or the tensor whose parameters it shares,
        weight -> (consumer op, axis), bias -> (node name, input, weight), nodes kept)
    """
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    graph_io = {graph.input[0].name, graph.output[0].name}
    tensors: dict[str, str | None] = {}
    weights: dict[str, tuple[str, int]] = {}
    biases: dict[str, tuple[str, str, str]] = {}
    nodes = [onnx.NodeProto() for _ in graph.node]
    for copy, node in zip(nodes, graph.node):
        copy.CopyFrom(node)
    producer = {out: n for n in nodes for out in n.output}

    def own(name: str) -> None:
        if name and name not in inits and name not in tensors:
            tensors[name] = None

    for node in nodes:
        op = node.op_type
        if op in _WEIGHTED:
            own(node.input[0])
            own(node.output[0])
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            weights[node.input[1]] = (op, 0 if op == "Conv" or trans_b else 1)
            if len(node.input) > 2:
                biases[node.input[2]] = (node.name, node.input[0], node.input[1])
        elif op in _OWN_PARAMS:
            for name in [*node.input, *node.output]:
                own(name)
        elif op in _REMOVABLE:
            upstream, out = node.input[0], node.output[0]
            if upstream not in tensors:
                continue
            if consumers.get(upstream, 0) == 1 and upstream not in graph_io and upstream in producer:
                up = producer[upstream]
                up.output[list(up.output).index(upstream)] = out
                producer[out] = up
                del tensors[upstream]
                node.op_type = ""  # dropped below
            else:
                own(upstream)
            own(out)
        elif op in _SHARED:
            if node.input[0] in tensors:
                tensors[node.output[0]] = node.input[0]
        elif op == "Split":
            own(node.input[0])
            for out in node.output:
                tensors[out] = node.input[0]
    kept = [n for n in nodes if n.op_type]
    return tensors, weights, biases, kept


def _ranges(model: onnx.ModelProto, names: Sequence[str], inputs: Sequence[np.ndarray]) -> dict[str, tuple[float, float]]:
    """(min, max) of each tensor over the calibration inputs (graph optimizations off, as onnxruntime calibrates)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    for x in inputs:
        for name, value in zip(names, session.run(list(names), {feed: x})):
            lo[name] = min(lo[name], float(np.min(value)))
            hi[name] = max(hi[name], float(np.max(value)))
    return {n: (lo[n], hi[n]) for n in names}


def _activation_params(rmin: float, rmax: float) -> tuple[np.float32, np.uint8]:
    """uint8 asymmetric scale and zero point of a range widened to contain 0 (onnxruntime's rule)."""
    rmin, rmax = min(np.float32(rmin), np.float32(0)), max(np.float32(rmax), np.float32(0))
    scale = (np.float64(rmax) - np.float64(rmin)) / (_UINT8[1] - _UINT8[0])
    if scale < np.finfo(np.float32).tiny:
        return np.float32(1.0), np.uint8(0)
    zero = np.round(_UINT8[0] - np.float64(rmin) / scale)
    return np.float32(scale), np.uint8(np.clip(zero, *_UINT8))


def _weight_params(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 symmetric per-channel (``axis``) quantized weights and their scales."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    absmax = np.maximum(np.abs(np.minimum(moved.min(axis=1), 0)), np.maximum(moved.max(axis=1), 0))
    scale = (absmax.astype(np.float64) * 2 / (2 * _INT8_SYMMETRIC)).astype(np.float32)
    scale = np.where(scale < np.finfo(np.float32).tiny, np.float32(1.0), scale)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -_INT8_SYMMETRIC, _INT8_SYMMETRIC).astype(np.int8)
    return q, scale


def quantize(model: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> onnx.ModelProto:
    """The QDQ model onnxruntime's static quantizer writes for ``model`` with hwprof's recipe (module docstring).

    Args:
        model: A float model for which :func:`supports` is true (batch norms already folded).
        inputs: Calibration inputs.
    """
    tensors, weights, biases, nodes = _plan(model)
    own = [t for t, shared in tensors.items() if shared is None]
    ranges = _ranges(model, own, inputs)
    graph = model.graph
    out_name = graph.output[0].name
    init_arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    new_inits = [t for t in graph.initializer if t.name not in weights and t.name not in biases]
    head: list[onnx.NodeProto] = []  # weight and bias DequantizeLinear nodes
    qdq: dict[str, list[onnx.NodeProto]] = {}  # tensor -> its Q/DQ pair
    rename_in: dict[str, str] = {}
    rename_out: dict[str, str] = {}
    params: dict[str, tuple[str, str]] = {}
    scales: dict[str, np.float32] = {}

    for name in own:
        scale, zero = _activation_params(*ranges[name])
        scales[f"{name}_scale"] = scale
        new_inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_scale"),
                      numpy_helper.from_array(np.array(zero, np.uint8), f"{name}_zero_point")]
        params[name] = (f"{name}_scale", f"{name}_zero_point")
    pending = [t for t, shared in tensors.items() if shared is not None]
    while pending:  # shared tensors take their provider's parameters once it has them
        later = []
        for name in pending:
            if tensors[name] in params:
                params[name] = params[tensors[name]]
            else:
                later.append(name)
        if len(later) == len(pending):
            raise ValueError(f"no quantization parameters to share for {later[0]}")
        pending = later
    for name in tensors:
        scale_name, zp_name = params[name]
        q_in, dq_out = name, f"{name}_DequantizeLinear_Output"
        if name == out_name:
            q_in, dq_out = f"{name}_QuantizeLinear_Input", name
            rename_out[name] = q_in
        else:
            rename_in[name] = dq_out
        qdq[name] = [helper.make_node("QuantizeLinear", [q_in, scale_name, zp_name], [f"{name}_QuantizeLinear_Output"],
                                      f"{name}_QuantizeLinear"),
                     helper.make_node("DequantizeLinear", [f"{name}_QuantizeLinear_Output", scale_name, zp_name],
                                      [dq_out], f"{name}_DequantizeLinear")]
    weight_scale = {}
    for name, (_, axis) in weights.items():
        q, scale = _weight_params(init_arrays[name], axis)
        weight_scale[name] = scale
        new_inits += [numpy_helper.from_array(q, f"{name}_quantized"),
                      numpy_helper.from_array(scale, f"{name}_scale"),
                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero_point")]
        head.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
                                     [f"{name}_DequantizeLinear_Output"], f"{name}_DequantizeLinear", axis=axis))
        rename_in[name] = f"{name}_DequantizeLinear_Output"
    for name, (_, source, weight) in biases.items():
        bias_scale = (scales[params[source][0]] * weight_scale[weight]).astype(np.float32)
        q = np.clip(np.round(init_arrays[name].astype(np.float64) / bias_scale.astype(np.float64)),
                    np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        new_inits += [numpy_helper.from_array(q, f"{name}_quantized"),
                      numpy_helper.from_array(bias_scale, f"{name}_quantized_scale"),
                      numpy_helper.from_array(np.zeros(bias_scale.shape, np.int32), f"{name}_quantized_zero_point")]
        extra = {"axis": 0} if bias_scale.size > 1 else {}
        head.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_quantized_scale",
                                                          f"{name}_quantized_zero_point"], [name],
                                     f"{name}_DequantizeLinear", **extra))
    body = []
    if graph.input[0].name in qdq:
        body += qdq[graph.input[0].name]
    for node in nodes:
        for i, name in enumerate(node.input):
            if name in rename_in and name not in biases:
                node.input[i] = rename_in[name]
        for i, name in enumerate(node.output):
            if name in rename_out:
                node.output[i] = rename_out[name]
        body.append(node)
        for name in node.output:  # each tensor's Q/DQ pair right after its producer
            key = out_name if name == rename_out.get(out_name) else name
            body += qdq.get(key, [])
    used = {name for node in head + body for name in node.input}
    new_inits = [t for t in new_inits if t.name in used]  # e.g. a folded Clip's bounds, as onnxruntime drops them
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(head + body)
    del out.graph.initializer[:]
    out.graph.initializer.extend(new_inits)
    return out
