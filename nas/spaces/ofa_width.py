"""Once-for-All MobileNetV3 with per-layer width choices (GoldenNAS dynamic channel scaling).

GoldenNAS (``../shared/papers/goldennas.txt``) adds channel-level search to
the OFA space: besides kernel size, expand ratio and depth, every block picks
how many output channels it has, as a multiplier of its stage's base width.
Here each searchable block chooses a width multiplier from
:data:`WIDTH_MULTS` (channels rounded to a multiple of 8), together with its
kernel and expand ratio, so a layer option is ``k{k}_e{e}_w{w}``. A block keeps
its residual connection only when its input and output widths agree (stride
1), so the depth/width interplay is part of the search.

A layer's block depends on the previous kept block's width, so the space is
not *separable*: per-(layer, choice) cost tables are first-order
approximations (flagged ``exact=False``) rather than exact.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Chain, Variable, option_variable
from nas.spaces.ofa import ACTS, EXPANDS, KERNELS, MAX_DEPTH, MIN_DEPTH, RESOLUTIONS, SES, STRIDES, OFASpace

WIDTH_MULTS = (0.75, 1.0, 1.25)


@SPACES.register("ofa-width")
class OFAWidthSpace(OFASpace):
    """OFA MobileNetV3 with a width multiplier per block (GoldenNAS dynamic channel scaling)."""

    name = "ofa-width"
    description = ("OFA MobileNetV3 with per-block width multipliers {0.75,1,1.25} (GoldenNAS dynamic channel "
                   "scaling): kernel x expand x width per block, depth {2,3,4}, resolution 128-224")
    reference = "Cai et al., Once-for-All, ICLR 2020; GoldenNAS dynamic channel scaling"
    separable = False

    def _variables(self) -> list[Variable]:
        variables = [Variable("resolution", RESOLUTIONS, tuple(map(str, RESOLUTIONS)), "global")]
        options = [(k, e, w) for k in KERNELS for e in EXPANDS for w in WIDTH_MULTS]
        labels = [f"k{k}_e{e}_w{w:g}" for k, e, w in options]
        for s in range(5):
            for j in range(MAX_DEPTH):
                variables.append(option_variable(f"s{s + 1}.b{j}", options, labels, j >= MIN_DEPTH))
        return variables

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
                k, e, mult = option
                chain.add("mbconv", make_divisible(w[s + 2] * mult, 8), kernel=(k,),
                          stride=STRIDES[s] if j == 0 else 1, mid=make_divisible(round(chain.channels * e), 8),
                          se=SES[s], act=ACTS[s])
        chain.add("conv", w[7], kernel=(1,), act="hswish")
        chain.add("gap", w[7])
        chain.add("conv", w[8], kernel=(1,), act="hswish", bn=False)
        chain.add("linear", self.num_classes)
        return chain.blocks
