"""FBNet space (the space of FBNet-A/B/C).

Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable
Neural Architecture Search", CVPR 2019, Tables 1 and 2: stem conv 16, then 22
searchable layers in stages of (16, 1, s1), (24, 4, s2), (32, 4, s2),
(64, 4, s2), (112, 4, s1), (184, 4, s2), (352, 1, s1); each layer picks one of
9 candidates: k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6,
skip. Blocks are 1x1 (group) conv, ReLU, channel shuffle for g2, depthwise
conv, 1x1 (group) conv, residual when shapes match. A skip where the shape
changes is FBNet's projecting identity: a 1x1 conv-BN-ReLU with the stride.
Head: 1x1 conv to 1504, pooling, classifier; 224 px.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, option_variable

STAGES = ((16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1))
CANDIDATES = [(3, 1, 1), (3, 1, 2), (3, 3, 1), (3, 6, 1), (5, 1, 1), (5, 1, 2), (5, 3, 1), (5, 6, 1)]
LABELS = [f"k{k}_e{e}" + ("_g2" if g == 2 else "") for k, e, g in CANDIDATES]


@SPACES.register("fbnet")
class FBNetSpace(SearchSpace):
    """FBNet: 22 layers x 9 candidates (incl. group conv and skip)."""

    name = "fbnet"
    description = "FBNet: 22 layers x 9 candidates (k3/k5, e1/e3/e6, g2 group conv, skip), 224 px"
    reference = "Wu et al., FBNet, CVPR 2019"

    def __init__(self, resolution: int = 224, head_channels: int = 1504, num_classes: int = 1000) -> None:
        self.resolution = resolution
        self.head_channels = head_channels
        self.num_classes = num_classes

    def _variables(self) -> list[Variable]:
        return [option_variable(f"s{s + 1}.b{j}", CANDIDATES, LABELS, True)
                for s, (_, n, _) in enumerate(STAGES) for j in range(n)]

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(1, n)) for s, (_, n, _) in enumerate(STAGES) if n > 1]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        chain = Chain(3, self.resolution)
        chain.add("conv", 16, kernel=(3,), stride=2)
        for s, (width, n, stride) in enumerate(STAGES):
            for j in range(n):
                layer_stride = stride if j == 0 else 1
                option = choice[f"s{s + 1}.b{j}"]
                if option == "skip":
                    if layer_stride != 1 or chain.channels != width:
                        chain.add("conv", width, kernel=(1,), stride=layer_stride)
                    continue
                k, e, g = option
                chain.add("mbconv", width, kernel=(k,), stride=layer_stride, mid=chain.channels * e,
                          groups=g)
        chain.add("conv", self.head_channels, kernel=(1,))
        chain.add("gap", self.head_channels)
        chain.add("linear", self.num_classes)
        return chain.blocks
