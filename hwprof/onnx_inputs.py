"""What an ONNX model takes as input: names, static shapes, dtypes, and seeded example values."""

from __future__ import annotations

import numpy as np
import onnx

from hwprof.errors import HwprofError


def model_inputs(model: onnx.ModelProto) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """Name, static shape and numpy dtype of each of a model's inputs (initializers excluded).

    Raises:
        HwprofError: if an input has a dynamic dimension.
    """
    inits = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tensor = inp.type.tensor_type
        dims = []
        for d in tensor.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                example = ",".join(map(str, _example_shape(tensor.shape.dim)))
                raise HwprofError(f"input '{inp.name}' has a dynamic dimension",
                                  f"give a static shape with --input-shape (e.g. --input-shape {inp.name}={example})")
            dims.append(d.dim_value)
        out.append((inp.name, tuple(dims), onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return out


def _example_shape(dims) -> list[int]:
    """A plausible static shape for a hint: known sizes kept; batch 1; an image's channels 3 and sides 224;
    a sequence's length 128."""
    rank = len(dims)
    out = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(d.dim_value)
        elif i == 0:
            out.append(1)
        elif rank == 4:
            out.append(3 if i == 1 else 224)
        else:
            out.append(128)
    return out


def model_input(model: onnx.ModelProto) -> tuple[str, tuple[int, ...], np.dtype]:
    """Name, static shape and numpy dtype of a model's single input.

    Raises:
        HwprofError: if the model has several inputs or a dynamic dimension.
    """
    inits = {i.name for i in model.graph.initializer}
    count = len([i for i in model.graph.input if i.name not in inits])
    if count != 1:
        raise HwprofError(f"the model has {count} inputs; this step takes single-input models")
    return model_inputs(model)[0]


def _vocabulary(model: onnx.ModelProto, name: str) -> int | None:
    """Rows of the embedding table an integer input indexes (a Gather of an initializer), if any."""
    tables = {i.name: list(i.dims) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == name and node.input[0] in tables:
            return int(tables[node.input[0]][0])
    return None


def input_feed(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded values for every input: N(0, 1) for floats; for integers, valid token ids.

    Integer inputs that index an embedding table get ids below its size; ones
    named like a mask get ones; token-type / segment / position inputs get
    zeros; any other integer input gets 0/1.
    """
    rng = np.random.default_rng(seed)
    feed = {}
    for name, shape, dtype in model_inputs(model):
        if np.dtype(dtype).kind == "f":
            feed[name] = rng.standard_normal(shape).astype(dtype)
            continue
        lowered = name.lower()
        vocab = _vocabulary(model, name)
        if "mask" in lowered:
            value = np.ones(shape)
        elif any(k in lowered for k in ("type", "segment", "position")) and vocab is None:
            value = np.zeros(shape)
        else:
            value = rng.integers(0, vocab or 2, shape)
        feed[name] = value.astype(dtype)
    return feed
