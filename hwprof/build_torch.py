"""Build a ``torch.nn.Module`` from the IR.

The module interprets the same primitive layers as the ONNX builder
(:mod:`hwprof.layers`), so torch and ONNX agree with the IR on shapes,
parameters and MACs by construction; tests check all three independently.

Two spellings of the same network exist, because users write both and
torch's exporter turns them into different graphs: ``module`` uses torch's
activation modules (``nn.Hardswish`` exports as one HardSwish op,
``nn.AdaptiveAvgPool2d(1)`` as GlobalAveragePool); ``manual`` writes them out
as the Once-for-All code base and many others do (``x * relu6(x + 3) / 6``,
``relu6(x + 3) / 6``, ``x * sigmoid(x)``, ``x.mean((2, 3), keepdim=True)``),
which exports as Add/Clip/Mul/Div chains and ReduceMean (a SE block's pooling
as the OFA code writes it, ``x.mean(3, keepdim=True).mean(2, keepdim=True)``:
two ReduceMeans). ``timm`` is ``module`` with a SE block's pooling written as
the timm library's ``SqueezeExcite`` writes it, ``x.mean((2, 3), keepdim=True)``
(one ReduceMean over H and W). All compute the same function with the same
parameters (state-dict names agree).
"""

from __future__ import annotations

import torch
from torch import nn

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.layers import Layer

def _gelu_tanh() -> nn.Module:
    return nn.GELU(approximate="tanh")


_ACTS = {
    "none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish,
    "hsigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid, "swish": nn.SiLU, "gelu": nn.GELU,
    "gelu_tanh": _gelu_tanh,
}


class ToTokens(nn.Module):
    """(1, C, H, W) image to (1, H*W, C) tokens: ``x.flatten(2).transpose(1, 2)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class PositionEmbedding(nn.Module):
    """A learned position embedding added to every token."""

    def __init__(self, tokens: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, tokens, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class SelfAttention(nn.Module):
    """Multi-head self-attention core from fused q/k/v (1, N, 3C) to (1, N, C), as timm's ViT writes it."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (channels // heads) ** -0.5

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        b, n, c3 = qkv.shape
        qkv = qkv.reshape(b, n, 3, self.heads, c3 // (3 * self.heads)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return (attn @ v).transpose(1, 2).reshape(b, n, c3 // 3)


class TokenMean(nn.Module):
    """Mean over tokens: (1, N, C) to (1, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class ManualHswish(nn.Module):
    """h-swish written out: ``x * relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.relu6(x + 3.0) / 6.0


class ManualHsigmoid(nn.Module):
    """h-sigmoid written out: ``relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(x + 3.0) / 6.0


class ManualSwish(nn.Module):
    """Swish written out: ``x * sigmoid(x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class SpatialMean(nn.Module):
    """Global average pooling written as a mean over H and W (exports as one ReduceMean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class RowColumnMean(nn.Module):
    """Global average pooling as the OFA code's SE block writes it: ``x.mean(3, keepdim=True).mean(2, keepdim=True)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(3, keepdim=True).mean(2, keepdim=True)


SPELLINGS = ("module", "manual", "timm")
_MANUAL_ACTS = {**_ACTS, "hswish": ManualHswish, "hsigmoid": ManualHsigmoid, "swish": ManualSwish}


def _module_for(layer: Layer, spelling: str = "module") -> nn.Module | None:
    acts = _MANUAL_ACTS if spelling == "manual" else _ACTS
    if layer.kind == "conv":
        k = layer.kernel
        parts: list[nn.Module] = [nn.Conv2d(layer.c_in, layer.c_out, k, layer.stride, 0 if layer.valid else k // 2,
                                            groups=layer.groups, bias=layer.bias)]
        if layer.bn:
            parts.append(nn.BatchNorm2d(layer.c_out))
        parts.append(acts[layer.act]())
        return nn.Sequential(*parts)
    if layer.kind == "linear":
        reshape = nn.Identity() if layer.tokens else nn.Flatten(1)  # index 1 is the Linear either way
        return nn.Sequential(reshape, nn.Linear(layer.c_in, layer.c_out), acts[layer.act]())
    if layer.kind == "act":
        return acts[layer.act]()
    if layer.kind == "maxpool":
        return nn.MaxPool2d(layer.kernel, layer.stride, layer.kernel // 2)
    if layer.kind == "avgpool":
        return nn.AvgPool2d(layer.kernel, layer.stride, layer.kernel // 2 if layer.stride == 1 else 0,
                            ceil_mode=True, count_include_pad=False)
    if layer.kind == "tokens":
        return ToTokens()
    if layer.kind == "posembed":
        return PositionEmbedding(layer.res_in**2, layer.c_out)
    if layer.kind == "layernorm":
        return nn.LayerNorm(layer.c_out)
    if layer.kind == "attention":
        return SelfAttention(layer.c_out, layer.groups)
    if layer.kind == "tokenmean":
        return TokenMean()
    if layer.kind == "gap":
        in_se = ".se." in f".{layer.name}."
        if spelling == "timm":
            return SpatialMean() if in_se else nn.AdaptiveAvgPool2d(1)
        if spelling != "manual":
            return nn.AdaptiveAvgPool2d(1)
        return RowColumnMean() if in_se else SpatialMean()
    return None  # add, sub, mul, concat, split, shuffle: functional


class TorchNet(nn.Module):
    """An ``nn.Module`` executing an architecture's primitive layers in order.

    Args:
        layers: Primitive layers (from :attr:`Arch.layers` or :meth:`Block.layers`).
        output: Name of the value the module returns.
        spelling: ``module`` (torch's activation and pooling modules) or
            ``manual`` (written out) or ``timm`` (modules, SE pooling as one mean; see the
            module docstring).
    """

    def __init__(self, layers: tuple[Layer, ...], output: str, spelling: str = "module") -> None:
        super().__init__()
        self.layers = layers
        self.output = output
        self.mods = nn.ModuleDict()
        for layer in layers:
            module = _module_for(layer, spelling)
            if module is not None:
                self.mods[_key(layer.name)] = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x}
        for layer in self.layers:
            ins = [values[i] for i in layer.inputs]
            kind = layer.kind
            if kind == "add":
                out = ins[0] + ins[1]
            elif kind == "mul":
                out = ins[0] * ins[1]
            elif kind == "sub":
                out = ins[0] - ins[1]
            elif kind == "concat":
                out = torch.cat(ins, dim=1)
            elif kind == "split":
                for name, part in zip(layer.outputs, torch.split(ins[0], list(layer.sizes), dim=1)):
                    values[name] = part
                continue
            elif kind == "shuffle":
                n, c, h, w = ins[0].shape
                g = layer.groups
                out = ins[0].reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)
            else:
                out = self.mods[_key(layer.name)](ins[0])
            values[layer.outputs[0]] = out
        return values[self.output]


def _key(name: str) -> str:
    return name.replace(".", "_")


def build_torch(target: Arch | Block, spelling: str = "module") -> TorchNet:
    """Build a torch module for a whole network or a single block.

    Args:
        target: An :class:`Arch` or a :class:`Block`.
        spelling: ``module``, ``manual`` or ``timm`` (see the module docstring).

    Returns:
        A module mapping an NCHW float tensor to the network's output.
    """
    if isinstance(target, Arch):
        layers, output = target.graph
    elif isinstance(target, Block):
        layers = target.layers()
        output = layers[-1].outputs[0]
    else:
        raise HwprofError(f"cannot build a torch module from {type(target).__name__}")
    if spelling not in SPELLINGS:
        raise HwprofError(f"unknown torch spelling '{spelling}'", f"use one of: {', '.join(SPELLINGS)}")
    return TorchNet(layers, output, spelling)


def count_torch_params(module: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
