"""Build ONNX models from the IR directly with ``onnx.helper`` (no torch export).

The graph is batch 1, NCHW (attention layers: (1, tokens, channels)), opset 17, IR version 8 so that older runtimes and
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
        if act == "gelu":  # opset 17 has no Gelu op: the erf form, as torch's exporter writes it
            f = self.np_dtype
            d = self.node("Div", [x, self.const((float(np.sqrt(2.0)),), f)], f"{out}/gelu_div", f"{name}/Gelu/Div")
            e = self.node("Erf", [d], f"{out}/gelu_erf", f"{name}/Gelu/Erf")
            a = self.node("Add", [e, self.const((1.0,), f)], f"{out}/gelu_add", f"{name}/Gelu/Add")
            m = self.node("Mul", [x, a], f"{out}/gelu_mul", f"{name}/Gelu/Mul")
            return self.node("Mul", [m, self.const((0.5,), f)], out, f"{name}/Gelu/Mul_1")
        if act == "gelu_tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            f = self.np_dtype
            sq = self.node("Mul", [x, x], f"{out}/gelu_sq", f"{name}/Gelu/Mul")
            cube = self.node("Mul", [sq, x], f"{out}/gelu_cube", f"{name}/Gelu/Mul_1")
            c = self.node("Mul", [cube, self.const((0.044715,), f)], f"{out}/gelu_c", f"{name}/Gelu/Mul_2")
            inner = self.node("Add", [x, c], f"{out}/gelu_inner", f"{name}/Gelu/Add")
            z = self.node("Mul", [inner, self.const((float(np.sqrt(2.0 / np.pi)),), f)], f"{out}/gelu_z",
                          f"{name}/Gelu/Mul_3")
            t = self.node("Tanh", [z], f"{out}/gelu_tanh", f"{name}/Gelu/Tanh")
            a = self.node("Add", [t, self.const((1.0,), f)], f"{out}/gelu_add", f"{name}/Gelu/Add_1")
            h = self.node("Mul", [x, self.const((0.5,), f)], f"{out}/gelu_half", f"{name}/Gelu/Mul_4")
            return self.node("Mul", [h, a], out, f"{name}/Gelu/Mul_5")
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
                          kernel_shape=[k, k], strides=[layer.stride] * 2,
                          pads=[0 if layer.valid else k // 2] * 4, group=layer.groups)
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
            b = self.init(f"{n}.bias", np.zeros(layer.c_out, np.float32))
            y = f"{out}/fc" if layer.act != "none" else out
            if layer.tokens:  # per token, as torch exports nn.Linear on (1, N, C): MatMul + Add
                w = self.init(f"{n}.weight", _weights(n, (layer.c_out, layer.c_in), layer.c_in).T.copy())
                mm = self.node("MatMul", [ins[0], w], f"{out}/mm", f"{n}/MatMul")
                self.node("Add", [mm, b], y, f"{n}/Add")
            else:
                flat = self.node("Flatten", [ins[0]], f"{out}/flat", f"{n}/Flatten", axis=1)
                w = self.init(f"{n}.weight", _weights(n, (layer.c_out, layer.c_in), layer.c_in))
                self.node("Gemm", [flat, w, b], y, f"{n}/Gemm", transB=1)
            if layer.act != "none":
                self.act(layer.act, y, out, n)
        elif kind == "act":
            self.act(layer.act, ins[0], out, n)
        elif kind == "add":
            self.node("Add", ins, out, f"{n}/Add")
        elif kind == "mul":
            self.node("Mul", ins, out, f"{n}/Mul")
        elif kind == "sub":
            self.node("Sub", ins, out, f"{n}/Sub")
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
                      strides=[layer.stride] * 2, ceil_mode=1, count_include_pad=0,
                      pads=[k // 2 if layer.stride == 1 else 0] * 4)
        elif kind == "gap":
            self.node("GlobalAveragePool", ins, out, f"{n}/GlobalAveragePool")
        else:
            self.attention_layer(layer, ins, out)

    def attention_layer(self, layer: Layer, ins: list[str], out: str) -> None:
        """Token layers: to tokens, position embedding, LayerNorm, attention, mean over tokens."""
        n, kind, c, r = layer.name, layer.kind, layer.c_out, layer.res_in
        if kind == "tokens":  # (1, C, r, r) -> (1, C, r*r) -> (1, r*r, C), as x.flatten(2).transpose(1, 2)
            flat = self.node("Reshape", [ins[0], self.const((0, c, -1))], f"{out}/r", f"{n}/Reshape")
            self.node("Transpose", [flat], out, f"{n}/Transpose", perm=[0, 2, 1])
        elif kind == "posembed":
            pos = self.init(f"{n}.weight", _weights(n, (1, r * r, c), c) * np.float32(0.02))
            self.node("Add", [ins[0], pos], out, f"{n}/Add")
        elif kind == "layernorm":
            scale = self.init(f"{n}.weight", np.ones(c, np.float32))
            bias = self.init(f"{n}.bias", np.zeros(c, np.float32))
            self.node("LayerNormalization", [ins[0], scale, bias], out, f"{n}/LayerNormalization", axis=-1,
                      epsilon=1e-5)
        elif kind == "attention":
            h, tokens = layer.groups, r * r
            dh = c // h
            x = self.node("Reshape", [ins[0], self.const((0, tokens, 3, h, dh))], f"{out}/r", f"{n}/Reshape")
            x = self.node("Transpose", [x], f"{out}/t", f"{n}/Transpose", perm=[2, 0, 3, 1, 4])
            parts = [f"{out}/qkv:{i}" for i in range(3)]
            self.nodes.append(helper.make_node("Split", [x, self.const((1, 1, 1))], parts, name=f"{n}/Split",
                                               axis=0))
            q, k, v = (self.node("Squeeze", [p, self.const((0,))], f"{out}/{t}", f"{n}/Squeeze_{t}")
                       for p, t in zip(parts, "qkv"))
            kt = self.node("Transpose", [k], f"{out}/kt", f"{n}/Transpose_1", perm=[0, 1, 3, 2])
            scores = self.node("MatMul", [q, kt], f"{out}/scores", f"{n}/MatMul")
            scaled = self.node("Mul", [scores, self.const((float(dh) ** -0.5,), self.np_dtype)], f"{out}/scaled",
                               f"{n}/Mul")
            probs = self.node("Softmax", [scaled], f"{out}/probs", f"{n}/Softmax", axis=-1)
            ctx = self.node("MatMul", [probs, v], f"{out}/ctx", f"{n}/MatMul_1")
            ctx = self.node("Transpose", [ctx], f"{out}/ctx_t", f"{n}/Transpose_2", perm=[0, 2, 1, 3])
            self.node("Reshape", [ctx, self.const((0, tokens, c))], out, f"{n}/Reshape_1")
        elif kind == "tokenmean":
            self.node("ReduceMean", ins, out, f"{n}/ReduceMean", axes=[1], keepdims=0)
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
        in_shape, out_shape = list(target.input_shape), list(target.output_shape)
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


def _attention_shape(layer: Layer, name: str) -> list[int] | None:
    """Shape of an intermediate value of an attention layer, or None for its output."""
    tokens, c, h = layer.res_in**2, layer.c_out, layer.groups
    dh = c // h
    tail = name.rsplit("/", 1)[-1]
    shapes = {"r": [1, tokens, 3, h, dh], "t": [3, 1, h, tokens, dh], "kt": [1, h, dh, tokens],
              "scores": [1, h, tokens, tokens], "scaled": [1, h, tokens, tokens], "probs": [1, h, tokens, tokens],
              "ctx": [1, h, tokens, dh], "ctx_t": [1, tokens, h, dh], "q": [1, h, tokens, dh],
              "k": [1, h, tokens, dh], "v": [1, h, tokens, dh]}
    if tail.startswith("qkv:"):
        return [1, 1, h, tokens, dh]
    return shapes.get(tail) if "/" in name else None


def _value_shape(layer: Layer, name: str, outs: list[str]) -> list[int]:
    """Shape of a value produced while lowering ``layer``."""
    c, r = layer.c_out, layer.res_out
    if layer.kind == "attention":
        return _attention_shape(layer, name) or [1, r * r, c]
    if layer.kind == "tokens":
        return [1, c, r * r] if name.endswith("/r") else [1, r * r, c]
    if layer.kind == "tokenmean":
        return [1, c]
    if layer.tokens:
        return [1, r * r, c]
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
