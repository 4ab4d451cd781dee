"""Lower ONNX models to LiteRT (TFLite) flatbuffers, in float32 or full-integer int8.

hwprof's networks (and ONNX models users bring) become ``.tflite`` files with
the schema bindings that ``ai-edge-litert`` ships: no converter, no download,
no TensorFlow. The lowering follows what LiteRT's own converter produces for
a convolutional network, so that timing it is timing what a phone runs:

- activations are NHWC; convolution filters are OHWI, depthwise filters
  1HWO; the model input is NHWC (``[1, 224, 224, 3]``);
- BatchNormalization after a convolution is folded into it, and a ReLU or
  ReLU6 right after a convolution, an Add or a FullyConnected becomes the op's
  fused activation (the converter always does both);
- everything else is translated op for op: an h-swish written out as
  Add -> Clip -> Mul -> Div stays four ops, as it would in a model converted
  from such a graph. ``Div`` by a constant becomes ``Mul`` by its reciprocal
  (LiteRT has no int8 Div);
- padding is ``SAME`` where that gives ONNX's output shape, else an explicit
  ``PAD`` and ``VALID``.

Layouts are tracked per tensor (``perm``: which ONNX axis each LiteRT axis
holds), so reshapes and transposes such as a channel shuffle stay single ops
where the layout allows and go through an NCHW ``TRANSPOSE`` where it does not.

``dtype="int8"`` writes a full-integer model (int8 inputs and outputs): int8
weights, symmetric per output channel for convolutions and per tensor for
fully-connected layers; int8 activations, asymmetric per tensor, from min/max
ranges over seeded calibration inputs; int32 biases. Ops that LiteRT requires
to keep their input's quantization (reshape, transpose, pooling, concatenation,
split) share one range; ``LOGISTIC`` outputs use the fixed 1/256 scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from hwprof.errors import HwprofError
from hwprof.quantization import CALIBRATION, calibration_inputs

NHWC = (0, 2, 3, 1)  # LiteRT axis i holds ONNX (NCHW) axis NHWC[i]
INT8_SCHEME = ("full integer: int8 weights (per output channel for convolutions, per tensor for fully-connected), "
               "int8 activations (asymmetric, per tensor), int32 biases, int8 input and output")
_TIED = ("RESHAPE", "TRANSPOSE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION", "SPLIT_V", "PAD")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise HwprofError("LiteRT is not installed",
                          "pip install 'hwprof[litert]' (from a checkout: pip install -e '.[litert]')") from None
    return schema


@dataclass
class TfliteModel:
    """A LiteRT flatbuffer (built by hwprof or brought by the user).

    Attributes:
        content: The ``.tflite`` bytes.
        name: Where it came from (a file, or the ONNX graph's name).
        dtype: ``float32`` or ``int8`` (the input tensor's type).
        meta: Facts recorded with measurements (quantization scheme, calibration).
    """

    content: bytes
    name: str = ""
    dtype: str = "float32"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, Any]:
        """MACs, parameters and input shape (see :func:`tflite_stats`)."""
        return tflite_stats(self.content)

    def SerializeToString(self) -> bytes:  # noqa: N802 - the name onnx.ModelProto uses, so hashing code is shared
        """The flatbuffer bytes (what a file holds)."""
        return self.content

    @classmethod
    def from_file(cls, path) -> "TfliteModel":
        """Read a ``.tflite`` file (raises HwprofError if it is not one)."""
        from pathlib import Path

        data = Path(path).read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise HwprofError(f"{path} is not a LiteRT/TFLite flatbuffer (no TFL3 identifier)",
                              "give a .tflite file written by a LiteRT converter")
        model = cls(data, name=str(path))
        model.dtype = tflite_input_dtype(data)
        return model


def tflite_input_dtype(content: bytes) -> str:
    """``float32``, ``int8``, ... of a flatbuffer's first input tensor."""
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    tensor = graph.Tensors(graph.Inputs(0))
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names.get(tensor.Type(), "unknown")


@dataclass
class _Tensor:
    index: int
    shape: tuple[int, ...]  # LiteRT shape
    perm: tuple[int, ...]  # LiteRT axis i holds ONNX axis perm[i]


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def _activation_range(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of an asymmetric int8 range that contains 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0 / 255.0
    zero = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero


class _Lowering:
    """One pass over an ONNX graph emitting LiteRT tensors and operators."""

    def __init__(self, model: onnx.ModelProto, ranges: dict[str, tuple[float, float]] | None,
                 same_padding: bool = True) -> None:
        self.schema = _schema()
        self.same_padding = same_padding
        self.ranges = ranges  # None: float32; else int8 with these activation ranges
        self.int8 = ranges is not None
        self.model = model
        self.graph = model.graph
        from hwprof.onnx_inputs import model_inputs

        if len(model_inputs(model)) != 1:  # static shapes, else a clear error
            raise HwprofError(f"the LiteRT lowering takes single-input models; this one has "
                              f"{len(model_inputs(model))} inputs", "measure it on cpu or openvino-cpu")
        self.shapes = _onnx_shapes(model)
        self.consts = _constants(model)
        self.tensors: list = []
        self.buffers: list = [self.schema.BufferT()]  # buffer 0 is the empty sentinel
        self.operators: list = []
        self.opcodes: dict[int, int] = {}
        self.opcode_list: list = []
        self.values: dict[str, _Tensor] = {}
        self.ties: list[list[str]] = []  # activation names that must share one quantization
        self.fixed: dict[str, tuple[float, int]] = {}  # name -> (scale, zero point) set by the op
        self.tensor_names: dict[int, str] = {}
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        self.consumers = consumers
        self.outputs = {o.name for o in self.graph.output}
        self.skip: set[int] = set()  # ids of nodes folded into their producer
        self.alias: dict[str, str] = {}

    # ---- tensors -----------------------------------------------------------------------------
    def _quant(self, name: str):
        q = self.schema.QuantizationParametersT()
        if name in self.fixed:
            scale, zero = self.fixed[name]
        else:
            lo, hi = self.ranges.get(name, (-1.0, 1.0))
            scale, zero = _activation_range(lo, hi)
        q.scale, q.zeroPoint = [float(scale)], [int(zero)]
        return q

    def quant_of(self, name: str) -> tuple[float, int]:
        q = self._quant(name)
        return q.scale[0], q.zeroPoint[0]

    def _add_tensor(self, name: str, shape, ttype: int, data: np.ndarray | None = None, quant=None) -> int:
        t = self.schema.TensorT()
        t.name, t.shape, t.type = name, [int(s) for s in shape], ttype
        if data is not None:
            b = _AlignedBuffer()
            b.data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            t.quantization = quant
        self.tensors.append(t)
        self.tensor_names[len(self.tensors) - 1] = name
        return len(self.tensors) - 1

    def activation(self, name: str, onnx_shape, perm: tuple[int, ...]) -> _Tensor:
        """A new activation tensor holding ONNX value ``name`` in layout ``perm``."""
        shape = tuple(int(onnx_shape[p]) for p in perm)
        T = self.schema.TensorType
        index = self._add_tensor(name, shape, T.INT8 if self.int8 else T.FLOAT32,
                                 quant=self._quant(name) if self.int8 else None)
        tensor = _Tensor(index, shape, perm)
        self.values[name] = tensor
        return tensor

    def const_float(self, name: str, array: np.ndarray) -> int:
        """A constant operand of an elementwise op (int8 per tensor in int8 models)."""
        array = np.asarray(array, np.float32)
        T = self.schema.TensorType
        if not self.int8:
            return self._add_tensor(name, array.shape, T.FLOAT32, array)
        scale, zero = _activation_range(float(array.min(initial=0.0)), float(array.max(initial=0.0)))
        q = self.schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zero]
        data = np.clip(np.round(array / scale) + zero, -128, 127).astype(np.int8)
        return self._add_tensor(name, array.shape, T.INT8, data, q)

    def const_int32(self, name: str, values) -> int:
        array = np.asarray(values, np.int32)
        return self._add_tensor(name, array.shape, self.schema.TensorType.INT32, array)

    def weights(self, name: str, w: np.ndarray, axis: int | None) -> int:
        """Filter or FC weights: float32, or int8 symmetric per ``axis`` (None: per tensor)."""
        T = self.schema.TensorType
        w = np.asarray(w, np.float32)
        if not self.int8:
            return self._add_tensor(name, w.shape, T.FLOAT32, w)
        if axis is None:
            scale = np.array([max(float(np.abs(w).max()), 1e-8) / 127.0])
            data = np.round(w / scale[0])
        else:
            reduce = tuple(i for i in range(w.ndim) if i != axis)
            scale = np.maximum(np.abs(w).max(axis=reduce), 1e-8) / 127.0
            shape = [1] * w.ndim
            shape[axis] = -1
            data = np.round(w / scale.reshape(shape))
        q = self.schema.QuantizationParametersT()
        q.scale, q.zeroPoint = _per_channel(scale)
        q.quantizedDimension = axis or 0
        self._weight_scales = scale
        return self._add_tensor(name, w.shape, T.INT8, np.clip(data, -127, 127).astype(np.int8), q)

    def bias(self, name: str, b: np.ndarray, input_name: str) -> int:
        T = self.schema.TensorType
        b = np.asarray(b, np.float32)
        if not self.int8:
            return self._add_tensor(name, b.shape, T.FLOAT32, b)
        scale = self.quant_of(input_name)[0] * np.broadcast_to(self._weight_scales, b.shape)
        q = self.schema.QuantizationParametersT()
        q.scale, q.zeroPoint = _per_channel(scale)
        return self._add_tensor(name, b.shape, T.INT32, np.round(b / scale).astype(np.int32), q)

    def value(self, name: str, perm: tuple[int, ...] | None = None) -> _Tensor:
        """The tensor of ONNX value ``name`` in layout ``perm`` (a TRANSPOSE is added if needed)."""
        name = self.alias.get(name, name)
        if name not in self.values:
            if name in self.consts:
                array = self.consts[name]
                p = perm or tuple(range(array.ndim))
                index = self.const_float(name, np.transpose(array, p))
                return _Tensor(index, tuple(array.shape[i] for i in p), p)
            raise HwprofError(f"value '{name}' is used before it is computed", "check the model with onnx.checker")
        have = self.values[name]
        if perm is None or have.perm == perm:
            return have
        key = f"{name}@{''.join(map(str, perm))}"
        if key in self.values:
            return self.values[key]
        q = tuple(have.perm.index(p) for p in perm)
        self.tie(name, key)
        out = self.activation(key, self.shapes[name], perm)
        self.op("TRANSPOSE", [have.index, self.const_int32(f"{key}/perm", q)], [out.index])
        self.values[key] = out
        return out

    def tie(self, *names: str) -> None:
        self.ties.append(list(names))

    # ---- operators ---------------------------------------------------------------------------
    def op(self, kind: str, inputs: list[int], outputs: list[int], options_type: int = 0, options=None) -> None:
        code = getattr(self.schema.BuiltinOperator, kind)
        if code not in self.opcodes:
            oc = self.schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            self.opcodes[code] = len(self.opcode_list)
            self.opcode_list.append(oc)
        o = self.schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.opcodes[code], inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def _single_user(self, name: str, op_type: str) -> onnx.NodeProto | None:
        """The one node reading ``name`` if it is an ``op_type`` (and ``name`` is not a graph output)."""
        users = self.consumers.get(name, [])
        if name in self.outputs or len(users) != 1 or users[0].op_type != op_type:
            return None
        return users[0]

    def fused_activation(self, node: onnx.NodeProto) -> tuple[int, str]:
        """A Relu/Relu6 that is the only consumer of ``node``'s output: fused (code, output name)."""
        out = node.output[0]
        users = self.consumers.get(out, [])
        if out in self.outputs or len(users) != 1:
            return 0, out
        user = users[0]
        A = self.schema.ActivationFunctionType
        if user.op_type == "Relu":
            self.skip.add(id(user))
            return A.RELU, user.output[0]
        if user.op_type == "Clip" and _clip_bounds(self, user) == (0.0, 6.0):
            self.skip.add(id(user))
            return A.RELU6, user.output[0]
        return 0, out

    def padding(self, x: _Tensor, out_name: str, node: onnx.NodeProto, kernel: tuple[int, int],
                stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[_Tensor, int]:
        """SAME where it reproduces ONNX's output shape, else an explicit PAD and VALID."""
        P = self.schema.Padding
        attrs = _attrs(node)
        h, w = x.shape[1], x.shape[2]
        oh, ow = self.shapes[out_name][2], self.shapes[out_name][3]
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            return x, P.SAME
        ek = [(kernel[i] - 1) * dilation[i] + 1 for i in range(2)]
        out = (oh, ow)
        if not any(pads) and all(out[i] == ((h, w)[i] - ek[i]) // stride[i] + 1 for i in range(2)):
            return x, P.VALID
        # the padding ONNX applies in effect, the ceil_mode extra included (top/left, bottom/right)
        needed = [max((out[i] - 1) * stride[i] + ek[i] - (h, w)[i], 0) for i in range(2)]
        onnx_pads = [(pads[i], needed[i] - pads[i]) for i in range(2)]
        same_pads = [(needed[i] // 2, needed[i] - needed[i] // 2) for i in range(2)]
        if all(out[i] == -(-(h, w)[i] // stride[i]) for i in range(2)) and (self.same_padding or onnx_pads == same_pads):
            return x, P.SAME  # SAME puts an odd extra row at the bottom; ONNX may split it: same shape, same cost
        pads = [onnx_pads[0][0], onnx_pads[1][0], max(onnx_pads[0][1], 0), max(onnx_pads[1][1], 0)]
        name = f"{out_name}/pad"
        self.tie(self._name_of(x), name)
        padded = self.activation(name, [1, x.shape[3], h + pads[0] + pads[2], w + pads[1] + pads[3]], NHWC)
        spec = self.const_int32(f"{name}/spec", [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]])
        self.op("PAD", [x.index, spec], [padded.index])
        return padded, P.VALID

    def _name_of(self, t: _Tensor) -> str:
        return self.tensor_names[t.index]

    # ---- lowering ----------------------------------------------------------------------------
    def run(self) -> bytes:
        from hwprof.onnx_inputs import model_input

        name = model_input(self.model)[0]
        rank = len(self.shapes[name])
        graph_in = self.activation(name, self.shapes[name], NHWC if rank == 4 else tuple(range(rank)))
        for node in self.graph.node:
            if id(node) in self.skip:
                continue
            handler = getattr(self, f"_{node.op_type}", None)
            if handler is None:
                raise HwprofError(f"the LiteRT lowering has no rule for ONNX op '{node.op_type}' "
                                  f"(node '{node.name}')", "bring the model as .tflite, or use --device cpu")
            handler(node)
        outs = []
        for o in self.graph.output:
            rank = len(self.shapes[o.name])
            outs.append(self.value(o.name, NHWC if rank == 4 else tuple(range(rank))).index)
        sub = self.schema.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs, sub.operators = self.tensors, [graph_in.index], outs, self.operators
        sub.name = self.graph.name or "main"
        m = self.schema.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, self.opcode_list, [sub], self.buffers
        m.description = "hwprof"
        import flatbuffers

        size = sum(len(b.data) + 16 for b in self.buffers[1:] if b.data is not None)
        builder = flatbuffers.Builder(size + (1 << 20))  # no regrowing (copies) while packing
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def _unary(self, kind: str, node: onnx.NodeProto, options_type: int = 0, options=None) -> None:
        x = self.value(node.input[0])
        out = self.activation(node.output[0], self.shapes[node.output[0]], x.perm)
        self.op(kind, [x.index], [out.index], options_type, options)

    def _Conv(self, node: onnx.NodeProto) -> None:
        O = self.schema.BuiltinOptions
        attrs = _attrs(node)
        x = self.value(node.input[0], NHWC)
        w = self.consts.get(node.input[1])
        if w is None or w.ndim != 4:
            raise HwprofError(f"Conv '{node.name}' has non-constant or non-2D weights", "the LiteRT lowering needs both")
        c_out, c_in_g, kh, kw = w.shape
        group = int(attrs.get("group", 1))
        stride = tuple(attrs.get("strides", [1, 1]))
        dilation = tuple(attrs.get("dilations", [1, 1]))
        b = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(c_out, np.float32)
        last = node
        bn = self._single_user(node.output[0], "BatchNormalization")
        if bn is not None and all(n in self.consts for n in bn.input[1:5]):  # fold it, as the converter does
            scale, shift, mean, var = (self.consts[n].astype(np.float32) for n in bn.input[1:5])
            mul = scale / np.sqrt(var + float(_attrs(bn).get("epsilon", 1e-5)))
            w, b = w * mul.reshape(-1, 1, 1, 1), (b - mean) * mul + shift
            self.skip.add(id(bn))
            last = bn
        act, out_name = self.fused_activation(last)
        x, padding = self.padding(x, node.output[0], node, (kh, kw), stride, dilation)
        in_name = self._name_of(x)
        c_in = x.shape[3]
        if group == c_in and c_in_g == 1:
            filt = self.weights(f"{node.name}/filter", np.transpose(w, (1, 2, 3, 0)), axis=3)
            kind, opts = "DEPTHWISE_CONV_2D", self.schema.DepthwiseConv2DOptionsT()
            opts.depthMultiplier, otype = c_out // c_in, O.DepthwiseConv2DOptions
        else:
            filt = self.weights(f"{node.name}/filter", np.transpose(w, (0, 2, 3, 1)), axis=0)
            kind, opts, otype = "CONV_2D", self.schema.Conv2DOptionsT(), O.Conv2DOptions
        bias = self.bias(f"{node.name}/bias", b, in_name)
        opts.padding, (opts.strideH, opts.strideW) = padding, stride
        opts.dilationHFactor, opts.dilationWFactor = dilation
        opts.fusedActivationFunction = act
        out = self.activation(out_name, self.shapes[last.output[0]], NHWC)
        self.op(kind, [x.index, filt, bias], [out.index], otype, opts)

    def _BatchNormalization(self, node: onnx.NodeProto) -> None:
        scale, bias, mean, var = (self.consts[n] for n in node.input[1:5])
        eps = float(_attrs(node).get("epsilon", 1e-5))
        mul = scale / np.sqrt(var + eps)
        shape = [1, -1] + [1] * (len(self.shapes[node.input[0]]) - 2)
        self.consts[f"{node.name}/mul"] = mul.reshape(shape).astype(np.float32)
        self.consts[f"{node.name}/add"] = (bias - mean * mul).reshape(shape).astype(np.float32)
        mid = f"{node.output[0]}/scaled"
        self.shapes[mid] = self.shapes[node.output[0]]
        self._binary("MUL", [node.input[0], f"{node.name}/mul"], mid)
        self._binary("ADD", [mid, f"{node.name}/add"], node.output[0])

    def _binary(self, kind: str, names: list[str], out_name: str, act: int = 0) -> None:
        O = self.schema.BuiltinOptions
        a_name, b_name = names
        ref = next((n for n in names if self.alias.get(n, n) in self.values), None)
        if ref is None:
            raise HwprofError(f"{kind} of two constants is not lowered", "fold constants before exporting")
        perm = self.values[self.alias.get(ref, ref)].perm
        rank = len(perm)
        ins = []
        for n in names:
            if self.alias.get(n, n) in self.values:
                ins.append(self.value(n, perm).index)
            else:
                c = self.consts[n]
                c = c.reshape((1,) * (rank - c.ndim) + c.shape) if 0 < c.ndim < rank else c
                if kind == "DIV":
                    c = 1.0 / c
                ins.append(self.const_float(f"{out_name}/{len(ins)}", np.transpose(c, perm) if c.ndim else c))
        if kind == "DIV" and b_name in self.consts:
            kind = "MUL"
        options = {"ADD": (O.AddOptions, self.schema.AddOptionsT), "MUL": (O.MulOptions, self.schema.MulOptionsT),
                   "SUB": (O.SubOptions, self.schema.SubOptionsT), "DIV": (O.DivOptions, self.schema.DivOptionsT)}
        otype, cls = options[kind]
        opts = cls()
        opts.fusedActivationFunction = act
        out = self.activation(out_name, self.shapes[out_name], perm)
        self.op(kind, ins, [out.index], otype, opts)

    def _elementwise(self, kind: str, node: onnx.NodeProto) -> None:
        act, out_name = self.fused_activation(node) if kind == "ADD" else (0, node.output[0])
        if out_name != node.output[0]:
            self.shapes[out_name] = self.shapes[node.output[0]]
        self._binary(kind, list(node.input[:2]), out_name, act)

    def _Add(self, node):
        self._elementwise("ADD", node)

    def _Mul(self, node):
        self._elementwise("MUL", node)

    def _Sub(self, node):
        self._elementwise("SUB", node)

    def _Div(self, node):
        self._elementwise("DIV", node)

    def _Relu(self, node):
        self._unary("RELU", node)

    def _Sigmoid(self, node):
        self.fixed[node.output[0]] = (1.0 / 256.0, -128)
        self._unary("LOGISTIC", node)

    def _Tanh(self, node):
        self.fixed[node.output[0]] = (1.0 / 128.0, 0)
        self._unary("TANH", node)

    def _HardSwish(self, node):
        self._unary("HARD_SWISH", node)

    def _LeakyRelu(self, node):
        opts = self.schema.LeakyReluOptionsT()
        opts.alpha = float(_attrs(node).get("alpha", 0.01))
        self._unary("LEAKY_RELU", node, self.schema.BuiltinOptions.LeakyReluOptions, opts)

    def _Clip(self, node):
        lo, hi = _clip_bounds(self, node)
        if (lo, hi) == (0.0, 6.0):
            return self._unary("RELU6", node)
        if (lo, hi) == (0.0, None):
            return self._unary("RELU", node)
        if (lo, hi) == (-1.0, 1.0):
            return self._unary("RELU_N1_TO_1", node)
        if (lo, hi) == (0.0, 1.0):
            return self._unary("RELU_0_TO_1", node)
        out = node.output[0]
        steps = [(kind, bound, tag) for kind, bound, tag in (("MAXIMUM", lo, "lo"), ("MINIMUM", hi, "hi"))
                 if bound is not None]
        current = node.input[0]
        for i, (kind, bound, tag) in enumerate(steps):
            name = out if i == len(steps) - 1 else f"{out}/{tag}"
            self.shapes[name] = self.shapes[out]
            self.consts[f"{out}/{tag}/bound"] = np.array(bound, np.float32)
            x = self.value(current)
            res = self.activation(name, self.shapes[name], x.perm)
            self.op(kind, [x.index, self.value(f"{out}/{tag}/bound").index], [res.index])
            current = name

    def _HardSigmoid(self, node):
        attrs = _attrs(node)
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        out = node.output[0]
        self.consts[f"{out}/alpha"] = np.array(alpha, np.float32)
        self.consts[f"{out}/beta"] = np.array(beta, np.float32)
        for suffix in ("/scaled", "/shifted"):
            self.shapes[out + suffix] = self.shapes[out]
        self._binary("MUL", [node.input[0], f"{out}/alpha"], out + "/scaled")
        self._binary("ADD", [out + "/scaled", f"{out}/beta"], out + "/shifted")
        x = self.value(out + "/shifted")
        res = self.activation(out, self.shapes[out], x.perm)
        self.op("RELU_0_TO_1", [x.index], [res.index])

    def _mean(self, node: onnx.NodeProto, axes: list[int], keep: bool) -> None:
        x = self.value(node.input[0], NHWC if len(self.shapes[node.input[0]]) == 4 else None)
        rank = len(x.perm)
        onnx_axes = {a % rank for a in axes}
        axes = sorted(x.perm.index(a) for a in onnx_axes)
        if keep:
            perm = x.perm
        else:  # the kept ONNX axes, renumbered, in the order LiteRT holds them
            kept = [p for p in x.perm if p not in onnx_axes]
            perm = tuple(sorted(kept).index(p) for p in kept)
        opts = self.schema.ReducerOptionsT()
        opts.keepDims = keep
        out = self.activation(node.output[0], self.shapes[node.output[0]], perm)
        self.op("MEAN", [x.index, self.const_int32(f"{node.output[0]}/axes", axes)], [out.index],
                self.schema.BuiltinOptions.ReducerOptions, opts)

    def _GlobalAveragePool(self, node):
        self._mean(node, [2, 3], True)

    def _ReduceMean(self, node):
        attrs = _attrs(node)
        axes = list(attrs.get("axes", []))
        if len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in self.consts[node.input[1]].reshape(-1)]
        rank = len(self.shapes[node.input[0]])
        self._mean(node, axes or list(range(rank)), bool(attrs.get("keepdims", 1)))

    def _pool(self, kind: str, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        kernel = tuple(attrs["kernel_shape"])
        stride = tuple(attrs.get("strides", [1, 1]))
        x = self.value(node.input[0], NHWC)
        x, padding = self.padding(x, node.output[0], node, kernel, stride, (1, 1))
        opts = self.schema.Pool2DOptionsT()
        opts.padding, (opts.strideH, opts.strideW) = padding, stride
        opts.filterHeight, opts.filterWidth = kernel
        self.tie(self._name_of(x), node.output[0])
        out = self.activation(node.output[0], self.shapes[node.output[0]], NHWC)
        self.op(kind, [x.index], [out.index], self.schema.BuiltinOptions.Pool2DOptions, opts)

    def _MaxPool(self, node):
        self._pool("MAX_POOL_2D", node)

    def _AveragePool(self, node):
        self._pool("AVERAGE_POOL_2D", node)

    def _reshape_to(self, node: onnx.NodeProto, in_name: str, out_name: str) -> None:
        """RESHAPE that keeps a channel-last layout where possible, else goes through ONNX order."""
        in_shape, out_shape = self.shapes[in_name], self.shapes[out_name]
        have = self.values.get(self.alias.get(in_name, in_name))
        perm_out = tuple(range(len(out_shape)))
        x = None
        if have is not None and have.perm == NHWC and len(out_shape) == 5 and out_shape[3:] == in_shape[2:] \
                and out_shape[1] * out_shape[2] == in_shape[1]:
            x, perm_out = have, (0, 3, 4, 1, 2)  # channels split in two: [N,H,W,g,c/g]
        elif have is not None and have.perm == (0, 3, 4, 1, 2) and len(out_shape) == 4 \
                and out_shape[2:] == in_shape[3:]:
            x, perm_out = have, NHWC  # two channel axes merged back
        elif have is not None and len(out_shape) == 2 and len(in_shape) == 4 and in_shape[2] * in_shape[3] == 1:
            x = have  # [N,C,1,1] -> [N,C]: the same bytes in any layout
        if x is None:
            x = self.value(in_name, tuple(range(len(in_shape))))
        self.tie(self._name_of(x), out_name)
        out = self.activation(out_name, out_shape, perm_out)
        opts = self.schema.ReshapeOptionsT()
        opts.newShape = list(out.shape)
        self.op("RESHAPE", [x.index, self.const_int32(f"{out_name}/shape", out.shape)], [out.index],
                self.schema.BuiltinOptions.ReshapeOptions, opts)

    def _Reshape(self, node):
        self._reshape_to(node, node.input[0], node.output[0])

    def _Flatten(self, node):
        self._reshape_to(node, node.input[0], node.output[0])

    def _Squeeze(self, node):
        self._reshape_to(node, node.input[0], node.output[0])

    def _Unsqueeze(self, node):
        self._reshape_to(node, node.input[0], node.output[0])

    def _Transpose(self, node):
        p = tuple(_attrs(node)["perm"])
        x = self.values[self.alias.get(node.input[0], node.input[0])]
        # Keep a channel-last layout for the output when the input has one (a channel shuffle).
        perm_out = x.perm if len(p) == len(x.perm) and x.perm in ((0, 3, 4, 1, 2), NHWC) else tuple(range(len(p)))
        inv_in = _inverse(x.perm)
        q = tuple(inv_in[p[perm_out[i]]] for i in range(len(p)))
        self.tie(self._name_of(x), node.output[0])
        out = self.activation(node.output[0], self.shapes[node.output[0]], perm_out)
        self.op("TRANSPOSE", [x.index, self.const_int32(f"{node.output[0]}/perm", q)], [out.index])

    def _Concat(self, node):
        axis = int(_attrs(node).get("axis", 1))
        first = self.values[self.alias.get(node.input[0], node.input[0])]
        perm = first.perm
        ins = [self.value(n, perm) for n in node.input]
        self.tie(*[self._name_of(t) for t in ins], node.output[0])
        out = self.activation(node.output[0], self.shapes[node.output[0]], perm)
        opts = self.schema.ConcatenationOptionsT()
        opts.axis = perm.index(axis % len(perm))
        self.op("CONCATENATION", [t.index for t in ins], [out.index],
                self.schema.BuiltinOptions.ConcatenationOptions, opts)

    def _Split(self, node):
        attrs = _attrs(node)
        axis = int(attrs.get("axis", 0))
        x = self.values[self.alias.get(node.input[0], node.input[0])]
        rank = len(x.perm)
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(s) for s in self.consts[node.input[1]]]
        elif "split" in attrs:
            sizes = list(attrs["split"])
        else:
            total = self.shapes[node.input[0]][axis % rank]
            sizes = [total // len(node.output)] * len(node.output)
        outs = [self.activation(o, self.shapes[o], x.perm) for o in node.output]
        self.tie(self._name_of(x), *node.output)
        opts = self.schema.SplitVOptionsT()
        opts.numSplits = len(outs)
        self.op("SPLIT_V", [x.index, self.const_int32(f"{node.output[0]}/sizes", sizes),
                            self.const_int32(f"{node.output[0]}/axis", [x.perm.index(axis % rank)])],
                [o.index for o in outs], self.schema.BuiltinOptions.SplitVOptions, opts)

    def _fully_connected(self, node: onnx.NodeProto, w: np.ndarray, b: np.ndarray | None) -> None:
        """``w`` is [out, in]."""
        in_name = node.input[0]
        x = self.value(in_name, tuple(range(len(self.shapes[in_name]))))
        act, out_name = self.fused_activation(node)
        wt = self.weights(f"{node.name}/weights", w, axis=None)
        bias = self.bias(f"{node.name}/bias", b if b is not None else np.zeros(w.shape[0], np.float32),
                         self._name_of(x))
        opts = self.schema.FullyConnectedOptionsT()
        opts.fusedActivationFunction = act
        out = self.activation(out_name, self.shapes[node.output[0]], tuple(range(len(self.shapes[node.output[0]]))))
        self.op("FULLY_CONNECTED", [x.index, wt, bias], [out.index],
                self.schema.BuiltinOptions.FullyConnectedOptions, opts)

    def _Gemm(self, node):
        attrs = _attrs(node)
        w = self.consts.get(node.input[1])
        if w is None or attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0:
            raise HwprofError(f"Gemm '{node.name}' is not a plain fully-connected layer",
                              "the LiteRT lowering takes Gemm with constant weights, transA=0, alpha=1")
        w = w if attrs.get("transB", 0) else w.T
        b = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if b is not None:
            b = (b * float(attrs.get("beta", 1.0))).reshape(-1)
        self._fully_connected(node, w, b)

    def _MatMul(self, node):
        w = self.consts.get(node.input[1])
        if w is None or w.ndim != 2:
            raise HwprofError(f"MatMul '{node.name}' has no constant 2-D weights",
                              "the LiteRT lowering takes MatMul as a fully-connected layer")
        self._fully_connected(node, w.T, None)

    def _Identity(self, node):
        if node.input[0] in self.consts:
            return
        self.alias[node.output[0]] = self.alias.get(node.input[0], node.input[0])

    _Dropout = _Identity

    def _Constant(self, node):
        pass  # read by _constants


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _clip_bounds(lowering: _Lowering, node: onnx.NodeProto) -> tuple[float | None, float | None]:
    attrs = _attrs(node)
    lo, hi = attrs.get("min"), attrs.get("max")
    for i, name in ((1, "lo"), (2, "hi")):
        if len(node.input) > i and node.input[i]:
            value = float(lowering.consts[node.input[i]].reshape(-1)[0])
            lo, hi = (value, hi) if name == "lo" else (lo, value)
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    consts = {i.name: numpy_helper.to_array(i).astype(np.float32) if numpy_helper.to_array(i).dtype.kind == "f"
              else numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_float", "value_int"):
                    consts[node.output[0]] = np.array(onnx.helper.get_attribute_value(a))
                elif a.name in ("value_floats", "value_ints"):
                    consts[node.output[0]] = np.array(onnx.helper.get_attribute_value(a))
        elif node.op_type == "Identity" and node.input[0] in consts:  # exporters alias shared weights
            consts[node.output[0]] = consts[node.input[0]]
    return consts


def _onnx_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Static shape of every value (from value_info, else onnx shape inference).

    Raises:
        HwprofError: if a computed value has no static shape.
    """
    from hwprof.onnx_shapes import tensor_shapes

    known = tensor_shapes(model, static_only=True)
    produced = {o for n in model.graph.node for o in n.output if n.op_type != "Constant"}
    missing = sorted(produced - set(known))
    if missing:
        raise HwprofError(f"the shape of '{missing[0]}' is not static",
                          "export the model with static input shapes (--input-shape)")
    return known


def _per_channel(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scales and zero points (0) of a symmetric per-channel tensor, as arrays: flatbuffers writes
    numpy vectors in one copy, where a list is written element by element (half an int8 build)."""
    scale = np.asarray(scale, np.float32).reshape(-1)
    return scale, np.zeros(len(scale), np.int64)


class _AlignedBuffer:
    """A BufferT whose bytes start on a 16-byte boundary (as LiteRT's converter writes them)."""

    data: np.ndarray | None = None

    def Pack(self, builder):  # noqa: N802 - flatbuffers' object API name
        schema = _schema()
        if self.data is None or not len(self.data):
            schema.BufferStart(builder)
            return schema.BufferEnd(builder)
        payload = self.data.tobytes()
        builder.StartVector(1, len(payload), 16)
        builder.head = builder.head - len(payload)
        builder.Bytes[builder.head:builder.head + len(payload)] = payload
        builder.vectorNumElems = len(payload)
        data = builder.EndVector()
        schema.BufferStart(builder)
        schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def _calibrate(model: onnx.ModelProto, float_content: bytes, lowering: _Lowering) -> dict[str, tuple[float, float]]:
    """Min/max of every activation over :func:`calibration_inputs`, run in the float LiteRT model."""
    from ai_edge_litert.interpreter import Interpreter

    import warnings

    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is what we need
        warnings.simplefilter("ignore")
        interp = Interpreter(model_content=float_content, experimental_preserve_all_tensors=True, num_threads=1)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    names = {i: n for i, n in lowering.tensor_names.items()}
    activations = [i for i, t in enumerate(lowering.tensors) if t.buffer == 0]
    lo = {i: np.inf for i in activations}
    hi = {i: -np.inf for i in activations}
    onnx_in = [i for i in model.graph.input if i.name not in lowering.consts][0].name
    shape = tuple(lowering.shapes[onnx_in])
    for x in calibration_inputs(shape):  # ONNX layout, as onnxruntime's quantizer is given them
        if x.ndim == 4:
            x = np.transpose(x, NHWC)
        interp.set_tensor(detail["index"], x)
        interp.invoke()
        for i in activations:
            v = interp.get_tensor(i)
            lo[i], hi[i] = min(lo[i], float(v.min())), max(hi[i], float(v.max()))
    ranges = {names[i]: (lo[i], hi[i]) for i in activations}
    # Ops that keep their input's quantization: one range for each tied group (union-find).
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    for group in lowering.ties:
        for other in group[1:]:
            ra, rb = find(group[0]), find(other)
            if ra != rb:
                parent[rb] = ra
    union: dict[str, tuple[float, float]] = {}
    for name, (a, b) in ranges.items():
        root = find(name)
        ua, ub = union.get(root, (np.inf, -np.inf))
        union[root] = (min(ua, a), max(ub, b))
    return {name: union[find(name)] for name in ranges}


def onnx_to_tflite(model: onnx.ModelProto, dtype: str = "float32", same_padding: bool = True) -> TfliteModel:
    """Lower an ONNX model to a LiteRT flatbuffer (see the module docstring).

    Args:
        model: A single-input ONNX model with static shapes (hwprof's builders, or an export).
        dtype: ``float32``, or ``int8`` for a full-integer model calibrated on
            :func:`calibration_inputs`.
        same_padding: Use ``SAME`` wherever it gives ONNX's output shape, as LiteRT's converter
            does (default). False keeps ONNX's exact padding (an explicit ``PAD`` where they
            differ), so outputs match onnxruntime's to float precision (tests use this).

    Raises:
        HwprofError: for an op the lowering does not cover, dynamic shapes, or a missing LiteRT install.
    """
    if dtype not in ("float32", "int8"):
        raise HwprofError(f"the LiteRT lowering writes float32 or int8 models, not {dtype}",
                          "use --dtype float32 or --dtype int8")
    lowering = _Lowering(model, None, same_padding)
    content = lowering.run()
    name = model.graph.name
    if dtype == "float32":
        return TfliteModel(content, name, "float32")
    ranges = _calibrate(model, content, lowering)
    quantized = _Lowering(model, ranges, same_padding).run()
    return TfliteModel(quantized, name, "int8", {"quantization": INT8_SCHEME, "calibration": dict(CALIBRATION)})


def tflite_stats(content: bytes) -> dict[str, Any]:
    """MACs, parameters and input shape of a LiteRT flatbuffer (convolutions and fully-connected layers).

    Returns:
        ``{"macs": int, "params": int, "input_shape": tuple}`` (the input as stored, NHWC for images).
    """
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    B = schema.BuiltinOperator

    def shape(i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in graph.Tensors(i).ShapeAsNumpy()) if graph.Tensors(i).ShapeLength() else ()

    macs = params = 0
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = codes[op.OpcodeIndex()]
        if code not in (B.CONV_2D, B.DEPTHWISE_CONV_2D, B.FULLY_CONNECTED):
            continue
        out = int(np.prod(shape(op.Outputs(0))))
        w = shape(op.Inputs(1))
        params += int(np.prod(w)) + (int(np.prod(shape(op.Inputs(2)))) if op.InputsLength() > 2 and op.Inputs(2) >= 0
                                     else 0)
        if code == B.CONV_2D:
            macs += out * int(np.prod(w[1:]))
        elif code == B.DEPTHWISE_CONV_2D:
            macs += out * w[1] * w[2]
        else:
            macs += out * w[-1]
    return {"macs": int(macs), "params": int(params), "input_shape": shape(graph.Inputs(0))}
