"""S3NAS supernet space: variable blocks per stage and MixConv blocks.

Lee et al., "S3NAS: Fast Hardware-Aware Neural Architecture Search
Methodology", IEEE TCAD 41(11), 2022. The supernet lets each stage keep a
different number of blocks and lets blocks use MixConv (Tan and Le, BMVC 2019):
parallel depthwise kernels over split channels. The macro skeleton follows
MnasNet/EfficientNet-B0 (stem 32, a fixed MBConv1 to 16, stages 24, 40, 80,
112, 192, 320 with strides 2, 2, 2, 1, 2, 1, head 1280); here each stage holds
up to 4, 4, 5, 5, 5, 2 blocks, every block but the first may be skipped, and
each block picks a kernel set {3}, {5}, {3,5}, {3,5,7} and expand ratio
{2, 4, 6}. ReLU and no SE: S3NAS adds SE and h-swish in post-processing.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, option_variable

STAGES = ((24, 4, 2), (40, 4, 2), (80, 5, 2), (112, 5, 1), (192, 5, 2), (320, 2, 1))
KERNEL_SETS = ((3,), (5,), (3, 5), (3, 5, 7))
EXPANDS = (2, 4, 6)
OPTIONS = [(ks, e) for ks in KERNEL_SETS for e in EXPANDS]
LABELS = ["k" + ".".join(map(str, ks)) + f"_e{e}" for ks, e in OPTIONS]


@SPACES.register("s3nas")
class S3NASSpace(SearchSpace):
    """S3NAS: variable depth per stage, MixConv kernel sets, expand ratio."""

    name = "s3nas"
    description = "S3NAS supernet: 6 stages of 1-5 blocks, MixConv kernel sets {3},{5},{3,5},{3,5,7} x expand {2,4,6}, 224 px"
    reference = "Lee et al., S3NAS, IEEE TCAD 2022; Tan and Le, MixConv, BMVC 2019"

    def __init__(self, resolution: int = 224, num_classes: int = 1000) -> None:
        self.resolution = resolution
        self.num_classes = num_classes

    def _variables(self) -> list[Variable]:
        return [option_variable(f"s{s + 1}.b{j}", OPTIONS, LABELS, j > 0)
                for s, (_, n, _) in enumerate(STAGES) for j in range(n)]

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(1, n)) for s, (_, n, _) in enumerate(STAGES)]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        chain = Chain(3, self.resolution)
        chain.add("conv", 32, kernel=(3,), stride=2)
        chain.add("mbconv", 16, kernel=(3,), mid=32, expand_conv=False)
        for s, (width, n, stride) in enumerate(STAGES):
            for j in range(n):
                option = choice[f"s{s + 1}.b{j}"]
                if option == "skip":
                    continue
                kernels, e = option
                chain.add("mbconv", width, kernel=kernels, stride=stride if j == 0 else 1,
                          mid=make_divisible(chain.channels * e, 8))
        chain.add("conv", 1280, kernel=(1,))
        chain.add("gap", 1280)
        chain.add("linear", self.num_classes)
        return chain.blocks
