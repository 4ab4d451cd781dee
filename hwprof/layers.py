"""Primitive layers: what every block expands into.

A :class:`~hwprof.arch.Block` is a search-space unit (an MBConv, a bottleneck, a
ShuffleNetV2 unit). Both builders (ONNX and torch) and the MAC/parameter counts
work on the same expansion of a block into primitive layers, so the three can
only disagree if a builder mistranslates a primitive — which the tests check
against independent counters.

A ``conv`` layer means Conv -> optional BatchNorm -> optional activation, the
unit that mobile runtimes fuse.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish")


@dataclass(frozen=True)
class Layer:
    """One primitive layer of the expanded graph.

    Attributes:
        kind: conv | linear | act | add | mul | concat | split | shuffle |
            maxpool | avgpool | gap.
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

    @property
    def macs(self) -> int:
        """Multiply-accumulates, counted as the OFA reference does (conv + linear)."""
        if self.kind == "conv":
            return self.res_out**2 * (self.c_in // self.groups) * self.c_out * self.kernel**2
        if self.kind == "linear":
            return self.c_in * self.c_out
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
        return 0


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

    def value(self, name: str, channels: int, res: int) -> str:
        self.shapes[name] = (channels, res)
        return name

    def conv(self, name: str, x: str, c_out: int, kernel: int = 1, stride: int = 1,
             groups: int = 1, act: str = "none", bn: bool = True, bias: bool = False) -> str:
        c_in, res = self.shapes[x]
        r_out = out_res(res, stride)
        y = self.value(name, c_out, r_out)
        self.layers.append(Layer("conv", name, (x,), (y,), c_in, c_out, res, r_out, kernel,
                                 stride, groups, bias, bn, act))
        return y

    def linear(self, name: str, x: str, c_out: int) -> str:
        c_in, _ = self.shapes[x]
        y = self.value(name, c_out, 1)
        self.layers.append(Layer("linear", name, (x,), (y,), c_in, c_out, 1, 1, bias=True))
        return y

    def act(self, name: str, x: str, act: str) -> str:
        if act == "none":
            return x
        c, res = self.shapes[x]
        y = self.value(name, c, res)
        self.layers.append(Layer("act", name, (x,), (y,), c, c, res, res, act=act))
        return y

    def binary(self, kind: str, name: str, a: str, b: str) -> str:
        c, res = self.shapes[a]
        y = self.value(name, c, res)
        self.layers.append(Layer(kind, name, (a, b), (y,), c, c, res, res))
        return y

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
