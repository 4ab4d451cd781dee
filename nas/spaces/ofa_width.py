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

from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Variable, option_variable
from nas.spaces.ofa import EXPANDS, KERNELS, MAX_DEPTH, MIN_DEPTH, RESOLUTIONS, OFASpace

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

    def _block_shape(self, stage: int, option: tuple) -> tuple[int, int, int]:
        k, e, mult = option
        return make_divisible(self.widths[stage + 2] * mult, 8), k, e
