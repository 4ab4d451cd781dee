"""Kernels as the runtime runs them: detection on the runtime's own executed graph.

A runtime does not run the graph it is given. onnxruntime folds BatchNorm
into convolutions, fuses supported activations (and, in its NCHWc layout, a
following residual Add) into the convolution, converts layouts with
ReorderInput/ReorderOutput around ops that cannot stay blocked, and leaves
decomposed activation chains (Add -> Clip -> Mul -> Div) and ReduceMean
pooling as separate kernels. The graph it will execute can be written out at
session creation without running inference (``optimized_model_filepath``);
:func:`graph_kernels` reads the kernels from that graph, so a predictor sees
exactly what runs: one fused kernel where the runtime fuses, one kernel per
node where it does not, each with features that capture its memory traffic.

Runtimes that show nothing (simulated chips, whose analytic model fuses
Conv -> BN -> activation itself) use hwprof's own fusion rules
(:func:`hwprof.predictors.kernels.onnx_kernels`), which match what the
simulator charges.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import onnx

from hwprof.predictors.kernels import (FEATURES, OnnxKernel, exact_elements, kernel_features, kernel_type,
                                      matmul_layer, named, node_names, onnx_kernels, value_geometry)
from hwprof.layers import Layer

RULES = "rules"
ONNXRUNTIME = "onnxruntime"


@dataclass(frozen=True)
class GraphRuntime:
    """The runtime whose executed graph defines the kernels.

    Attributes:
        kind: ``onnxruntime`` (kernels of the session's optimized graph) or
            ``rules`` (hwprof's fusion rules, for runtimes that show nothing).
        provider: onnxruntime execution provider.
        opt_level: onnxruntime graph optimisation level (disable | basic | extended | all).
    """

    kind: str = RULES
    provider: str = "CPUExecutionProvider"
    opt_level: str = "all"

    def describe(self) -> str:
        """One line for outputs, e.g. ``onnxruntime CPUExecutionProvider (opt all)``."""
        if self.kind == RULES:
            return "hwprof fusion rules (Conv+BN+activation; the runtime shows no executed graph)"
        return f"onnxruntime {self.provider} optimized graph (level {self.opt_level})"

    def to_json(self) -> str:
        """Stable JSON form (stored in predictor manifests)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> GraphRuntime:
        """Inverse of :meth:`to_json`; ``None`` or empty gives the rules runtime."""
        return cls(**json.loads(text)) if text else cls()


def runtime_for(device: str, settings: str | dict, simulated: bool) -> GraphRuntime:
    """The runtime that executes graphs for a device with the given settings.

    ``cpu`` is onnxruntime's CPU provider at the recorded optimisation level. A
    GPU's optimized graph can only be written where the CUDA provider loads,
    and simulated chips have their own analytic model: both use the rules.
    """
    if simulated or device != "cpu":
        return GraphRuntime(RULES)
    values = json.loads(settings) if isinstance(settings, str) and settings else (settings or {})
    return GraphRuntime(ONNXRUNTIME, "CPUExecutionProvider", str(values.get("opt_level", "all")))


def optimized_model(model: onnx.ModelProto, runtime: GraphRuntime) -> onnx.ModelProto:
    """The graph onnxruntime will execute for ``model`` (see :func:`devices.ort.optimized_graph`).

    Raises:
        HwprofError: if onnxruntime cannot load or optimize the model.
    """
    from devices.ort import optimized_graph

    return optimized_graph(model, runtime.provider, runtime.opt_level)


def graph_kernels(model: onnx.ModelProto, runtime: GraphRuntime) -> list[OnnxKernel]:
    """Kernels of ``model`` as ``runtime`` runs them (see the module docstring)."""
    if runtime.kind == RULES:
        return onnx_kernels(model)
    from hwprof.onnx_shapes import tensor_shapes

    return executed_kernels(optimized_model(model, runtime), tensor_shapes(model, static_only=True))


# --- kernels of an executed (optimized) onnxruntime graph --------------------------------

_FREE = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Shape", "Gather", "Constant", "Cast",
         "Dropout", "MemcpyToHost", "MemcpyFromHost"}
_CONV = {"Conv", "FusedConv"}
_POOL = {"MaxPool": "maxpool", "AveragePool": "avgpool"}
_GLOBAL_POOL = {"GlobalAveragePool", "GlobalMaxPool"}
_FC = {"Gemm", "FusedGemm", "MatMul", "FusedMatMul"}
_REORDER = {"ReorderInput", "ReorderOutput", "Transpose"}
_NORMS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization", "Softmax"}
# What an elementwise kernel computes, coded for the trees (0 is "none": a plain copy).
ELEMENTWISE_CODES = {"Relu": 1, "Clip": 2, "HardSwish": 3, "HardSigmoid": 4, "Sigmoid": 5, "Tanh": 6,
                     "LeakyRelu": 7, "Add": 8, "Sub": 8, "Mul": 9, "Div": 10, "BatchNormalization": 11,
                     "Pow": 12, "Sqrt": 12, "Erf": 13, "Softmax": 14, "Gelu": 15, "BiasGelu": 15, "FastGelu": 15,
                     "QuickGelu": 15}
_FUSED_ACTS = {b"Relu": "relu", b"Clip": "relu6", b"HardSigmoid": "hsigmoid", b"Sigmoid": "sigmoid",
               b"HardSwish": "hswish", b"Tanh": "sigmoid", b"LeakyRelu": "relu"}


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _elems(shape: list[int] | None) -> int:
    return int(np.prod(shape[1:])) if shape and len(shape) > 1 else int(np.prod(shape or [1]))


def _broadcast(shapes: list[list[int]]) -> list[int]:
    rank = max(len(s) for s in shapes)
    padded = [[1] * (rank - len(s)) + list(s) for s in shapes]
    return [max(col) for col in zip(*padded)]


def _window(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + pad - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def _infer_shape(node: onnx.NodeProto, ins: list[list[int] | None], consts: dict[str, onnx.TensorProto]) -> list[int]:
    """Output shape of one node of an optimized graph (contrib ops included)."""
    x = ins[0] if ins and ins[0] is not None else [1]
    op = node.op_type
    if op in _CONV or (op in _POOL and len(x) == 4):
        if op in _CONV:
            w = ins[1] or [x[1], 1, 1, 1]
            kernel, channels = list(w[2:]) or [1, 1], w[0]
        else:
            kernel, channels = list(_attr(node, "kernel_shape", [1, 1])), x[1]
        strides = list(_attr(node, "strides", [1] * len(kernel)))
        dil = list(_attr(node, "dilations", [1] * len(kernel)))
        pads = list(_attr(node, "pads", [0] * 2 * len(kernel)))
        ceil = bool(_attr(node, "ceil_mode", 0))
        if _attr(node, "auto_pad", b"NOTSET") in (b"SAME_UPPER", b"SAME_LOWER"):
            return [x[0], channels, *[math.ceil(s / st) for s, st in zip(x[2:], strides)]]
        return [x[0], channels, *[_window(s, k, st, pads[i] + pads[i + len(kernel)], d, ceil)
                                  for i, (s, k, st, d) in enumerate(zip(x[2:], kernel, strides, dil))]]
    if op in _GLOBAL_POOL:
        return [*x[:2], *[1] * (len(x) - 2)]
    if op in ("ReduceMean", "ReduceSum", "ReduceMax"):
        axes = _attr(node, "axes", None)
        if axes is None and len(node.input) > 1 and node.input[1] in consts:
            axes = onnx.numpy_helper.to_array(consts[node.input[1]]).tolist()
        axes = [a % len(x) for a in (axes if axes is not None else range(len(x)))]
        keep = _attr(node, "keepdims", 1)
        return [1 if i in axes else d for i, d in enumerate(x) if keep or i not in axes]
    if op in ("MatMul", "FusedMatMul") and len(x) > 1 and ins[1] is not None and len(ins[1]) > 1:
        a, b = list(x), list(ins[1])
        if _attr(node, "transA", 0):
            a[-2:] = a[-1], a[-2]
        if _attr(node, "transB", 0):
            b[-2:] = b[-1], b[-2]
        batch = _broadcast([a[:-2], b[:-2]]) if len(a) > 2 or len(b) > 2 else []
        return [*batch, a[-2], b[-1]]
    if op in _FC:
        w = ins[1] or [x[-1], x[-1]]
        out = w[0] if op != "MatMul" and _attr(node, "transB", 0) else w[-1]
        return [*x[:-1], out]
    if op == "ReorderOutput":
        return [x[0], int(_attr(node, "channels", x[1])), *x[2:]]
    if op == "Flatten":
        axis = _attr(node, "axis", 1)
        return [int(np.prod(x[:axis])), int(np.prod(x[axis:]))]
    if op == "Concat":
        axis = _attr(node, "axis", 1) % len(x)
        return [sum(s[axis] for s in ins if s) if i == axis else d for i, d in enumerate(x)]
    if op in _SHAPE_OPS and ins and ins[0] is not None:
        reshaped = _shape_op(node, x, ins, consts)
        if reshaped is not None:
            return reshaped
    known = [s for s in ins if s is not None]
    return _broadcast(known) if known else x


_SHAPE_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Gather", "Expand", "Shape"}


def _const_values(consts: dict[str, onnx.TensorProto], name: str) -> list[int] | None:
    tensor = consts.get(name) if name else None
    return None if tensor is None else [int(v) for v in onnx.numpy_helper.to_array(tensor).reshape(-1)]


def _const_input(node: onnx.NodeProto, consts: dict[str, onnx.TensorProto], index: int) -> list[int] | None:
    """Values of the node's ``index``-th input when it is a constant; None when absent or computed."""
    return _const_values(consts, node.input[index]) if len(node.input) > index else None


def _axes(node: onnx.NodeProto, consts: dict[str, onnx.TensorProto]) -> list[int] | None:
    """``axes`` from the attribute (older opsets) or the constant second input, as written."""
    axes = _attr(node, "axes", None)
    return [int(a) for a in axes] if axes is not None else _const_input(node, consts, 1)


def _shape_op(node: onnx.NodeProto, x: list[int], ins: list[list[int] | None],
              consts: dict[str, onnx.TensorProto]) -> list[int] | None:
    """Output shape of a data-movement op from its constant operands; None where they are not constant.

    Exported graphs (torch's ``nn.MultiheadAttention`` above all) move attention's
    heads with Reshape/Transpose/Squeeze chains; a kernel after them is priced
    by the shapes they produce.
    """
    op = node.op_type
    if op == "Shape":
        return [len(x)]
    if not x:
        return None
    if op == "Transpose":
        perm = list(_attr(node, "perm", list(range(len(x)))[::-1]))
        return [x[p] for p in perm] if len(perm) == len(x) else None
    if op == "Reshape":
        target = _const_input(node, consts, 1)
        if target is None:
            return None
        allow_zero = _attr(node, "allowzero", 0)
        out = [x[i] if d == 0 and not allow_zero and i < len(x) else d for i, d in enumerate(target)]
        if out.count(-1) == 1:
            known = int(np.prod([d for d in out if d != -1])) or 1
            out[out.index(-1)] = int(np.prod(x)) // known
        return out if all(d >= 0 for d in out) else None
    if op == "Squeeze":
        axes = _axes(node, consts)
        dropped = None if axes is None else {a % len(x) for a in axes}
        return [d for i, d in enumerate(x) if (d != 1 if dropped is None else i not in dropped)]
    if op == "Unsqueeze":
        axes = _axes(node, consts)
        if axes is None:
            return None
        out = list(x)
        for a in sorted(a % (len(x) + len(axes)) for a in axes):
            out.insert(a, 1)
        return out
    if op == "Slice":
        starts, ends, axes, steps = (_const_input(node, consts, i) for i in (1, 2, 3, 4))
        if starts is None or ends is None:
            return None
        out = list(x)
        for start, end, axis, step in zip(starts, ends, axes or range(len(starts)), steps or [1] * len(starts)):
            size = x[axis]
            start = min(max(start + size if start < 0 else start, 0), size)
            end = min(max(end + size if end < 0 else end, 0), size)
            out[axis] = max(0, math.ceil((end - start) / step)) if step > 0 else max(0, math.ceil((start - end) / -step))
        return out
    if op == "Gather":
        axis = int(_attr(node, "axis", 0)) % len(x)
        index = ins[1] if len(ins) > 1 and ins[1] is not None else None
        if index is None:
            values = _const_input(node, consts, 1)
            index = None if values is None else ([] if len(values) == 1 and consts[node.input[1]].dims == []
                                                 else [len(values)])
        return None if index is None else [*x[:axis], *index, *x[axis + 1:]]
    if op == "Expand":
        target = _const_input(node, consts, 1)
        return None if target is None else _broadcast([x, target])
    return None


def _output_shapes(node: onnx.NodeProto, ins: list[list[int] | None],
                   consts: dict[str, onnx.TensorProto]) -> list[list[int]]:
    """Shape of every output of ``node``: Split's parts each, the first output's shape for the others."""
    x = ins[0] if ins and ins[0] is not None else None
    if node.op_type == "Split" and x:
        axis = int(_attr(node, "axis", 0)) % len(x)
        sizes = _attr(node, "split", None)
        if sizes is None:
            sizes = _const_input(node, consts, 1)
        n = len(node.output)
        if not sizes:
            sizes = [math.ceil(x[axis] / n)] * (n - 1) + [x[axis] - math.ceil(x[axis] / n) * (n - 1)]
        return [[*x[:axis], int(size), *x[axis + 1:]] for size in sizes]
    first = _infer_shape(node, ins, consts)
    return [first] * len(node.output)


def executed_kernels(optimized: onnx.ModelProto, known_shapes: dict[str, list[int]] | None = None) -> list[OnnxKernel]:
    """Kernels of a graph as onnxruntime wrote it after optimisation: one per executed node.

    Args:
        optimized: The optimized graph (see :func:`optimized_model`).
        known_shapes: Tensor shapes of the original model (names the optimizer kept);
            the rest are derived node by node, contrib and NCHWc ops included.

    Returns:
        One :class:`OnnxKernel` per node that does work, in graph order. Reorders that
        read the graph's input or write its output are marked ``boundary`` (they exist
        because the graph was run alone; inside a larger network they may not).
    """
    graph = optimized.graph
    consts = {i.name: i for i in graph.initializer}
    consts.update({n.output[0]: _attr(n, "value", None) for n in graph.node if n.op_type == "Constant"})
    shapes: dict[str, list[int]] = {i.name: list(i.dims) for i in graph.initializer}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            shapes[vi.name] = dims
    for name, dims in (known_shapes or {}).items():
        shapes.setdefault(name, list(dims))
    inputs = {i.name for i in graph.input} - set(consts)
    outputs = {o.name for o in graph.output}
    out: list[OnnxKernel] = []
    for node, name in zip(graph.node, node_names(optimized)):
        ins = [shapes.get(i) if i else None for i in node.input]
        if any(o and o not in shapes for o in node.output):
            for o, shape in zip(node.output, _output_shapes(node, ins, consts)):
                if o and o not in shapes:
                    shapes[o] = shape
        if node.op_type in _FREE:
            continue
        x = ins[0] if ins and ins[0] is not None else [1]
        y = shapes.get(node.output[0], x)
        c_in, res_in = value_geometry(x)
        c_out, res_out = value_geometry(y)
        variable = [i for i in node.input if i and i not in consts]
        extra = sum(_elems(shapes.get(i)) for i in variable[1:])
        boundary = False
        op = node.op_type
        if op in _CONV:
            w = shapes.get(node.input[1], [c_out, c_in, 1, 1])
            groups = int(_attr(node, "group", 1))
            if groups > 1 and len(w) > 1 and w[1] == 1:  # depthwise (NCHWc pads its channels past the input's)
                c_in = groups
            act = _FUSED_ACTS.get(_attr(node, "activation", b""), "none")
            summed = len(node.input) > 3 and bool(node.input[3])  # residual Add fused (NCHWc "Sum", FusedConv "Z")
            layer = Layer("conv", "", (), (), c_in, c_out, res_in, res_out, int(w[2]) if len(w) > 2 else 1,
                          int(_attr(node, "strides", [1])[0]), groups, bias=len(node.input) > 2 and bool(node.input[2]),
                          act=act)
            extra = _elems(shapes.get(node.input[3])) if summed else 0
        elif op in ("MatMul", "FusedMatMul") and len(node.input) > 1 and node.input[1] not in consts:
            layer = matmul_layer(x, y, None)  # two activations: attention's products
            extra = 0
        elif op in _FC:
            layer = (matmul_layer(x, y, shapes.get(node.input[1])) if op in ("MatMul", "FusedMatMul")
                     else Layer("linear", "", (), (), c_in, c_out, 1, 1))
            extra = 0
        elif op in _NORMS:
            layer = Layer("layernorm" if "LayerNorm" in op else "softmax", "", (), (), c_in, c_out, res_in, res_out)
        elif op in _GLOBAL_POOL:
            layer = Layer("gap", "", (), (), c_in, c_in, res_in, 1)
        elif op in ("ReduceMean", "ReduceSum", "ReduceMax"):
            # how many elements each output averages: over H and W at once (x.mean((2, 3)), torchvision's and
            # timm's SE), or one axis at a time (the OFA code's mean(3).mean(2)): onnxruntime runs the two with
            # kernels far apart in speed (one axis of a C x H x 1 tensor: tens of times slower per element)
            per_output = max(1, _elems(x) // max(_elems(y), 1))
            kind = "reduce-axis" if len(x) == 4 and (per_output != x[2] * x[3] or min(x[2], x[3]) == 1) else "reduce"
            layer = Layer(kind, "", (), (), c_in, c_out, res_in, res_out, kernel=per_output)
        elif op in _POOL:
            k = int(_attr(node, "kernel_shape", [1])[0])
            layer = Layer(_POOL[op], "", (), (), c_in, c_out, res_in, res_out, k, int(_attr(node, "strides", [1])[0]))
        elif op in _REORDER and len(x) == 5 and list(_attr(node, "perm", [])) == [0, 2, 1, 3, 4]:  # shuffle
            layer = Layer("shuffle", "", (), (), x[1] * x[2], x[1] * x[2], x[3], x[3], groups=x[1])
        elif op in _REORDER:
            layer = Layer("reorder", "", (), (), c_in, c_out, res_in, res_out)
            boundary = node.input[0] in inputs or node.output[0] in outputs
        elif op in ("Concat", "Split"):
            layer = Layer(op.lower(), "", (), (), c_in, c_out, res_in, res_out)
        elif op in ("Add", "Sub", "Mul", "Div") and len(variable) == 2:
            layer = Layer("add" if op in ("Add", "Sub") else "mul", "", (), (), c_in, c_out, res_in, res_out)
        else:
            layer = Layer("act", "", (), (), c_in, c_out, res_in, res_out)
        features = list(exact_elements(kernel_features(layer), x, y))
        if layer.kind not in ("conv", "linear"):  # elementwise and data movement: which operation it is
            features[FEATURES.index("act")] = ELEMENTWISE_CODES.get(op, 0)
        features[FEATURES.index("extra_elems")] = extra
        out.append(OnnxKernel(kernel_type(layer), tuple(float(f) for f in features), (name,), boundary))
    return out


_CONTEXT = ("ctx_pre", "ctx_post")


def in_network_context(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A block's model between two 1x1 convolutions, as it sits inside a network.

    A block run alone starts from and ends in the plain NCHW layout, so the
    runtime converts layouts at its borders and cannot fuse, say, its residual
    Add into a convolution that reads a blocked input. Between two convolutions
    it is optimized as inside a network; the kernels of the two wrappers (and
    the graph's own border conversions) are then left out by :func:`target_kernels`.
    Returns None for models whose input or output is not NCHW (they have no such border).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        return None
    dims_in = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    dims_out = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    if len(dims_in) != 4 or len(dims_out) != 4:
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    old_in, old_out = inputs[0].name, g.output[0].name
    for node in g.node:
        node.input[:] = ["ctx_pre_out" if i == old_in else i for i in node.input]
        node.output[:] = ["ctx_block_out" if o == old_out else o for o in node.output]
    elem = inputs[0].type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
    for name, c in (("ctx_pre_w", dims_in[1]), ("ctx_post_w", dims_out[1])):
        g.initializer.append(numpy_helper.from_array(np.eye(c, dtype=dtype).reshape(c, c, 1, 1), name))
    g.node.insert(0, helper.make_node("Conv", [old_in, "ctx_pre_w"], ["ctx_pre_out"], name="ctx_pre"))
    g.node.append(helper.make_node("Conv", ["ctx_block_out", "ctx_post_w"], ["ctx_post_out"], name="ctx_post"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("ctx_post_out", elem, dims_out))
    return out


@lru_cache(maxsize=32768)
def _cached_target_kernels(target, style: str, runtime: GraphRuntime, context: bool) -> tuple[OnnxKernel, ...]:
    from hwprof.graph_styles import build_model

    model = named(build_model(target, style))  # node names as the profiler reports them (hwprof.per_op)
    wrapped = in_network_context(model) if context and runtime.kind != RULES else None
    if wrapped is None:
        return tuple(graph_kernels(model, runtime))
    return tuple(k for k in graph_kernels(wrapped, runtime)
                 if not k.boundary and not any(tag in n for n in k.nodes for tag in _CONTEXT))


def target_kernels(target, style: str, runtime: GraphRuntime, context: bool = False) -> tuple[OnnxKernel, ...]:
    """Kernels of a block or network of the IR, built in ``style``, as ``runtime`` runs it (cached).

    With ``context`` a block's kernels are those it runs inside a network (see
    :func:`in_network_context`); without, those it runs timed alone.
    """
    return _cached_target_kernels(target, style, runtime, context)
