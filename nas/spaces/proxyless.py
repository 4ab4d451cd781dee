"""ProxylessNAS mobile space.

Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on Target
Task and Hardware", ICLR 2019: stem conv 32, a fixed MBConv1 k3 to 16 channels,
then stages of widths 24, 40, 80, 96, 192, 320 with 4, 4, 4, 4, 4, 1 blocks and
strides 2, 2, 2, 1, 2, 1; each block picks MBConv kernel {3, 5, 7} x expand
{3, 6}, and every block but the first of a stage may be 'zero' (skipped, the
residual passes through); ReLU6; 1x1 conv to 1280, pooling, classifier; 224 px.

``width_mult`` scales every width as MobileNetV2's multiplier does (channels
rounded to a multiple of 8; the 1280-channel head only grows, for multipliers
above 1): ``proxyless:width_mult=0.75`` is the family of MobileNetV2-0.75-like
networks, ``proxyless:width_mult=1.4`` that of ProxylessNAS-mobile-14.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, option_variable

WIDTHS = (24, 40, 80, 96, 192, 320)
DEPTHS = (4, 4, 4, 4, 4, 1)
STRIDES = (2, 2, 2, 1, 2, 1)
OPTIONS = [(k, e) for k in (3, 5, 7) for e in (3, 6)]


@SPACES.register("proxyless")
class ProxylessSpace(SearchSpace):
    """ProxylessNAS mobile: MBConv k{3,5,7} x e{3,6} or zero per block."""

    name = "proxyless"
    description = "ProxylessNAS mobile: 21 blocks, MBConv k{3,5,7} x e{3,6} + zero, 224 px"
    reference = "Cai et al., ProxylessNAS, ICLR 2019"

    def __init__(self, resolution: int = 224, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        self.resolution = resolution
        self.num_classes = num_classes
        self.width_mult = width_mult
        self.widths = [make_divisible(w * width_mult, 8) for w in WIDTHS]
        self.head = make_divisible(1280 * max(width_mult, 1.0), 8)

    def _variables(self) -> list[Variable]:
        labels = [f"k{k}_e{e}" for k, e in OPTIONS]
        return [option_variable(f"s{s + 1}.b{j}", OPTIONS, labels, j > 0)
                for s, depth in enumerate(DEPTHS) for j in range(depth)]

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(1, d)) for s, d in enumerate(DEPTHS) if d > 1]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        chain = Chain(3, self.resolution)
        stem = make_divisible(32 * self.width_mult, 8)
        chain.add("conv", stem, kernel=(3,), stride=2, act="relu6")
        chain.add("mbconv", make_divisible(16 * self.width_mult, 8), kernel=(3,), mid=stem, expand_conv=False,
                  act="relu6")
        for s, depth in enumerate(DEPTHS):
            for j in range(depth):
                option = choice[f"s{s + 1}.b{j}"]
                if option == "skip":
                    continue
                k, e = option
                chain.add("mbconv", self.widths[s], kernel=(k,), stride=STRIDES[s] if j == 0 else 1,
                          mid=int(round(chain.channels * e)), act="relu6")
        chain.add("conv", self.head, kernel=(1,), act="relu6")
        chain.add("gap", self.head)
        chain.add("linear", self.num_classes)
        return chain.blocks
