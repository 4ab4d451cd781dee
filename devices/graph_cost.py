"""Analytic per-op latency of an ONNX graph on a simulated chip.

Walks the graph node by node (DESIGN.md, "Simulated devices"):

* time per op = max(compute / (peak for the op class * kernel efficiency),
  bytes moved / bandwidth) + dispatch overhead;
* channels are padded to the chip's lane width, so latency is a staircase in
  channel count;
* an activation larger than on-chip SRAM moves at DRAM bandwidth;
* Conv -> BatchNorm -> activation fuse into one op when the chip supports the
  activation;
* ops the chip lacks run on the host CPU, paying a transfer both ways;
* a fixed per-inference overhead and the input/output transfer are added once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from devices.profile import Profile
from hwprof.onnx_shapes import constant_folded, tensor_shapes

_ELEMENTWISE = {"Add", "Mul", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Sub", "Div",
                "BatchNormalization", "LeakyRelu", "PRelu", "Tanh", "Erf"}
_FREE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Constant", "Shape"}
_MOVE = {"Concat", "Split", "Transpose", "Slice", "Pad", "Gather"}
# Element operations per input element of reductions and normalisations: Softmax (max, subtract, exp,
# sum, divide), LayerNormalization (mean, variance, normalise, scale, shift), ReduceMean (one add).
_REDUCTION_WORK = {"Softmax": 5, "LayerNormalization": 5, "ReduceMean": 1}
_FUSABLE_POST = {"BatchNormalization", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu"}


@dataclass
class OpCost:
    """Simulated cost of one ONNX node (seconds)."""

    node: str
    op_type: str
    op_class: str
    macs: int
    bytes: int
    time_s: float
    fused: bool = False
    fallback: bool = False


def _pad(c: int, lane: int) -> int:
    return math.ceil(c / lane) * lane


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class GraphCostModel:
    """Computes per-op costs of ONNX graphs under one :class:`Profile`."""

    def __init__(self, profile: Profile) -> None:
        self.p = profile

    def _move_time(self, nbytes: float) -> float:
        """Time to move one activation tensor: SRAM if it fits, else DRAM."""
        bw = self.p.sram_gbps if nbytes <= self.p.sram_bytes else self.p.dram_gbps
        return nbytes / (bw * 1e9)

    def _fallback_time(self, in_bytes: float, out_bytes: float, elements: float) -> float:
        p = self.p
        transfer = (in_bytes + out_bytes) / (p.host_link_gbps * 1e9)
        return transfer + elements / (p.host_cpu_gops * 1e9) + p.fallback_sync_us * 1e-6

    def op_costs(self, model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None) -> list[OpCost]:
        """Per-node costs, in graph order (``shapes`` from :func:`tensor_shapes` if already known)."""
        p = self.p
        shapes = shapes if shapes is not None else tensor_shapes(model)
        eb = p.bytes_per_element
        initializers, folded = constant_folded(model)
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for i in node.input:
                consumers.setdefault(i, []).append(node)
        fused_into: set[str] = set()
        costs: list[OpCost] = []
        for index, node in enumerate(model.graph.node):
            op = node.op_type
            out = node.output[0] if node.output else ""
            out_shape = shapes.get(out, [1])
            out_elems = math.prod(out_shape)
            in_shape = shapes.get(node.input[0], [1]) if node.input else [1]
            in_elems = math.prod(in_shape)
            name = node.name or f"{op}_{len(costs)}"
            if node.name in fused_into:
                costs.append(OpCost(name, op, "fused", 0, 0, 0.0, fused=True))
                continue
            if index in folded:  # computed once when the model is loaded
                costs.append(OpCost(name, op, "free", 0, 0, 0.0))
                continue
            unsupported = op in p.unsupported_ops
            if op == "Conv":
                w = shapes[node.input[1]]
                group = int(_attr(node, "group", 1))
                c_out, c_in_g, k = w[0], w[1], w[2]
                c_in = c_in_g * group
                hw = out_shape[2] * out_shape[3] if len(out_shape) == 4 else 1
                if group > 1 and group == c_in == c_out:
                    cls = "dwconv"
                    eff_macs = hw * _pad(c_out, p.lane) * k * k
                elif group > 1:
                    cls = "gconv"
                    eff_macs = hw * _pad(c_out, p.lane) * _pad(c_in_g, p.lane) * k * k
                else:
                    cls = "pwconv" if k == 1 else "conv"
                    if hw == 1:
                        cls = "fc"  # 1x1 conv on a 1x1 map (SE, head) is a matrix-vector product
                    eff_macs = hw * _pad(c_out, p.lane) * _pad(c_in, p.lane) * k * k
                macs = hw * c_out * c_in_g * k * k
                eff = p.kernel_efficiency(cls, k)
                compute = eff_macs / (p.peak_gmacs(cls) * 1e9 * eff)
                act_bytes = (in_elems + out_elems) * eb
                w_bytes = math.prod(w) * eb
                memory = (self._move_time(in_elems * eb) + self._move_time(out_elems * eb)
                          + w_bytes / (p.dram_gbps * 1e9))
                time = max(compute, memory) + p.dispatch_us * 1e-6
                # fuse following BatchNorm / supported activation (single consumer chain)
                tail = out
                while len(consumers.get(tail, ())) == 1:
                    nxt = consumers[tail][0]
                    if nxt.op_type not in _FUSABLE_POST or nxt.op_type in p.unsupported_ops:
                        break
                    fused_into.add(nxt.name)
                    tail = nxt.output[0]
                costs.append(OpCost(name, op, cls, macs, int(act_bytes + w_bytes), time))
            elif op == "Gemm" or (op == "MatMul" and node.input[1] in initializers):
                w = shapes[node.input[1]]
                rows = math.prod(in_shape[:-1])  # tokens times batch: 1 for a classifier
                k_dim, n_dim = in_shape[-1], out_shape[-1]
                macs = rows * k_dim * n_dim
                # one row is a matrix-vector product; many rows (tokens) run as a 1x1 conv on the cube
                cls = "fc" if rows == 1 else "pwconv"
                compute = rows * _pad(k_dim, p.lane) * _pad(n_dim, p.lane) / (p.peak_gmacs(cls) * 1e9)
                memory = (math.prod(w) * eb / (p.dram_gbps * 1e9)
                          + (self._move_time(in_elems * eb) + self._move_time(out_elems * eb) if rows > 1 else 0))
                costs.append(OpCost(name, op, cls, macs, int(math.prod(w) * eb),
                                    max(compute, memory) + p.dispatch_us * 1e-6))
            elif op == "MatMul":  # two activations (attention's Q K^T and A V): batched on the cube
                a_shape, b_shape = in_shape, shapes.get(node.input[1], [1])
                batch, rows = math.prod(out_shape[:-2]), out_shape[-2] if len(out_shape) > 1 else 1
                k_dim, n_dim = a_shape[-1], out_shape[-1]
                macs = batch * rows * k_dim * n_dim
                eff_macs = batch * _pad(rows, p.lane) * _pad(k_dim, p.lane) * _pad(n_dim, p.lane)
                compute = eff_macs / (p.peak_gmacs("matmul") * 1e9)
                moved = (in_elems + math.prod(b_shape) + out_elems) * eb
                memory = (self._move_time(in_elems * eb) + self._move_time(math.prod(b_shape) * eb)
                          + self._move_time(out_elems * eb))
                time = max(compute, memory) + p.dispatch_us * 1e-6
                if unsupported:
                    time = self._fallback_time(moved - out_elems * eb, out_elems * eb, macs)
                costs.append(OpCost(name, op, "matmul", macs, int(moved), time, fallback=unsupported))
            elif op in _FREE:
                costs.append(OpCost(name, op, "free", 0, 0, 0.0))
            else:
                if op in ("MaxPool", "AveragePool"):
                    k = _attr(node, "kernel_shape", [1, 1])
                    cls, work = "pool", out_elems * k[0] * k[1]
                elif op == "GlobalAveragePool":
                    cls, work = "pool", in_elems
                elif op in _MOVE:
                    cls, work = "move", 0
                elif op in _REDUCTION_WORK:  # normalisations read their input several times
                    cls, work = "elementwise", in_elems * _REDUCTION_WORK[op]
                else:
                    cls, work = "elementwise", out_elems
                in_bytes = sum(math.prod(shapes.get(i, [0])) for i in node.input
                               if i and i not in initializers) * eb
                out_bytes = sum(math.prod(shapes.get(o, [0])) for o in node.output) * eb
                if unsupported:
                    time = self._fallback_time(in_bytes, out_bytes, work)
                else:
                    compute = work / (p.peak_gmacs(cls) * 1e9)
                    memory = self._move_time(in_bytes) + self._move_time(out_bytes)
                    time = max(compute, memory) + p.dispatch_us * 1e-6
                costs.append(OpCost(name, op, cls, 0, int(in_bytes + out_bytes), time, fallback=unsupported))
        return costs

    def latency(self, model: onnx.ModelProto) -> tuple[float, list[OpCost]]:
        """Noise-free latency in seconds of one inference, and the per-op breakdown."""
        shapes = tensor_shapes(model)
        costs = self.op_costs(model, shapes)
        io_bytes = sum(math.prod(shapes[v.name]) for v in (*model.graph.input, *model.graph.output)
                       if v.name in shapes) * self.p.bytes_per_element
        overhead = self.p.fixed_overhead_us * 1e-6 + io_bytes / (self.p.host_link_gbps * 1e9)
        return overhead + sum(c.time_s for c in costs), costs
