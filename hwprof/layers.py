"""Primitive layers: what every block expands into.

A :class:`~hwprof.arch.Block` is a search-space unit (an MBConv, a bottleneck, a
ShuffleNetV2 unit). Both builders (ONNX and torch) and the MAC/parameter counts
work on the same expansion of a block into primitive layers, so the three can
only disagree if a builder mistranslates a primitive — which the tests check
against independent counters.

A ``conv`` layer means Conv -> optional BatchNorm -> optional activation, the
unit that mobile runtimes fuse.

Attention layers work on *tokens*: a value of shape (1, N, C) with N = r*r
for an r x r patch grid (``Layer.tokens``). The GraphWriter tracks which
values are tokens; a ``linear`` on tokens is applied to every token.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish", "gelu", "gelu_tanh")


@dataclass(frozen=True)
class Layer:
    """One primitive layer of the expanded graph.

    Attributes:
        kind: conv | linear | act | add | mul | concat | split | shuffle |
            maxpool | avgpool | gap, and for attention: tokens (image to
            tokens) | posembed (learned position embedding added) |
            layernorm | attention (multi-head self-attention from a fused
            q/k/v input; ``groups`` heads) | tokenmean (mean over tokens).
        name: Unique dotted name, e.g. ``"b3.dw"``; builders name nodes after it.
        inputs: Names of input values.
        outputs: Names of output values.
        c_in: Input channels (first input).
        c_out: Output channels (for ``split``: of the first output).
        res_in: Input height == width.
        res_out: Output height == width.
        kernel: Square kernel size (conv, pools).
        stride: Stride (conv, pools).
        groups: Convolution groups.
        bias: Conv/linear has a bias.
        bn: Conv is followed by BatchNorm.
        act: Activation applied after conv (+BN), or by an ``act`` layer.
        sizes: Channel sizes of the outputs of a ``split``.
        tokens: The layer's input is a token sequence (1, res_in**2, c_in).
        valid: Convolution without padding (a patch embedding: kernel == stride).
    """

    kind: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    c_in: int = 0
    c_out: int = 0
    res_in: int = 0
    res_out: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    bn: bool = False
    act: str = "none"
    sizes: tuple[int, ...] = ()
    tokens: bool = False
    valid: bool = False

    @property
    def n_tokens(self) -> int:
        """Tokens the layer sees (1 for an image-layout or pooled layer)."""
        return self.res_in**2 if self.tokens else 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates, counted as the OFA reference does (conv + linear), plus attention's
        two products (Q K^T and A V: N*N*C each)."""
        if self.kind == "conv":
            return self.res_out**2 * (self.c_in // self.groups) * self.c_out * self.kernel**2
        if self.kind == "linear":
            return self.n_tokens * self.c_in * self.c_out
        if self.kind == "attention":
            return 2 * self.n_tokens**2 * self.c_out
        if self.kind == "matmul":  # a product of two activations, as read from a graph: groups x (rows x c_in) @ (c_in x c_out)
            return self.groups * self.res_in**2 * self.c_in * self.c_out
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters: weights, biases, BatchNorm scale and shift."""
        if self.kind == "conv":
            n = (self.c_in // self.groups) * self.c_out * self.kernel**2
            n += self.c_out if self.bias else 0
            n += 2 * self.c_out if self.bn else 0
            return n
        if self.kind == "linear":
            return self.c_in * self.c_out + self.c_out
        if self.kind == "layernorm":
            return 2 * self.c_out
        if self.kind == "posembed":
            return self.res_in**2 * self.c_out
        return 0


def conv_out_res(res: int, stride: int, valid: bool = False) -> int:
    """Output size of a conv: 'same' padding (ceil), or no padding with kernel == stride (floor)."""
    return res // stride if valid else out_res(res, stride)


def out_res(res: int, stride: int) -> int:
    """Spatial size after a 'same'-padded odd kernel (or ceil-mode pool) with ``stride``."""
    return -(-res // stride)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` as the MobileNet/OFA reference code does."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def split_channels(channels: int, parts: int) -> tuple[int, ...]:
    """Split channels into ``parts`` groups as MixConv does (remainder to the first)."""
    sizes = [channels // parts] * parts
    sizes[0] += channels - sum(sizes)
    return tuple(sizes)


class GraphWriter:
    """Accumulates layers while a block expands, tracking value shapes."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.shapes: dict[str, tuple[int, int]] = {}  # value -> (channels, resolution)
        self.token_values: set[str] = set()  # values in token layout (1, res*res, channels)

    def value(self, name: str, channels: int, res: int, tokens: bool = False) -> str:
        self.shapes[name] = (channels, res)
        if tokens:
            self.token_values.add(name)
        return name

    def conv(self, name: str, x: str, c_out: int, kernel: int = 1, stride: int = 1,
             groups: int = 1, act: str = "none", bn: bool = True, bias: bool = False, valid: bool = False) -> str:
        c_in, res = self.shapes[x]
        r_out = conv_out_res(res, stride, valid)
        y = self.value(name, c_out, r_out)
        self.layers.append(Layer("conv", name, (x,), (y,), c_in, c_out, res, r_out, kernel,
                                 stride, groups, bias, bn, act, valid=valid))
        return y

    def linear(self, name: str, x: str, c_out: int, act: str = "none") -> str:
        """A fully connected layer: on a pooled vector, or on every token of a token sequence."""
        c_in, res = self.shapes[x]
        tokens = x in self.token_values
        r = res if tokens else 1
        y = self.value(name, c_out, r, tokens)
        self.layers.append(Layer("linear", name, (x,), (y,), c_in, c_out, r, r, bias=True, act=act, tokens=tokens))
        return y

    def act(self, name: str, x: str, act: str) -> str:
        if act == "none":
            return x
        c, res = self.shapes[x]
        tokens = x in self.token_values
        y = self.value(name, c, res, tokens)
        self.layers.append(Layer("act", name, (x,), (y,), c, c, res, res, act=act, tokens=tokens))
        return y

    def binary(self, kind: str, name: str, a: str, b: str) -> str:
        c, res = self.shapes[a]
        tokens = a in self.token_values
        y = self.value(name, c, res, tokens)
        self.layers.append(Layer(kind, name, (a, b), (y,), c, c, res, res, tokens=tokens))
        return y

    def _token_op(self, kind: str, name: str, x: str, c_out: int | None = None, res_out: int | None = None,
                  tokens_out: bool = True, **fields) -> str:
        c, res = self.shapes[x]
        c_out = c if c_out is None else c_out
        res_out = res if res_out is None else res_out
        y = self.value(name, c_out, res_out, tokens_out)
        self.layers.append(Layer(kind, name, (x,), (y,), c, c_out, res, res_out,
                                 tokens=x in self.token_values, **fields))
        return y

    def to_tokens(self, name: str, x: str) -> str:
        """An (1, C, r, r) image as (1, r*r, C) tokens."""
        return self._token_op("tokens", name, x)

    def posembed(self, name: str, x: str) -> str:
        """Add a learned position embedding (one C-vector per token)."""
        return self._token_op("posembed", name, x)

    def layernorm(self, name: str, x: str) -> str:
        """LayerNorm over the channels of every token."""
        return self._token_op("layernorm", name, x)

    def attention(self, name: str, qkv: str, heads: int) -> str:
        """Multi-head self-attention from fused (1, N, 3C) queries/keys/values to (1, N, C)."""
        return self._token_op("attention", name, qkv, c_out=self.shapes[qkv][0] // 3, groups=heads)

    def tokenmean(self, name: str, x: str) -> str:
        """Mean over tokens: (1, N, C) to a (1, C) vector."""
        return self._token_op("tokenmean", name, x, res_out=1, tokens_out=False)

    def concat(self, name: str, xs: tuple[str, ...]) -> str:
        res = self.shapes[xs[0]][1]
        c = sum(self.shapes[x][0] for x in xs)
        y = self.value(name, c, res)
        self.layers.append(Layer("concat", name, xs, (y,), self.shapes[xs[0]][0], c, res, res))
        return y

    def split(self, name: str, x: str, sizes: tuple[int, ...]) -> tuple[str, ...]:
        c, res = self.shapes[x]
        outs = tuple(self.value(f"{name}:{i}", s, res) for i, s in enumerate(sizes))
        self.layers.append(Layer("split", name, (x,), outs, c, sizes[0], res, res, sizes=sizes))
        return outs

    def shuffle(self, name: str, x: str, groups: int) -> str:
        c, res = self.shapes[x]
        y = self.value(name, c, res)
        self.layers.append(Layer("shuffle", name, (x,), (y,), c, c, res, res, groups=groups))
        return y

    def pool(self, kind: str, name: str, x: str, kernel: int = 1, stride: int = 1) -> str:
        c, res = self.shapes[x]
        r_out = 1 if kind == "gap" else out_res(res, stride)
        y = self.value(name, c, r_out)
        self.layers.append(Layer(kind, name, (x,), (y,), c, c, res, r_out, kernel, stride))
        return y

    def se(self, name: str, x: str, mid: int) -> str:
        """Squeeze-and-excitation as in MobileNetV3/OFA: GAP, 1x1 ReLU, 1x1 h-sigmoid, scale."""
        c, _ = self.shapes[x]
        s = self.pool("gap", f"{name}.pool", x)
        s = self.conv(f"{name}.reduce", s, mid, act="relu", bn=False, bias=True)
        s = self.conv(f"{name}.expand", s, c, act="hsigmoid", bn=False, bias=True)
        return self.binary("mul", f"{name}.scale", x, s)
