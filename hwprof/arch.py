"""Architecture IR: :class:`Block` and :class:`Arch`.

An :class:`Arch` is an ordered tuple of blocks (stem and head included) plus the
search-space genes it was built from. It is the exchange format between every
stage of hwprof: spaces produce it, builders turn it into ONNX or torch, devices
measure it, predictors and searchers consume it.

JSON is the on-disk form (``to_json``/``from_json``) and carries a schema
version. :attr:`Arch.hash` identifies the *network* (blocks only, defaults
omitted), so it is the same on any machine and survives new optional fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property, lru_cache
from typing import Any

from hwprof.errors import HwprofError
from hwprof.layers import ACTIVATIONS, GraphWriter, Layer, conv_out_res, make_divisible, out_res, split_channels

SKIP = "skip"  # the option label of a layer that is left out (a shallower network)

SCHEMA = "hwprof.arch/1"
BLOCK_OPS = ("conv", "mbconv", "resblock", "shuffle", "xception", "maxpool", "gap", "linear",
             "patchembed", "flatten", "transformer", "tokenhead", "poolmixer")
#: Blocks whose input is a token sequence (1, resolution**2, c_in) rather than an image.
TOKEN_INPUT_OPS = ("transformer", "tokenhead")
#: Blocks whose output is a token sequence.
TOKEN_OUTPUT_OPS = ("patchembed", "flatten", "transformer")
GELU_ACTS = ("gelu", "gelu_tanh")


@dataclass(frozen=True)
class Block:
    """One search-space unit at a fixed input shape.

    Attributes:
        op: conv | mbconv | resblock | shuffle | xception | maxpool | gap | linear,
            and for attention networks: patchembed (image to tokens: a
            kernel == stride conv, optional position embedding), flatten (image
            to tokens, a reshape: EfficientFormer's switch to attention),
            transformer (pre-norm encoder layer: ``groups`` heads, MLP hidden
            ``mid``), tokenhead (LayerNorm, mean over tokens), poolmixer
            (PoolFormer/EfficientFormer 4-D block: pooling token mixer and
            1x1-conv MLP of hidden ``mid``). An ``mbconv`` with several kernels
            is a MixConv block.
        c_in: Input channels.
        c_out: Output channels.
        resolution: Input height == width (1 after global pooling).
        kernel: Kernel size(s); several for MixConv (channels split evenly).
        stride: Spatial stride.
        mid: Hidden channels (mbconv expansion width, bottleneck width).
        se: Squeeze-and-excitation inside the block.
        act: Activation of the block's nonlinear layers.
        groups: Groups of the 1x1 convolutions (FBNet's g2 variants); attention heads of a transformer.
        expand_conv: mbconv has a 1x1 expansion conv (False for expand ratio 1).
        bn: conv is followed by BatchNorm.
        bias: conv has a bias.
        residual: conv adds its input (stride 1, same channels).
        position: patchembed adds a learned position embedding.
    """

    op: str
    c_in: int
    c_out: int
    resolution: int
    kernel: tuple[int, ...] = (3,)
    stride: int = 1
    mid: int = 0
    se: bool = False
    act: str = "relu"
    groups: int = 1
    expand_conv: bool = True
    bn: bool = True
    bias: bool = False
    residual: bool = False
    position: bool = False

    def __post_init__(self) -> None:
        if self.op not in BLOCK_OPS:
            raise HwprofError(f"unknown block op '{self.op}'", f"use one of: {', '.join(BLOCK_OPS)}")
        for name in ("c_in", "c_out", "resolution", "stride", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HwprofError(f"block field '{name}' must be a positive integer, got {value!r}")
        if not isinstance(self.mid, int) or self.mid < 0:
            raise HwprofError(f"block field 'mid' must be a non-negative integer, got {self.mid!r}")
        odd = self.op != "patchembed"  # a patch embedding's kernel is the patch size (often 16)
        if not self.kernel or any(not isinstance(k, int) or k < 1 or (odd and k % 2 == 0) for k in self.kernel):
            raise HwprofError(f"block field 'kernel' must list {'odd ' if odd else ''}positive sizes, "
                              f"got {self.kernel!r}")
        if self.act not in ACTIVATIONS:
            raise HwprofError(f"unknown activation '{self.act}'", f"use one of: {', '.join(ACTIVATIONS)}")
        if self.op in ("mbconv", "resblock") and self.mid < 1:
            raise HwprofError(f"{self.op} block needs 'mid' (hidden channels) >= 1")
        if self.op == "mbconv" and not self.expand_conv and self.mid != self.c_in:
            raise HwprofError("mbconv without expand_conv must have mid == c_in")
        if self.op in ("shuffle", "xception"):
            if self.c_out % 2 or (self.stride == 1 and self.c_in != self.c_out):
                raise HwprofError(f"{self.op} block needs an even c_out, and c_in == c_out at stride 1")
        if self.residual and (self.stride != 1 or self.c_in != self.c_out):
            raise HwprofError("a residual conv needs stride 1 and c_in == c_out")
        self._check_attention()

    def _check_attention(self) -> None:
        if self.op == "patchembed":
            if self.stride != self.kernel[0] or len(self.kernel) != 1:
                raise HwprofError(f"patchembed needs stride == kernel (the patch size), got kernel {self.kernel} "
                                  f"stride {self.stride}")
            if self.resolution % self.stride:
                raise HwprofError(f"patchembed: resolution {self.resolution} is not a multiple of the patch size "
                                  f"{self.stride}", "pick a resolution the patch size divides")
        if self.op in ("flatten", "transformer", "tokenhead", "poolmixer") and (self.c_in != self.c_out or self.stride != 1):
            raise HwprofError(f"a {self.op} block keeps its width: needs c_in == c_out and stride 1")
        if self.op == "transformer":
            if self.c_out % self.groups:
                raise HwprofError(f"transformer: {self.groups} heads do not divide the embedding dimension "
                                  f"{self.c_out}", "pick a head count that divides the embedding")
            if self.mid < 1:
                raise HwprofError("transformer block needs 'mid' (MLP hidden width) >= 1")
        if self.op == "poolmixer" and self.mid < 1:
            raise HwprofError("poolmixer block needs 'mid' (MLP hidden width) >= 1")

    @property
    def out_resolution(self) -> int:
        """Output height == width."""
        if self.op in ("gap", "tokenhead"):
            return 1
        return conv_out_res(self.resolution, self.stride, valid=self.op == "patchembed")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Input shape at batch 1: NCHW, or (1, tokens, channels) for blocks that take tokens."""
        if self.op in TOKEN_INPUT_OPS:
            return (1, self.resolution**2, self.c_in)
        return (1, self.c_in, self.resolution, self.resolution)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Output shape at batch 1: (1, C) after a classifier or token head, tokens, or NCHW."""
        if self.op in ("linear", "tokenhead"):
            return (1, self.c_out)
        r = self.out_resolution
        if self.op in TOKEN_OUTPUT_OPS:
            return (1, r * r, self.c_out)
        return (1, self.c_out, r, r)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; fields at their default value are omitted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is not MISSING and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Block:
        """Inverse of :meth:`to_dict`, validating field names and values."""
        if not isinstance(data, dict):
            raise HwprofError(f"a block must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HwprofError(f"unknown block field(s): {', '.join(unknown)}",
                              f"valid fields: {', '.join(sorted(known))}")
        missing = [n for n in ("op", "c_in", "c_out", "resolution") if n not in data]
        if missing:
            raise HwprofError(f"block is missing field(s): {', '.join(missing)}")
        values = dict(data)
        if "kernel" in values:
            kernel = values["kernel"]
            values["kernel"] = tuple(kernel) if isinstance(kernel, list) else (kernel,)
        return cls(**values)

    def key(self) -> str:
        """Stable identifier of this block configuration (for block-level datasets)."""
        return _digest(self.to_dict())

    def describe(self) -> str:
        """Short human-readable form, e.g. ``mbconv 40->40 k5 s1 mid240 se @28px``."""
        if self.op in ("transformer", "tokenhead", "flatten"):
            heads = f" h{self.groups} mid{self.mid} {self.act}" if self.op == "transformer" else ""
            return f"{self.op} {self.c_in}->{self.c_out}{heads} @{self.resolution}x{self.resolution} tokens"
        kernels = "+".join(map(str, self.kernel))
        text = f"{self.op} {self.c_in}->{self.c_out} k{kernels} s{self.stride}"
        text += f" mid{self.mid}" if self.mid else ""
        text += " se" if self.se else ""
        return f"{text} {self.act} @{self.resolution}px"

    def expand(self, w: GraphWriter, x: str, name: str) -> str:
        """Append this block's primitive layers to ``w``; return the output value."""
        return _EXPANDERS[self.op](self, w, x, name)

    def layers(self) -> tuple[Layer, ...]:
        """Primitive layers of this block alone, fed by a value named ``input``."""
        w = GraphWriter()
        w.value("input", self.c_in, self.resolution, tokens=self.op in TOKEN_INPUT_OPS)
        self.expand(w, "input", "block")
        return tuple(w.layers)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of this block (conv + linear)."""
        return _block_counts(self)[0]

    @property
    def params(self) -> int:
        """Trainable parameters of this block."""
        return _block_counts(self)[1]


@dataclass(frozen=True)
class Arch:
    """A whole network: ordered blocks plus the genes of the space it came from.

    Attributes:
        blocks: Blocks in execution order, stem to classifier.
        space: Name of the search space that produced it ("" if none).
        genes: Option index per space variable (empty if not from a space).
    """

    blocks: tuple[Block, ...]
    space: str = ""
    genes: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.blocks:
            raise HwprofError("an architecture needs at least one block")
        for i, (prev, block) in enumerate(zip(self.blocks, self.blocks[1:]), start=1):
            if block.c_in != prev.c_out or block.resolution != prev.out_resolution:
                raise HwprofError(
                    f"block {i} ({block.op}) expects {block.c_in} channels at {block.resolution}px "
                    f"but block {i - 1} gives {prev.c_out} channels at {prev.out_resolution}px",
                    "fix c_in/resolution so consecutive blocks connect")

    @property
    def resolution(self) -> int:
        """Input image height == width."""
        return self.blocks[0].resolution

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW input shape at batch size 1."""
        return (1, self.blocks[0].c_in, self.resolution, self.resolution)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Output shape at batch size 1: (1, classes) after a linear head, else the last block's output."""
        return self.blocks[-1].output_shape

    @cached_property
    def hash(self) -> str:
        """Content hash of the network (16 hex digits), stable across machines."""
        return _digest([b.to_dict() for b in self.blocks])

    @cached_property
    def graph(self) -> tuple[tuple[Layer, ...], str]:
        """Primitive layers of the whole network and the name of its output value."""
        w = GraphWriter()
        x = w.value("input", self.blocks[0].c_in, self.resolution)
        for i, block in enumerate(self.blocks):
            x = block.expand(w, x, f"b{i}")
        return tuple(w.layers), x

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Primitive layers of the whole network."""
        return self.graph[0]

    @cached_property
    def macs(self) -> int:
        """Multiply-accumulates at batch 1 (conv + linear, as the OFA reference counts), summed over blocks."""
        return sum(b.macs for b in self.blocks)

    @cached_property
    def params(self) -> int:
        """Trainable parameters (weights, biases, BatchNorm scale and shift), summed over blocks."""
        return sum(b.params for b in self.blocks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with schema version and hash."""
        return {
            "schema": SCHEMA,
            "hash": self.hash,
            "space": self.space,
            "genes": list(self.genes),
            "input_shape": list(self.input_shape),
            "macs": self.macs,
            "params": self.params,
            "blocks": [b.to_dict() for b in self.blocks],
        }

    def to_json(self, indent: int | None = None) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        """Build from a dict made by :meth:`to_dict` (hash/macs/params are recomputed).

        Raises:
            HwprofError: on a wrong schema version or malformed content.
        """
        if not isinstance(data, dict):
            raise HwprofError(f"architecture JSON must be an object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise HwprofError(f"architecture JSON has schema {schema!r}, this hwprof reads {SCHEMA!r}",
                              "re-create it with `nas sample` or `nas export` from this version")
        blocks = data.get("blocks")
        if not isinstance(blocks, list):
            raise HwprofError("architecture JSON has no 'blocks' list")
        genes = data.get("genes", [])
        if not isinstance(genes, list) or not all(isinstance(g, int) for g in genes):
            raise HwprofError("architecture field 'genes' must be a list of integers")
        space = data.get("space", "")
        if not isinstance(space, str):
            raise HwprofError("architecture field 'space' must be a string")
        parsed = []
        for i, b in enumerate(blocks):
            try:
                parsed.append(Block.from_dict(b))
            except HwprofError as exc:
                raise HwprofError(f"block {i}: {exc.message}", exc.hint) from None
            except TypeError as exc:
                raise HwprofError(f"block {i}: {exc}") from None
        return cls(tuple(parsed), space, tuple(genes))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        """Parse JSON text made by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HwprofError(f"malformed architecture JSON: {exc}") from None
        return cls.from_dict(data)


@lru_cache(maxsize=65536)
def _block_counts(block: Block) -> tuple[int, int]:
    layers = block.layers()
    return sum(layer.macs for layer in layers), sum(layer.params for layer in layers)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- block expansions -------------------------------------------------------------------


def _expand_conv(b: Block, w: GraphWriter, x: str, name: str) -> str:
    y = w.conv(f"{name}.conv", x, b.c_out, b.kernel[0], b.stride, b.groups, b.act, b.bn, b.bias)
    if b.residual:
        y = w.binary("add", f"{name}.add", y, x)
    return y


def _expand_mbconv(b: Block, w: GraphWriter, x: str, name: str) -> str:
    h = x
    if b.expand_conv:
        h = w.conv(f"{name}.expand", h, b.mid, 1, groups=b.groups, act=b.act)
        if b.groups > 1:
            h = w.shuffle(f"{name}.shuffle", h, b.groups)
    if len(b.kernel) == 1:
        h = w.conv(f"{name}.dw", h, b.mid, b.kernel[0], b.stride, groups=b.mid, act=b.act)
    else:  # MixConv: channels split across depthwise kernels
        parts = w.split(f"{name}.split", h, split_channels(b.mid, len(b.kernel)))
        outs = tuple(
            w.conv(f"{name}.dw{k}", p, w.shapes[p][0], k, b.stride, groups=w.shapes[p][0], act=b.act)
            for p, k in zip(parts, b.kernel))
        h = w.concat(f"{name}.mix", outs)
    if b.se:
        h = w.se(f"{name}.se", h, make_divisible(b.mid // 4, 8))
    h = w.conv(f"{name}.project", h, b.c_out, 1, groups=b.groups)
    if b.stride == 1 and b.c_in == b.c_out:
        h = w.binary("add", f"{name}.add", h, x)
    return h


def _expand_resblock(b: Block, w: GraphWriter, x: str, name: str) -> str:
    h = w.conv(f"{name}.conv1", x, b.mid, 1, act=b.act)
    h = w.conv(f"{name}.conv2", h, b.mid, b.kernel[0], b.stride, act=b.act)
    h = w.conv(f"{name}.conv3", h, b.c_out, 1)
    shortcut = x
    if b.stride != 1 or b.c_in != b.c_out:  # OFA-ResNet 'avgpool_conv' downsampling
        if b.stride > 1:
            shortcut = w.pool("avgpool", f"{name}.down_pool", shortcut, b.stride, b.stride)
        shortcut = w.conv(f"{name}.down", shortcut, b.c_out, 1)
    h = w.binary("add", f"{name}.add", h, shortcut)
    return w.act(f"{name}.out", h, b.act)


def _shuffle_unit(b: Block, w: GraphWriter, x: str, name: str, main_branch) -> str:
    features = b.c_out // 2
    if b.stride == 1:
        left, inp = w.split(f"{name}.split", x, (b.c_in // 2, b.c_in - b.c_in // 2))
    else:
        left = w.conv(f"{name}.proj_dw", x, b.c_in, b.kernel[0], b.stride, groups=b.c_in)
        left = w.conv(f"{name}.proj_pw", left, features, 1, act=b.act)
        inp = x
    h = main_branch(inp, features)
    if b.se:
        h = w.se(f"{name}.se", h, make_divisible(features // 4, 8))
    y = w.concat(f"{name}.cat", (left, h))
    return w.shuffle(f"{name}.shuffle", y, 2)


def _expand_shuffle(b: Block, w: GraphWriter, x: str, name: str) -> str:
    def main(inp: str, features: int) -> str:
        h = w.conv(f"{name}.pw1", inp, features, 1, act=b.act)
        h = w.conv(f"{name}.dw", h, features, b.kernel[0], b.stride, groups=features)
        return w.conv(f"{name}.pw2", h, features, 1, act=b.act)

    return _shuffle_unit(b, w, x, name, main)


def _expand_xception(b: Block, w: GraphWriter, x: str, name: str) -> str:
    def main(inp: str, features: int) -> str:
        h = inp
        for i in range(3):
            c = w.shapes[h][0]
            h = w.conv(f"{name}.dw{i}", h, c, b.kernel[0], b.stride if i == 0 else 1, groups=c)
            h = w.conv(f"{name}.pw{i}", h, features, 1, act=b.act)
        return h

    return _shuffle_unit(b, w, x, name, main)


def _expand_maxpool(b: Block, w: GraphWriter, x: str, name: str) -> str:
    return w.pool("maxpool", f"{name}.maxpool", x, b.kernel[0], b.stride)


def _expand_gap(b: Block, w: GraphWriter, x: str, name: str) -> str:
    return w.pool("gap", f"{name}.gap", x)


def _expand_linear(b: Block, w: GraphWriter, x: str, name: str) -> str:
    return w.linear(f"{name}.fc", x, b.c_out)


def _expand_patchembed(b: Block, w: GraphWriter, x: str, name: str) -> str:
    h = w.conv(f"{name}.proj", x, b.c_out, b.kernel[0], b.stride, bn=False, bias=True, valid=True)
    h = w.to_tokens(f"{name}.tokens", h)
    return w.posembed(f"{name}.pos", h) if b.position else h


def _expand_flatten(b: Block, w: GraphWriter, x: str, name: str) -> str:
    return w.to_tokens(f"{name}.tokens", x)


def _expand_transformer(b: Block, w: GraphWriter, x: str, name: str) -> str:
    """Pre-norm encoder layer (ViT/DeiT): x + proj(attn(LN(x))), then x + fc2(act(fc1(LN(x))))."""
    h = w.layernorm(f"{name}.norm1", x)
    h = w.linear(f"{name}.qkv", h, 3 * b.c_out)
    h = w.attention(f"{name}.attn", h, b.groups)
    h = w.linear(f"{name}.proj", h, b.c_out)
    x = w.binary("add", f"{name}.add1", h, x)
    h = w.layernorm(f"{name}.norm2", x)
    h = w.linear(f"{name}.fc1", h, b.mid, act=b.act)
    h = w.linear(f"{name}.fc2", h, b.c_out)
    return w.binary("add", f"{name}.add2", h, x)


def _expand_tokenhead(b: Block, w: GraphWriter, x: str, name: str) -> str:
    return w.tokenmean(f"{name}.mean", w.layernorm(f"{name}.norm", x))


def _expand_poolmixer(b: Block, w: GraphWriter, x: str, name: str) -> str:
    """EfficientFormer's 4-D MetaBlock (its reference code, layer scale left out): the pooling token
    mixer ``x + (AvgPool(x) - x)`` (3x3, stride 1, padded), then ``x + conv MLP`` (1x1 conv, BN, act,
    1x1 conv, BN)."""
    pooled = w.pool("avgpool", f"{name}.pool", x, b.kernel[0], 1)
    mixed = w.binary("sub", f"{name}.mix", pooled, x)
    x = w.binary("add", f"{name}.add1", mixed, x)
    h = w.conv(f"{name}.fc1", x, b.mid, 1, act=b.act)
    h = w.conv(f"{name}.fc2", h, b.c_out, 1)
    return w.binary("add", f"{name}.add2", h, x)


_EXPANDERS = {
    "conv": _expand_conv,
    "mbconv": _expand_mbconv,
    "resblock": _expand_resblock,
    "shuffle": _expand_shuffle,
    "xception": _expand_xception,
    "maxpool": _expand_maxpool,
    "gap": _expand_gap,
    "linear": _expand_linear,
    "patchembed": _expand_patchembed,
    "flatten": _expand_flatten,
    "transformer": _expand_transformer,
    "tokenhead": _expand_tokenhead,
    "poolmixer": _expand_poolmixer,
}
