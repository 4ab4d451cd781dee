"""Shapes of every tensor of an ONNX model, and what a runtime folds into constants: hwprof's one shape helper.

Everything that needs a tensor's shape (MAC and parameter counts, the
simulated chips' cost model, the runtime-graph kernels, the LiteRT builder)
reads it here: from the model's recorded value_info when it is complete,
else from ONNX shape inference on a weightless copy.
"""

from __future__ import annotations

import onnx
from onnx import shape_inference


def _dims(vi: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]


def _static_dims(vi: onnx.ValueInfoProto) -> list[int] | None:
    """The shape when every dimension is a known number; None for symbolic dims or an unknown rank."""
    tensor = vi.type.tensor_type
    if not tensor.HasField("shape") or not all(d.HasField("dim_value") for d in tensor.shape.dim):
        return None
    return [d.dim_value for d in tensor.shape.dim]


def tensor_shapes(model: onnx.ModelProto, static_only: bool = False) -> dict[str, list[int]]:
    """Shapes of every tensor; runs shape inference (without weights) only if needed.

    Args:
        model: The model.
        static_only: Leave out tensors whose shape is not fully known (symbolic
            dimensions, unknown rank) instead of reading unknown dimensions as 1.
    """
    read = _static_dims if static_only else _dims
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        dims = read(vi)
        if dims is not None:
            shapes[vi.name] = dims
    if all(o in shapes for n in model.graph.node for o in n.output if o):
        return shapes
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.graph.node.extend(model.graph.node)
    light.graph.input.extend(model.graph.input)
    light.graph.output.extend(model.graph.output)
    for init in model.graph.initializer:  # dims only; keep integer constants (shapes, splits)
        tensor = light.graph.initializer.add()
        if init.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            tensor.CopyFrom(init)
        else:
            tensor.name, tensor.data_type = init.name, init.data_type
            tensor.dims.extend(init.dims)
    inferred = shape_inference.infer_shapes(light)
    for vi in (*inferred.graph.value_info, *inferred.graph.output):
        dims = read(vi)
        if dims is not None:
            shapes[vi.name] = dims
    return shapes


def constant_folded(model: onnx.ModelProto) -> tuple[set[str], set[int]]:
    """What a runtime computes once at load time instead of per inference (constant folding).

    A node whose every input is constant (an initializer, a Constant, the output of
    another folded node, or a Shape of a tensor whose shape is static, as every shape
    in a batch-1 deployed graph is) is folded: torch's exporter emits such chains for
    reshapes written with ``x.size()`` and for transposed weights (``x @ w.T``).

    Returns:
        (names of every constant value, graph-order index of every folded node).
    """
    constant = {i.name for i in model.graph.initializer}
    folded: set[int] = set()
    for index, node in enumerate(model.graph.node):
        if node.op_type == "Constant" or node.op_type == "Shape" or (
                node.input and all(not i or i in constant for i in node.input)):
            folded.add(index)
            constant.update(o for o in node.output if o)
    return constant, folded
