"""Once-for-All ResNet50 space.

Cai et al., Once-for-All (ICLR 2020), ``OFAResNets`` in the reference code: a
three-conv input stem (the middle, residual conv may be skipped), max pooling,
then bottleneck stages of widths 256, 512, 1024, 2048 with base depths 2, 2, 4, 2
plus {0, 1, 2} extra blocks; each block picks bottleneck expand ratio
{0.2, 0.25, 0.35}; the stem convs and each stage pick a width multiplier
{0.65, 0.8, 1.0}; 'avgpool_conv' shortcuts; resolution 128-224 in steps of 4.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, option_variable

EXPANDS = (0.2, 0.25, 0.35)
WIDTH_MULTS = (0.65, 0.8, 1.0)
BASE_DEPTHS = (2, 2, 4, 2)
EXTRA_DEPTH = 2
STAGE_WIDTHS = (256, 512, 1024, 2048)
STRIDES = (1, 2, 2, 2)
RESOLUTIONS = tuple(range(128, 225, 4))


def _width_var(name: str) -> Variable:
    return Variable(name, WIDTH_MULTS, tuple(f"w{w}" for w in WIDTH_MULTS), "global")


@SPACES.register("resnet")
class ResNetSpace(SearchSpace):
    """OFA-ResNet50: depth, bottleneck expand ratio, width multipliers, resolution."""

    name = "resnet"
    description = "OFA-ResNet50: depth +{0,1,2}/stage, expand {0.2,0.25,0.35}, width {0.65,0.8,1.0}, resolution 128-224"
    reference = "Cai et al., Once-for-All, ICLR 2020 (OFAResNets)"
    deployment_values = {"resolution": 224}  # ImageNet networks ship at 224 px

    def __init__(self, num_classes: int = 1000) -> None:
        self.num_classes = num_classes

    def _variables(self) -> list[Variable]:
        variables = [Variable("resolution", RESOLUTIONS, tuple(map(str, RESOLUTIONS)), "global"),
                     _width_var("stem.w0"), _width_var("stem.w1"),
                     Variable("stem.mid", ("keep", "skip"), ("keep", "skip"))]
        labels = [f"e{e}" for e in EXPANDS]
        for s, base in enumerate(BASE_DEPTHS):
            variables.append(_width_var(f"s{s + 1}.w"))
            for j in range(base + EXTRA_DEPTH):
                variables.append(option_variable(f"s{s + 1}.b{j}", list(EXPANDS), labels, j >= base))
        return variables

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(base, base + EXTRA_DEPTH))
                for s, base in enumerate(BASE_DEPTHS)]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        stem_out = make_divisible(64 * choice["stem.w1"], 8)
        stem_mid = make_divisible(make_divisible(64 * choice["stem.w0"], 8) // 2, 8)
        chain = Chain(3, choice["resolution"])
        chain.add("conv", stem_mid, kernel=(3,), stride=2)
        if choice["stem.mid"] == "keep":
            chain.add("conv", stem_mid, kernel=(3,), residual=True)
        chain.add("conv", stem_out, kernel=(3,))
        chain.add("maxpool", stem_out, kernel=(3,), stride=2)
        for s, base in enumerate(BASE_DEPTHS):
            width = make_divisible(STAGE_WIDTHS[s] * choice[f"s{s + 1}.w"], 8)
            for j in range(base + EXTRA_DEPTH):
                option = choice[f"s{s + 1}.b{j}"]
                if option == "skip":
                    continue
                chain.add("resblock", width, kernel=(3,), stride=STRIDES[s] if j == 0 else 1,
                          mid=make_divisible(round(width * option), 8))
        chain.add("gap", chain.channels)
        chain.add("linear", self.num_classes)
        return chain.blocks
