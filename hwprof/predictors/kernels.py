"""Kernels: the units a device runs after fusing the graph (nn-Meter's idea).

hwprof's primitive layers are already grouped as mobile runtimes fuse them: a
``conv`` layer is Conv -> BatchNorm -> activation, emitted as exactly those
ONNX nodes by :mod:`hwprof.build_onnx`. A kernel is one primitive layer, typed
by what the hardware sees (a 1x1 conv and a depthwise conv run on different
units), with numeric features a regression tree can split on.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hwprof.arch import Block
from hwprof.layers import ACTIVATIONS, Layer

FEATURES = ("c_in", "c_out", "res_in", "res_out", "kernel", "stride", "groups", "macs", "in_elems",
            "out_elems", "params", "act")


def kernel_type(layer: Layer) -> str:
    """Kernel class of a primitive layer: conv, pwconv, dwconv, gconv, fc, or the layer kind."""
    if layer.kind == "conv":
        if layer.groups == 1:
            return "pwconv" if layer.kernel == 1 else "conv"
        return "dwconv" if layer.groups == layer.c_in else "gconv"
    if layer.kind == "linear":
        return "fc"
    return layer.kind


def kernel_features(layer: Layer) -> tuple[float, ...]:
    """Numeric features of one kernel, in :data:`FEATURES` order."""
    return (layer.c_in, layer.c_out, layer.res_in, layer.res_out, layer.kernel, layer.stride, layer.groups,
            layer.macs, layer.c_in * layer.res_in**2, layer.c_out * layer.res_out**2, layer.params,
            ACTIVATIONS.index(layer.act) if layer.act in ACTIVATIONS else 0)


@lru_cache(maxsize=65536)
def block_kernels(block: Block) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """(kernel type, features) of every kernel of a block, cached per block configuration."""
    return tuple((kernel_type(layer), kernel_features(layer)) for layer in block.layers())


def group_kernels(blocks: list[Block]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kernels of ``blocks`` grouped by type: (feature matrix, owning block index per row)."""
    feats: dict[str, list] = {}
    owner: dict[str, list] = {}
    for i, block in enumerate(blocks):
        for ktype, f in block_kernels(block):
            feats.setdefault(ktype, []).append(f)
            owner.setdefault(ktype, []).append(i)
    return {k: (np.asarray(feats[k], dtype=float), np.asarray(owner[k])) for k in feats}
