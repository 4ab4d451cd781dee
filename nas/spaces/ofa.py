"""Once-for-All MobileNetV3 space.

Cai et al., "Once-for-All: Train One Network and Specialize it for Efficient
Deployment", ICLR 2020, and the OFA reference code (``OFAMobileNetV3``): a stem
conv and one fixed MBConv, then 5 searchable stages (widths 24, 40, 80, 112,
160; strides 2, 2, 2, 1, 2), each of depth {2, 3, 4}; every block picks kernel
{3, 5, 7} and expand ratio {3, 4, 6}; input resolution 128-224 in steps of 4.
SE in stages 1, 3, 4 and h-swish from stage 3 on, as in MobileNetV3 (Howard et
al., ICCV 2019). ``width_mult`` 1.0 or 1.2 as released.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, option_variable

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
MAX_DEPTH, MIN_DEPTH = 4, 2
RESOLUTIONS = tuple(range(128, 225, 4))
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STRIDES = (2, 2, 2, 1, 2)
ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
SES = (False, True, False, True, True)


@SPACES.register("ofa")
class OFASpace(SearchSpace):
    """Once-for-All MobileNetV3: depth, kernel, expand ratio and resolution."""

    name = "ofa"
    description = "Once-for-All MobileNetV3: 5 stages, depth {2,3,4}, kernel {3,5,7}, expand {3,4,6}, resolution 128-224"
    reference = "Cai et al., Once-for-All, ICLR 2020"
    deployment_values = {"resolution": 224}  # ImageNet networks ship at 224 px

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        self.width_mult = width_mult
        self.num_classes = num_classes
        self.widths = [make_divisible(w * width_mult, 8) for w in BASE_WIDTHS]

    def _variables(self) -> list[Variable]:
        variables = [Variable("resolution", RESOLUTIONS, tuple(map(str, RESOLUTIONS)), "global")]
        options = [(k, e) for k in KERNELS for e in EXPANDS]
        labels = [f"k{k}_e{e}" for k, e in options]
        for s in range(5):
            for j in range(MAX_DEPTH):
                variables.append(option_variable(f"s{s + 1}.b{j}", options, labels, j >= MIN_DEPTH))
        return variables

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(MIN_DEPTH, MAX_DEPTH)) for s in range(5)]

    def _block_shape(self, stage: int, option: tuple) -> tuple[int, int, int]:
        """(output channels, kernel, expand ratio) of a block of ``stage`` for a layer option."""
        k, e = option
        return self.widths[stage + 2], k, e

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        w = self.widths
        chain = Chain(3, choice["resolution"])
        chain.add("conv", w[0], kernel=(3,), stride=2, act="hswish")
        chain.add("mbconv", w[1], kernel=(3,), mid=w[0], expand_conv=False, act="relu")
        for s in range(5):
            for j in range(MAX_DEPTH):
                option = choice[f"s{s + 1}.b{j}"]
                if option == "skip":
                    continue
                c_out, k, e = self._block_shape(s, option)
                chain.add("mbconv", c_out, kernel=(k,), stride=STRIDES[s] if j == 0 else 1,
                          mid=make_divisible(round(chain.channels * e), 8), se=SES[s], act=ACTS[s])
        chain.add("conv", w[7], kernel=(1,), act="hswish")
        chain.add("gap", w[7])
        chain.add("conv", w[8], kernel=(1,), act="hswish", bn=False)
        chain.add("linear", self.num_classes)
        return chain.blocks
