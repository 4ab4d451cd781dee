"""Per-layer latency breakdown: node times grouped into the kernels predictors use.

A device reports time per node as its runtime ran the graph (see
:meth:`hwprof.device.Device.op_times`). Runtimes rename what they fuse:
onnxruntime names a fused Conv+BN+activation after the chain's output tensor
and appends ``_nchwc`` when it switches layout, and it inserts nodes of its own
(``ReorderInput``/``ReorderOutput``). Each reported node is matched to the
kernel of :func:`hwprof.predictors.kernels.onnx_kernels` that holds the node
or produces the tensor of that name; what matches nothing is the runtime's own
work and is listed as such, never silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Mapping

import onnx

from hwprof.device import Device, NodeTime
from hwprof.predictors.kernels import named, node_names, onnx_kernels  # noqa: F401 (named: public here too)

_RUNTIME_SUFFIX = re.compile(r"(_nchwc|_token_\d+|_fused\w*)+$")
RUNTIME_OPS = {"ReorderInput": "layout conversion", "ReorderOutput": "layout conversion", "Reorder": "layout conversion",
               "MemcpyToHost": "host<->device copy", "MemcpyFromHost": "host<->device copy"}


@dataclass(frozen=True)
class KernelTime:
    """Time of one kernel (or of runtime-inserted work) per inference.

    Attributes:
        name: The kernel's main node, or ``runtime: <what>`` for the runtime's own nodes.
        type: Kernel class (conv, pwconv, dwconv, fc, add, ...) or ``runtime``.
        description: Short description of its geometry.
        ms: Median milliseconds per inference (sum over its nodes).
        nodes: The runtime's node names counted in it.
    """

    name: str
    type: str
    description: str
    ms: float
    nodes: tuple[str, ...]


def _graph_node(name: str, owner: Mapping[str, int], by_output: Mapping[str, str]) -> str:
    """The model's node a runtime node stands for.

    onnxruntime names a fused node after the first node it absorbed plus the
    fusion (``/blocks.0/fc1/MatMul/MatMulAddFusion``), and some nodes after
    their output value; the name is cut back one ``/`` component at a time
    until it names one of the model's kernels.
    """
    candidate = name
    while True:
        if candidate in owner:
            return candidate
        if candidate in by_output:
            return by_output[candidate]
        head, sep, _ = candidate.rpartition("/")
        if not sep or not head:
            return name
        candidate = head


def group_by_kernel(model: onnx.ModelProto, times: list[NodeTime]) -> list[KernelTime]:
    """Sum node times into the model's kernels (graph order), then runtime-inserted work.

    Args:
        model: The model as measured (nodes named as in :func:`named`).
        times: Per-node times from a device.
    """
    kernels = onnx_kernels(model)
    names = node_names(model)
    owner: dict[str, int] = {}
    for index, kernel in enumerate(kernels):
        for node in kernel.nodes:
            owner[node] = index
    by_output = {}
    for node, name in zip(model.graph.node, names):
        for value in node.output:
            by_output[value] = name
    graph_nodes = set(names)
    totals = [0.0] * len(kernels)
    members: list[list[str]] = [[] for _ in kernels]
    extra: dict[str, tuple[str, str, float, list[str]]] = {}
    for t in times:
        node = _graph_node(_RUNTIME_SUFFIX.sub("", t.node), owner, by_output)
        if node in owner:
            totals[owner[node]] += t.ms
            members[owner[node]].append(t.node)
            continue
        if node in graph_nodes:  # a graph node that is not a kernel (Reshape, Flatten, ...)
            key, kind, label = node, "other", f"{t.op} (not a kernel)"
        else:
            what = RUNTIME_OPS.get(t.op, t.op)
            key, kind, label = f"runtime: {what}", "runtime", f"inserted or renamed by the runtime ({what})"
        _, _, ms, nodes = extra.get(key, (label, kind, 0.0, []))
        extra[key] = (label, kind, ms + t.ms, [*nodes, t.node])
    out = [KernelTime(k.name, k.type, k.describe(), ms, tuple(m)) for k, ms, m in zip(kernels, totals, members)]
    out += [KernelTime(key, kind, label, ms, tuple(nodes)) for key, (label, kind, ms, nodes) in extra.items()]
    return out


def breakdown(device: Device, model: onnx.ModelProto, runs: int = 20) -> dict:
    """Per-kernel breakdown of ``model`` on ``device`` as a JSON-ready dict.

    Keys: ``source`` (profiler or simulator), ``runs``, ``kernels`` (name, type,
    description, ms, nodes), ``sum_ms``, ``node_ms`` (each node the runtime ran, by
    its name in the runtime's executed graph: what kernel-rf shares a block's
    latency by, see :class:`~hwprof.predictors.kernel_rf.KernelRFPredictor`).
    """
    model = named(model)
    times = device.op_times(model, runs)
    kernels = group_by_kernel(model, times)
    source = "simulator model (noise-free)" if device.simulated else getattr(device, "per_op_source",
                                                                             "onnxruntime profiler")
    node_ms: dict[str, float] = {}
    for t in times:
        node_ms[t.node] = node_ms.get(t.node, 0.0) + t.ms
    return {"source": source, "runs": 1 if device.simulated else runs,
            "kernels": [{**asdict(k), "nodes": list(k.nodes)} for k in kernels],
            "sum_ms": sum(k.ms for k in kernels), "node_ms": node_ms}


def parse(text: str) -> list[KernelTime]:
    """Kernels of a stored breakdown (the ``ops_json`` column)."""
    data = json.loads(text)
    return [KernelTime(k["name"], k["type"], k["description"], float(k["ms"]), tuple(k["nodes"]))
            for k in data["kernels"]]
