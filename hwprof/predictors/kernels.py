"""Kernels: the units a device runs after fusing the graph (nn-Meter's idea).

hwprof's primitive layers are already grouped as mobile runtimes fuse them: a
``conv`` layer is Conv -> BatchNorm -> activation, emitted as exactly those
ONNX nodes by :mod:`hwprof.build_onnx`. A kernel is one primitive layer, typed
by what the hardware sees (a 1x1 conv and a depthwise conv run on different
units), with numeric features a regression tree can split on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from hwprof.arch import Block
from hwprof.layers import ACTIVATIONS, Layer

FEATURES = ("c_in", "c_out", "res_in", "res_out", "kernel", "stride", "groups", "macs", "in_elems",
            "out_elems", "params", "act", "extra_elems")
# Predictor files written before ``extra_elems`` (elements read from a second operand or a fused
# residual) existed were fitted on the first 12 features.
LEGACY_FEATURES = 12


def kernel_type(layer: Layer) -> str:
    """Kernel class of a primitive layer: conv, pwconv, dwconv, gconv, fc, or the layer kind."""
    if layer.kind == "conv":
        if layer.groups == 1:
            return "pwconv" if layer.kernel == 1 else "conv"
        return "dwconv" if layer.groups == layer.c_in else "gconv"
    if layer.kind == "linear":
        return "fc"
    return layer.kind


def kernel_features(layer: Layer) -> tuple[float, ...]:
    """Numeric features of one kernel, in :data:`FEATURES` order.

    ``extra_elems`` (elements read besides the first input) is known here only for a
    residual ``add`` of two equal tensors; graph-based detection fills it in exactly.
    """
    in_elems = layer.c_in * layer.res_in**2
    return (layer.c_in, layer.c_out, layer.res_in, layer.res_out, layer.kernel, layer.stride, layer.groups,
            layer.macs, in_elems, layer.c_out * layer.res_out**2, layer.params,
            ACTIVATIONS.index(layer.act) if layer.act in ACTIVATIONS else 0,
            in_elems if layer.kind == "add" else 0)


@lru_cache(maxsize=65536)
def block_kernels(block: Block) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """(kernel type, features) of every kernel of a block, cached per block configuration."""
    return tuple((kernel_type(layer), kernel_features(layer)) for layer in block.layers())


def group_kernels(blocks: list[Block]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kernels of ``blocks`` grouped by type: (feature matrix, owning block index per row)."""
    feats: dict[str, list] = {}
    owner: dict[str, list] = {}
    for i, block in enumerate(blocks):
        for ktype, f in block_kernels(block):
            feats.setdefault(ktype, []).append(f)
            owner.setdefault(ktype, []).append(i)
    return {k: (np.asarray(feats[k], dtype=float), np.asarray(owner[k])) for k in feats}


def value_geometry(shape) -> tuple[float, float]:
    """(channels, side) of a tensor for kernel features: NCHW gives (C, H); (1, N, C) tokens give
    (C, sqrt(N)), so that channels x side^2 is the element count; a (1, C) vector gives (C, 1)."""
    shape = list(shape) or [1]
    if len(shape) == 4:
        return float(shape[1]), float(shape[2])
    if len(shape) == 3:
        return float(shape[-1]), float(np.sqrt(shape[0] * shape[1]))
    if len(shape) <= 2:
        return float(shape[-1]), 1.0
    return float(shape[-1]), float(np.sqrt(np.prod(shape[:-1])))


def exact_elements(features: tuple[float, ...], x, y) -> tuple[float, ...]:
    """``features`` with in/out element counts taken from the tensors' shapes (any rank)."""
    out = list(features)
    out[FEATURES.index("in_elems")] = float(np.prod(x)) if len(x) else 1.0
    out[FEATURES.index("out_elems")] = float(np.prod(y)) if len(y) else 1.0
    return tuple(out)


def matmul_layer(x, y, weight_dims) -> Layer:
    """The kernel of a MatMul read from a graph: a per-row linear when the right operand is a weight,
    else a product of two activations (attention's Q K^T and A V), batched over the leading dims."""
    rows = float(np.prod(x[:-1])) if len(x) > 1 else 1.0
    if weight_dims is not None:
        side = float(np.sqrt(rows))
        return Layer("linear", "", (), (), x[-1], y[-1], side, side, bias=False, tokens=rows > 1)
    batch = float(np.prod(y[:-2])) if len(y) > 2 else 1.0
    side = float(np.sqrt(y[-2])) if len(y) > 1 else 1.0
    return Layer("matmul", "", (), (), x[-1], y[-1], side, side, groups=batch)


_ACT_OPS = {"Relu": "relu", "HardSwish": "hswish", "HardSigmoid": "hsigmoid", "Sigmoid": "sigmoid"}
# Shape plumbing costs nothing; Gather and Cast do (shape computations are constant-folded first, so a
# Gather left over picks data, e.g. q, k and v out of a stacked projection, or rows of an embedding)
_MOVE_OPS = {"Transpose", "Gather", "Slice", "Expand", "Tile", "Pad"}
_FREE_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant", "Dropout"}


@dataclass(frozen=True)
class OnnxKernel:
    """One fused kernel of an ONNX graph.

    Attributes:
        type: Kernel class (conv, pwconv, dwconv, gconv, fc, add, act, ...).
        features: Numeric features in :data:`FEATURES` order.
        nodes: Names of the graph nodes it fuses, the main node first (unnamed nodes
            are called ``{op_type}_{index}``, see :func:`node_names`).
        boundary: A layout conversion at the graph's input or output, there because the
            graph was run on its own (see :mod:`hwprof.runtime_graph`).
    """

    type: str
    features: tuple[float, ...]
    nodes: tuple[str, ...]
    boundary: bool = False

    @property
    def name(self) -> str:
        """The main node's name."""
        return self.nodes[0]

    def describe(self) -> str:
        """Short human description, e.g. ``dwconv k5 s2 96->96 @56px``."""
        f = dict(zip(FEATURES, self.features))
        geometry = f"k{int(f['kernel'])} s{int(f['stride'])} " if self.type.endswith(("conv",)) else ""
        return f"{self.type} {geometry}{int(f['c_in'])}->{int(f['c_out'])} @{int(f['res_in'])}px"


def node_names(model) -> list[str]:
    """Every node's name, with ``{op_type}_{index}`` for unnamed nodes (unique within the graph)."""
    return [n.name or f"{n.op_type}_{i}" for i, n in enumerate(model.graph.node)]


def named(model):
    """A copy of ``model`` whose unnamed nodes carry the names :func:`node_names` gives them.

    Profiling a named model makes the runtime's node names (and those of its
    optimized graph) stable, so node times and kernels can be matched by name.
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node, name in zip(copy.graph.node, node_names(copy)):
        node.name = name
    return copy


def kernels_from_onnx(model, fuse_decomposed: bool = False) -> list[tuple[str, tuple[float, ...]]]:
    """(kernel type, features) of every kernel of any ONNX model; see :func:`onnx_kernels`."""
    return [(k.type, k.features) for k in onnx_kernels(model, fuse_decomposed)]


def onnx_kernels(model, fuse_decomposed: bool = False) -> list[OnnxKernel]:
    """Kernels of any ONNX model, fused as mobile runtimes fuse them.

    A Conv (or Gemm) absorbs a following BatchNormalization and activation
    when it is their only producer-consumer chain. Activations are recognised
    as single ops (Relu, Clip -> relu6, HardSwish, HardSigmoid, Sigmoid) and in
    the decomposed forms exporters emit: ``x * HardSigmoid(x)`` and
    ``x * Clip(x + 3, 0, 6) / 6`` (h-swish), ``x * Sigmoid(x)`` (swish). Shape
    plumbing (Flatten, Reshape, ...) costs nothing and is skipped.

    Args:
        model: The ONNX model.
        fuse_decomposed: Also fuse the decomposed activation forms into the
            producing conv. Off by default: runtimes such as onnxruntime's CPU
            provider run those Add/Clip/Mul/Div nodes as separate kernels.

    Returns:
        One :class:`OnnxKernel` per kernel, in graph order; type and features are
        what :func:`block_kernels` gives for hwprof's own blocks.
    """

    from hwprof.onnx_shapes import constant_folded, tensor_shapes

    shapes = tensor_shapes(model)
    inits = {i.name: i for i in model.graph.initializer}
    consts, folded = constant_folded(model)
    consumers: dict[str, list] = {}
    producer = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
        for o in node.output:
            producer[o] = node
    used: set[int] = set()

    def only_consumer(value: str):
        c = consumers.get(value, [])
        return c[0] if len(c) == 1 else None

    def attr(node, name, default):
        for a in node.attribute:
            if a.name == name:
                import onnx

                return onnx.helper.get_attribute_value(a)
        return default

    def absorb_activation(value: str) -> tuple[str, str]:
        """(activation, output value) of the activation applied to ``value``, consuming its nodes."""
        users = consumers.get(value, [])
        if len(users) == 1 and users[0].op_type in _ACT_OPS:
            used.add(id(users[0]))
            return _ACT_OPS[users[0].op_type], users[0].output[0]
        if len(users) == 1 and users[0].op_type == "Clip":
            used.add(id(users[0]))
            return "relu6", users[0].output[0]
        if len(users) == 2 and fuse_decomposed:  # x * gate(x): h-swish or swish
            gate = next((u for u in users if u.op_type in ("HardSigmoid", "Sigmoid", "Add")), None)
            mul = next((u for u in users if u.op_type == "Mul"), None)
            if gate is not None and mul is not None:
                chain = [gate]
                while chain[-1].output[0] not in mul.input:
                    nxt = only_consumer(chain[-1].output[0])
                    if nxt is None or nxt.op_type not in ("Clip", "Div", "Mul", "Relu6") or len(chain) > 3:
                        return "none", value
                    chain.append(nxt)
                used.update(id(n) for n in (*chain, mul))
                end = mul.output[0]
                scale = only_consumer(end)  # x * relu6(x + 3) / 6: the division comes after the product
                if scale is not None and scale.op_type in ("Div", "Mul") and any(i in consts for i in scale.input):
                    used.add(id(scale))
                    end = scale.output[0]
                return ("swish" if gate.op_type == "Sigmoid" else "hswish"), end
        return "none", value

    def dims(value: str) -> list[int]:
        return shapes.get(value, [1])

    name_of = {id(n): name for n, name in zip(model.graph.node, node_names(model))}
    out: list[OnnxKernel] = []
    for index, node in enumerate(model.graph.node):
        if id(node) in used or index in folded or node.op_type in _FREE_OPS:
            continue
        before = set(used)
        used.add(id(node))
        op = node.op_type
        x = dims(node.input[0]) if node.input else [1]
        y = dims(node.output[0])
        c_in, res_in = value_geometry(x)
        c_out, res_out = value_geometry(y)
        if op == "MatMul" and node.input[1] not in consts:
            layer = matmul_layer(x, y, None)
        elif op in ("Conv", "Gemm", "MatMul"):
            value, bn = node.output[0], False
            nxt = only_consumer(value)
            if op == "Conv" and nxt is not None and nxt.op_type == "BatchNormalization":
                used.add(id(nxt))
                value, bn = nxt.output[0], True
            elif op == "MatMul" and nxt is not None and nxt.op_type == "Add":
                used.add(id(nxt))
                value = nxt.output[0]
            act, _ = absorb_activation(value)
            w = inits.get(node.input[1])
            if op == "Conv":
                k = int(w.dims[2]) if w is not None else int(attr(node, "kernel_shape", [1])[0])
                groups = int(attr(node, "group", 1))
                stride = int(attr(node, "strides", [1])[0])
                layer = Layer("conv", "", (), (), c_in, c_out, res_in, res_out, k, stride, groups,
                              bias=len(node.input) > 2, bn=bn, act=act)
            elif op == "MatMul":
                layer = replace(matmul_layer(x, y, list(w.dims) if w is not None else [x[-1], y[-1]]), act=act)
            else:
                layer = Layer("linear", "", (), (), c_in, c_out, 1, 1, act=act)
        elif op in ("LayerNormalization", "Softmax"):
            layer = Layer("layernorm" if op == "LayerNormalization" else "softmax", "", (), (), c_in, c_out,
                          res_in, res_out)
        elif op in ("GlobalAveragePool", "ReduceMean"):
            layer = Layer("gap", "", (), (), c_in, c_in, res_in, 1)
        elif op in ("MaxPool", "AveragePool"):
            k = int(attr(node, "kernel_shape", [1])[0])
            layer = Layer("maxpool" if op == "MaxPool" else "avgpool", "", (), (), c_in, c_in, res_in, res_out, k,
                          int(attr(node, "strides", [1])[0]))
        elif op in ("Add", "Mul") and all(i not in consts for i in node.input):
            layer = Layer(op.lower(), "", (), (), c_in, c_out, res_in, res_out)
        elif op in _ACT_OPS or op == "Clip":
            layer = Layer("act", "", (), (), c_in, c_in, res_in, res_in, act=_ACT_OPS.get(op, "relu6"))
        elif op == "Transpose" and len(x) == 5 and list(attr(node, "perm", [])) == [0, 2, 1, 3, 4]:
            # channel shuffle: Reshape(N,g,C/g,H,W) -> Transpose -> Reshape
            layer = Layer("shuffle", "", (), (), x[1] * x[2], x[1] * x[2], x[3], x[3], groups=x[1])
        elif op in _MOVE_OPS:  # pure data movement: a layout change or a gathered slice
            layer = Layer("reorder", "", (), (), c_in, c_out, res_in, res_out)
        elif op == "Concat":
            layer = Layer("concat", "", (), (), c_in, c_out, res_in, res_out)
        elif op == "Split":
            layer = Layer("split", "", (), (), c_in, c_out, res_in, res_out)
        else:  # elementwise with constants and anything else: an elementwise kernel
            layer = Layer("act", "", (), (), c_in, c_out, res_in, res_out)
        fused = [name_of[id(n)] for n in model.graph.node if id(n) in used and id(n) not in before]
        main = name_of[id(node)]
        out.append(OnnxKernel(kernel_type(layer), exact_elements(kernel_features(layer), x, y),
                              (main, *[n for n in fused if n != main])))
    return out
