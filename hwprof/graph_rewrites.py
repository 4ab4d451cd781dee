"""Safe rewrites of exported graphs into the forms runtimes fuse.

Exporters spell common operations as chains that runtimes do not fuse:
torch exports ``x * relu6(x + 3) / 6`` as Add -> Clip -> Mul -> Div, a SE
block's ``x.mean((2, 3), keepdim=True)`` as ReduceMean, and a model exported
in training mode keeps BatchNormalization apart from its convolution. Each
:class:`Rewrite` found by :func:`find_rewrites` replaces such a chain with the
one op that computes the same function (HardSwish, HardSigmoid,
GlobalAveragePool, a Conv with folded weights). :func:`apply_rewrites` writes
them into a copy of the model; :func:`max_output_difference` checks the copy
against the original on seeded inputs, so nothing is applied on faith.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

KINDS = {
    "hswish": "decomposed h-swish (x * relu6(x + 3) / 6) -> one HardSwish op",
    "hsigmoid": "decomposed h-sigmoid (relu6(x + 3) / 6) -> one HardSigmoid op",
    "mean-pool": "ReduceMean over H and W -> GlobalAveragePool",
    "bn-fold": "BatchNormalization after Conv -> folded into the Conv weights",
}


@dataclass
class Rewrite:
    """One chain of nodes and the op that replaces it.

    Attributes:
        kind: A key of :data:`KINDS`.
        nodes: Names of the nodes removed (graph order).
        replacement: The nodes inserted in their place.
        initializers: New initializers the replacement needs (folded weights).
    """

    kind: str
    nodes: list[str]
    replacement: list[onnx.NodeProto]
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def describe(self) -> str:
        return KINDS[self.kind]


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.nodes = list(model.graph.node)
        for i, node in enumerate(self.nodes):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        self.consts[node.output[0]] = numpy_helper.to_array(a.t)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for i in node.input:
                self.consumers.setdefault(i, []).append(node)
        self.outputs = {o.name for o in model.graph.output}

    def scalar(self, name: str) -> float | None:
        value = self.consts.get(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def only(self, value: str) -> onnx.NodeProto | None:
        users = self.consumers.get(value, [])
        return users[0] if len(users) == 1 and value not in self.outputs else None

    def other_input(self, node: onnx.NodeProto, value: str) -> str | None:
        rest = [i for i in node.input if i != value]
        return rest[0] if len(rest) == 1 else (value if list(node.input) == [value, value] else None)

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-6 * max(1.0, abs(target))


def _clip_bounds(g: _Graph, node: onnx.NodeProto) -> tuple[float | None, float | None]:
    if len(node.input) >= 3:
        return g.scalar(node.input[1]), g.scalar(node.input[2])
    return g.attr(node, "min"), g.attr(node, "max")


def _scaled_by_sixth(g: _Graph, node: onnx.NodeProto | None, value: str) -> bool:
    """Whether ``node`` computes ``value / 6`` (or ``value * (1/6)``)."""
    if node is None or node.op_type not in ("Div", "Mul") or node.input[0] != value and node.op_type == "Div":
        return False
    const = g.other_input(node, value)
    return _close(g.scalar(const), 6.0 if node.op_type == "Div" else 1.0 / 6.0) if const else False


def _relu6_of_x_plus_3(g: _Graph, add: onnx.NodeProto) -> tuple[str, onnx.NodeProto] | None:
    """(x, Clip node) if ``add`` starts ``clip(x + 3, 0, 6)``."""
    if add.op_type != "Add":
        return None
    consts = [i for i in add.input if g.scalar(i) is not None]
    if len(consts) != 1 or not _close(g.scalar(consts[0]), 3.0):
        return None
    x = next(i for i in add.input if i != consts[0])
    clip = g.only(add.output[0])
    if clip is None or clip.op_type != "Clip":
        return None
    lo, hi = _clip_bounds(g, clip)
    if not (_close(lo, 0.0) and _close(hi, 6.0)):
        return None
    return x, clip


def _activation_rewrites(g: _Graph) -> list[Rewrite]:
    out = []
    for node in g.nodes:
        if node.op_type == "HardSigmoid":  # x * hardsigmoid(x): checked numerically like every rewrite
            mul = g.only(node.output[0])
            if mul is not None and mul.op_type == "Mul" and g.other_input(mul, node.output[0]) == node.input[0]:
                out.append(Rewrite("hswish", [node.name, mul.name],
                                   [helper.make_node("HardSwish", [node.input[0]], [mul.output[0]],
                                                     name=f"{mul.name}/HardSwish")]))
            continue
        found = _relu6_of_x_plus_3(g, node)
        if found is None:
            continue
        x, clip = found
        nxt = g.only(clip.output[0])
        if nxt is None:
            continue
        if nxt.op_type == "Mul" and g.other_input(nxt, clip.output[0]) == x:  # (x * relu6(x + 3)) / 6
            scale = g.only(nxt.output[0])
            if _scaled_by_sixth(g, scale, nxt.output[0]):
                out.append(Rewrite("hswish", [node.name, clip.name, nxt.name, scale.name],
                                   [helper.make_node("HardSwish", [x], [scale.output[0]], name=f"{scale.name}/HardSwish")]))
            continue
        if _scaled_by_sixth(g, nxt, clip.output[0]):  # relu6(x + 3) / 6, then maybe x * that
            mul = g.only(nxt.output[0])
            if mul is not None and mul.op_type == "Mul" and g.other_input(mul, nxt.output[0]) == x:
                out.append(Rewrite("hswish", [node.name, clip.name, nxt.name, mul.name],
                                   [helper.make_node("HardSwish", [x], [mul.output[0]], name=f"{mul.name}/HardSwish")]))
            else:
                out.append(Rewrite("hsigmoid", [node.name, clip.name, nxt.name],
                                   [helper.make_node("HardSigmoid", [x], [nxt.output[0]], name=f"{nxt.name}/HardSigmoid",
                                                     alpha=1.0 / 6.0, beta=0.5)]))
    return out


def _reduce_axes(g: _Graph, node: onnx.NodeProto) -> list[int] | None:
    axes = g.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1] in g.consts:
        axes = g.consts[node.input[1]].reshape(-1).tolist()
    return None if axes is None else sorted(int(a) % 4 for a in axes)


def _pool_rewrites(g: _Graph) -> list[Rewrite]:
    out, taken = [], set()
    for node in g.nodes:
        if node.op_type != "ReduceMean" or node.name in taken or g.attr(node, "keepdims", 1) != 1:
            continue
        axes = _reduce_axes(g, node)
        if axes == [2, 3]:
            chain = [node]
        elif axes in ([2], [3]):  # x.mean(3, keepdim=True).mean(2, keepdim=True), as the OFA code writes it
            nxt = g.only(node.output[0])
            if nxt is None or nxt.op_type != "ReduceMean" or g.attr(nxt, "keepdims", 1) != 1:
                continue
            if sorted(axes + (_reduce_axes(g, nxt) or [])) != [2, 3]:
                continue
            chain = [node, nxt]
        else:
            continue
        taken.update(n.name for n in chain)
        out.append(Rewrite("mean-pool", [n.name for n in chain],
                           [helper.make_node("GlobalAveragePool", [node.input[0]], [chain[-1].output[0]],
                                             name=f"{chain[-1].name}/GlobalAveragePool")]))
    return out


def _bn_rewrites(g: _Graph) -> list[Rewrite]:
    out = []
    for node in g.nodes:
        if node.op_type != "Conv" or node.input[1] not in g.consts:
            continue
        bn = g.only(node.output[0])
        if bn is None or bn.op_type != "BatchNormalization" or len(bn.output) > 1 and any(bn.output[1:]):
            continue
        if not all(i in g.consts for i in bn.input[1:5]):
            continue
        scale, shift, mean, var = (g.consts[i].astype(np.float64) for i in bn.input[1:5])
        eps = float(g.attr(bn, "epsilon", 1e-5))
        factor = scale / np.sqrt(var + eps)
        weight = g.consts[node.input[1]]
        bias = g.consts[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
        new_w = (weight.astype(np.float64) * factor.reshape(-1, *[1] * (weight.ndim - 1))).astype(weight.dtype)
        new_b = ((bias - mean) * factor + shift).astype(weight.dtype)
        w_name, b_name = f"{node.name}/folded_weight", f"{node.name}/folded_bias"
        conv = helper.make_node("Conv", [node.input[0], w_name, b_name], [bn.output[0]], name=f"{node.name}/folded")
        conv.attribute.extend(node.attribute)
        out.append(Rewrite("bn-fold", [node.name, bn.name], [conv],
                           [numpy_helper.from_array(new_w, w_name), numpy_helper.from_array(new_b, b_name)]))
    return out


def find_rewrites(model: onnx.ModelProto) -> list[Rewrite]:
    """Every rewrite that applies to ``model`` (no two touch the same node)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = _Graph(copy)
    found, used = [], set()
    for rewrite in (*_bn_rewrites(g), *_activation_rewrites(g), *_pool_rewrites(g)):
        if used.isdisjoint(rewrite.nodes):
            used.update(rewrite.nodes)
            found.append(rewrite)
    return found


def apply_rewrites(model: onnx.ModelProto, rewrites: list[Rewrite]) -> onnx.ModelProto:
    """A copy of ``model`` with ``rewrites`` applied (each replacement where its last removed node stood)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    names = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(out.graph.node)]
    removed = {name for r in rewrites for name in r.nodes}
    insert_at = {r.nodes[-1]: r for r in rewrites}
    nodes = []
    for node, name in zip(out.graph.node, names):
        if name in insert_at:
            nodes.extend(insert_at[name].replacement)
        if name not in removed:
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    for r in rewrites:
        out.graph.initializer.extend(r.initializers)
    used = {i for n in out.graph.node for i in n.input}
    keep = [i for i in out.graph.initializer if i.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep)
    kept_values = {o for n in out.graph.node for o in n.output} | {i.name for i in out.graph.input}
    stale = [v for v in out.graph.value_info if v.name not in kept_values]
    for v in stale:
        out.graph.value_info.remove(v)
    return out


def max_output_difference(a: onnx.ModelProto, b: onnx.ModelProto, seeds: tuple[int, ...] = (0, 1, 2)) -> float:
    """Largest absolute difference between the outputs of two single-input models on seeded inputs."""
    import onnxruntime as ort

    from hwprof.onnx_inputs import model_input

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sessions = [ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"]) for m in (a, b)]
    name, shape, dtype = model_input(a)
    worst = 0.0
    for seed in seeds:
        feed = {name: np.random.default_rng(seed).standard_normal(shape).astype(dtype)}
        outs = [s.run(None, feed) for s in sessions]
        for x, y in zip(*outs):
            worst = max(worst, float(np.max(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)))))
    return worst
