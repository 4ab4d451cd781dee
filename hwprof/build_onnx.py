"""Build ONNX models from the IR directly with ``onnx.helper`` (no torch export).

The graph is batch 1, NCHW, opset 17, IR version 8 so that older runtimes and
vendor converters read it. Node names start with the primitive layer name
(``b3.dw/Conv``), so per-node profiles map back to blocks.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import onnx
from onnx import TensorProto, helper

import hwprof
from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.layers import Layer

OPSET = 17
IR_VERSION = 8
_DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float16": (np.float16, TensorProto.FLOAT16)}
_POOL_SIZE = 1 << 22


@lru_cache(maxsize=1)
def _weight_pool() -> np.ndarray:
    """Fixed uniform(-1, 1) numbers that weights are sliced from (fast and deterministic)."""
    return np.random.default_rng(0).uniform(-1.0, 1.0, _POOL_SIZE).astype(np.float32)


def _weights(name: str, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """He-uniform-scaled weights for one tensor, the same on every run."""
    n = int(np.prod(shape))
    pool = _weight_pool()
    start = zlib.crc32(name.encode()) % (_POOL_SIZE - n) if n < _POOL_SIZE else 0
    flat = pool[start:start + n] if n <= _POOL_SIZE else np.resize(pool, n)
    return (flat * np.float32(np.sqrt(6.0 / max(fan_in, 1)))).reshape(shape)


class _Emitter:
    def __init__(self, dtype: str) -> None:
        if dtype not in _DTYPES:
            raise HwprofError(f"unsupported dtype '{dtype}'", "use float32 or float16")
        self.np_dtype, self.onnx_dtype = _DTYPES[dtype]
        # Tensors are written straight into the model: no intermediate protobuf copies.
        self.model = onnx.ModelProto()
        self.nodes = self.model.graph.node
        self._consts: dict[tuple, str] = {}

    def init(self, name: str, array: np.ndarray) -> str:
        if array.dtype.kind == "f":
            array = array.astype(self.np_dtype, copy=False)
        tensor = self.model.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        return name

    def const(self, values: tuple, dtype=np.int64) -> str:
        """Shared small constant (shapes, split sizes, clip bounds)."""
        key = (values, np.dtype(dtype).str)
        if key not in self._consts:
            name = f"const{len(self._consts)}"
            array = np.array(values, dtype=dtype)
            self.init(name, array.reshape(()) if len(values) == 1 and dtype != np.int64 else array)
            self._consts[key] = name
        return self._consts[key]

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output


    def act(self, act: str, x: str, out: str, name: str) -> str:
        if act == "none":
            return x
        if act == "relu":
            return self.node("Relu", [x], out, f"{name}/Relu")
        if act == "relu6":
            lo, hi = self.const((0.0,), self.np_dtype), self.const((6.0,), self.np_dtype)
            return self.node("Clip", [x, lo, hi], out, f"{name}/Clip")
        if act == "hswish":
            return self.node("HardSwish", [x], out, f"{name}/HardSwish")
        if act == "hsigmoid":
            return self.node("HardSigmoid", [x], out, f"{name}/HardSigmoid", alpha=1.0 / 6, beta=0.5)
        if act == "sigmoid":
            return self.node("Sigmoid", [x], out, f"{name}/Sigmoid")
        if act == "swish":
            s = self.node("Sigmoid", [x], f"{out}/sig", f"{name}/Sigmoid")
            return self.node("Mul", [x, s], out, f"{name}/Mul")
        raise HwprofError(f"activation '{act}' has no ONNX lowering")

    def layer(self, layer: Layer, ins: list[str], out: str | list[str]) -> None:
        n, kind = layer.name, layer.kind
        if kind == "conv":
            k = layer.kernel
            w = self.init(f"{n}.weight", _weights(n, (layer.c_out, layer.c_in // layer.groups, k, k),
                                                  layer.c_in // layer.groups * k * k))
            conv_in = [ins[0], w]
            if layer.bias:
                conv_in.append(self.init(f"{n}.bias", np.zeros(layer.c_out, np.float32)))
            has_post = layer.bn or layer.act != "none"
            y = self.node("Conv", conv_in, f"{out}/conv" if has_post else out, f"{n}/Conv",
                          kernel_shape=[k, k], strides=[layer.stride] * 2, pads=[k // 2] * 4,
                          group=layer.groups)
            if layer.bn:
                c = layer.c_out
                bn_in = [y, self.init(f"{n}.bn.scale", np.ones(c, np.float32)),
                         self.init(f"{n}.bn.bias", np.zeros(c, np.float32)),
                         self.init(f"{n}.bn.mean", np.zeros(c, np.float32)),
                         self.init(f"{n}.bn.var", np.ones(c, np.float32))]
                y = self.node("BatchNormalization", bn_in, f"{out}/bn" if layer.act != "none" else out,
                              f"{n}/BatchNormalization", epsilon=1e-5)
            if layer.act != "none":
                self.act(layer.act, y, out, n)
        elif kind == "linear":
            flat = self.node("Flatten", [ins[0]], f"{out}/flat", f"{n}/Flatten", axis=1)
            w = self.init(f"{n}.weight", _weights(n, (layer.c_out, layer.c_in), layer.c_in))
            b = self.init(f"{n}.bias", np.zeros(layer.c_out, np.float32))
            self.node("Gemm", [flat, w, b], out, f"{n}/Gemm", transB=1)
        elif kind == "act":
            self.act(layer.act, ins[0], out, n)
        elif kind == "add":
            self.node("Add", ins, out, f"{n}/Add")
        elif kind == "mul":
            self.node("Mul", ins, out, f"{n}/Mul")
        elif kind == "concat":
            self.node("Concat", ins, out, f"{n}/Concat", axis=1)
        elif kind == "split":
            self.nodes.append(helper.make_node("Split", [ins[0], self.const(layer.sizes)], list(out),
                                               name=f"{n}/Split", axis=1))
        elif kind == "shuffle":
            g, c, r = layer.groups, layer.c_in, layer.res_in
            a = self.node("Reshape", [ins[0], self.const((0, g, c // g, r, r))], f"{out}/r1", f"{n}/Reshape")
            t = self.node("Transpose", [a], f"{out}/t", f"{n}/Transpose", perm=[0, 2, 1, 3, 4])
            self.node("Reshape", [t, self.const((0, c, r, r))], out, f"{n}/Reshape_1")
        elif kind == "maxpool":
            k = layer.kernel
            self.node("MaxPool", ins, out, f"{n}/MaxPool", kernel_shape=[k, k],
                      strides=[layer.stride] * 2, pads=[k // 2] * 4)
        elif kind == "avgpool":
            k = layer.kernel
            self.node("AveragePool", ins, out, f"{n}/AveragePool", kernel_shape=[k, k],
                      strides=[layer.stride] * 2, ceil_mode=1, count_include_pad=0)
        elif kind == "gap":
            self.node("GlobalAveragePool", ins, out, f"{n}/GlobalAveragePool")
        else:
            raise HwprofError(f"layer kind '{kind}' has no ONNX lowering")


def build_onnx(target: Arch | Block, dtype: str = "float32") -> onnx.ModelProto:
    """Build a runnable ONNX model for a whole network or a single block.

    Args:
        target: An :class:`Arch`, or a :class:`Block` (built alone at its input shape).
        dtype: ``float32`` (default) or ``float16`` for inputs, weights and outputs.

    Returns:
        A model that passes ``onnx.checker`` with input ``input`` and output ``output``.
    """
    if isinstance(target, Arch):
        layers, last = target.graph
        in_shape, out_shape = list(target.input_shape), list(target.output_shape)
        meta = {"hwprof.arch_hash": target.hash, "hwprof.space": target.space,
                "hwprof.arch_json": target.to_json()}
        graph_name = f"{target.space or 'arch'}_{target.hash}"
    else:
        layers = target.layers()
        last = layers[-1].outputs[0]
        in_shape = [1, target.c_in, target.resolution, target.resolution]
        out_shape = ([1, target.c_out] if target.op == "linear"
                     else [1, target.c_out, target.out_resolution, target.out_resolution])
        meta = {"hwprof.block_key": target.key(), "hwprof.block_op": target.op}
        graph_name = f"block_{target.op}_{target.key()}"
    em = _Emitter(dtype)
    shapes: dict[str, list[int]] = {}
    for layer in layers:
        outs = ["output" if o == last else o for o in layer.outputs]
        first = len(em.nodes)
        em.layer(layer, list(layer.inputs), outs if layer.kind == "split" else outs[0])
        for node in em.nodes[first:]:
            for name in node.output:
                shapes[name] = _value_shape(layer, name, outs)
    # Record every intermediate shape so consumers (simulated devices) skip shape inference.
    model_vi = em.model.graph.value_info
    for name, shape in shapes.items():
        if name != "output":
            model_vi.append(helper.make_tensor_value_info(name, em.onnx_dtype, shape))
    model = em.model
    model.graph.name = graph_name
    model.graph.input.append(helper.make_tensor_value_info("input", em.onnx_dtype, in_shape))
    model.graph.output.append(helper.make_tensor_value_info("output", em.onnx_dtype, out_shape))
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.producer_name, model.producer_version = "hwprof", hwprof.__version__
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta)
    return model


def _value_shape(layer: Layer, name: str, outs: list[str]) -> list[int]:
    """Shape of a value produced while lowering ``layer``."""
    c, r = layer.c_out, layer.res_out
    if layer.kind == "split":
        return [1, layer.sizes[outs.index(name)], r, r]
    if layer.kind == "shuffle" and name.endswith("/r1"):
        return [1, layer.groups, c // layer.groups, r, r]
    if layer.kind == "shuffle" and name.endswith("/t"):
        return [1, c // layer.groups, layer.groups, r, r]
    if layer.kind == "linear":
        return [1, layer.c_in] if name.endswith("/flat") else [1, c]
    return [1, c, r, r]


def save_onnx(model: onnx.ModelProto, path) -> None:
    """Write a model atomically (temp file, then rename)."""
    from hwprof.io import atomic_write_bytes

    atomic_write_bytes(path, model.SerializeToString())
