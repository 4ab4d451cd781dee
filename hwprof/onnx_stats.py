"""Count MACs and trainable parameters of any ONNX model from its graph alone.

Independent of the IR: it reads shapes by ONNX shape inference, so it also
checks models made by other tools.
"""

from __future__ import annotations

import numpy as np
import onnx

from hwprof.onnx_shapes import tensor_shapes

# (op type, input index) slots that hold trainable tensors.
_TRAINABLE_SLOTS = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "BatchNormalization": (1, 2),
                    "Gather": (0,), "LayerNormalization": (1, 2)}  # Gather of a table: an embedding


def count_params(model: onnx.ModelProto) -> int:
    """Trainable parameters: Conv/Gemm/MatMul weights and biases, BatchNorm and LayerNorm scale and shift,
    embedding tables (a Gather from a 2-D float initializer), and float tensors of more than one element
    added or multiplied in (a MatMul's bias, a position embedding, a layer scale)."""
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    tables = {init.name for init in model.graph.initializer
              if len(init.dims) == 2 and init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    floats = {init.name for init in model.graph.initializer
              if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type in ("Add", "Mul"):  # a bias after MatMul, a position embedding, a layer scale
            seen.update(i for i in node.input if i in floats and sizes[i] > 1)
        for slot in _TRAINABLE_SLOTS.get(node.op_type, ()):
            if slot < len(node.input) and node.input[slot] in sizes and (node.op_type != "Gather"
                                                                          or node.input[slot] in tables):
                seen.add(node.input[slot])
    return sum(sizes[name] for name in seen)


def count_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of Conv, Gemm and MatMul nodes (batch as given in the graph)."""
    shapes = tensor_shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]
            out = shapes[node.output[0]]
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "Gemm":
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            trans_b = next((at.i for at in node.attribute if at.name == "transB"), 0)
            n_out = b[0] if trans_b else b[1]
            total += a[0] * a[1] * n_out
        elif node.op_type == "MatMul":
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            total += int(np.prod(a)) * b[-1]
    return total
