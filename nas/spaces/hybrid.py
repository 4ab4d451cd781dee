"""Hybrid convolution/attention space in the style of EfficientFormer.

Li, Yuan, Wen, Hu, Evangelidis, Tulyakov, Wang and Ren, "EfficientFormer:
Vision Transformers at MobileNet Speed", NeurIPS 2022: a two-conv stem (3x3
stride 2, twice, BN, ReLU), four stages joined by 3x3 stride-2 conv
embeddings, 4-D MetaBlocks (a 3x3 average-pooling token mixer and a 1x1-conv
MLP with GELU) in the early stages, and, at the end of the last stage, the
image flattened to tokens and 3-D MetaBlocks (LayerNorm, multi-head
self-attention, LayerNorm, MLP). Its latency-driven slimming searches the
widths, the depths, the MLP ratios and how many of the last blocks are
attention blocks; so does this space: per-stage width, per-block MLP ratio
{3, 4} or skip (depth), and ``attention`` = how many of the last stage's
blocks are attention blocks (0 to 6; 0 is an all-convolutional network with
global average pooling). Attention uses 32-dimensional heads as the paper's
does; the paper's attention biases and layer scales are left out. L1's
configuration (widths 48, 96, 224, 448; depths 3, 2, 6, 4; one attention
block) is in the space.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, gelu_activation, option_variable

STAGE_WIDTHS = ((32, 48, 64), (64, 96, 128), (160, 224, 288), (320, 384, 448))
MAX_DEPTHS = (3, 3, 6, 6)
MIN_DEPTHS = (1, 1, 2, 2)
MLP_RATIOS = (3, 4)
ATTENTION_BLOCKS = tuple(range(7))
RESOLUTIONS = (160, 192, 224)
HEAD_DIM = 32


@SPACES.register("hybrid")
class HybridSpace(SearchSpace):
    """EfficientFormer-style hybrid: conv MetaBlocks, then attention blocks at the end; the boundary is searched.

    Args:
        num_classes: Classifier outputs.
        gelu: GELU form of the MLPs, ``erf`` (nn.GELU(), the papers') or ``tanh``
            (nn.GELU(approximate="tanh")); onnxruntime fuses the first into one kernel
            and runs the second as its elementwise chain, so measure the one you ship.
    """

    name = "hybrid"
    description = ("EfficientFormer-style hybrid: 4 stages of pooling MetaBlocks, the last stage's final "
                   "0-6 blocks attention; widths, depths, MLP ratio {3,4}, resolution 160-224")
    reference = "Li et al., EfficientFormer, NeurIPS 2022"
    deployment_values = {"resolution": 224}
    separable = False  # a block's kind depends on the global attention count
    profile_sweeps = ("attention",)

    def __init__(self, num_classes: int = 1000, gelu: str = "erf") -> None:
        self.num_classes = num_classes
        self.gelu = gelu
        self._act = gelu_activation(gelu)

    def _variables(self) -> list[Variable]:
        variables = [Variable("resolution", RESOLUTIONS, tuple(map(str, RESOLUTIONS)), "global"),
                     Variable("attention", ATTENTION_BLOCKS, tuple(map(str, ATTENTION_BLOCKS)), "global")]
        variables += [Variable(f"s{s + 1}.width", w, tuple(map(str, w)), "global") for s, w in enumerate(STAGE_WIDTHS)]
        labels = tuple(f"r{r}" for r in MLP_RATIOS)
        for s, depth in enumerate(MAX_DEPTHS):
            variables += [option_variable(f"s{s + 1}.b{j}", MLP_RATIOS, labels, j >= MIN_DEPTHS[s])
                          for j in range(depth)]
        return variables

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(MIN_DEPTHS[s], d)) for s, d in enumerate(MAX_DEPTHS)]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        widths = [choice[f"s{s + 1}.width"] for s in range(4)]
        chain = Chain(3, choice["resolution"])
        chain.add("conv", widths[0] // 2, kernel=(3,), stride=2, act="relu")
        chain.add("conv", widths[0], kernel=(3,), stride=2, act="relu")
        attention = 0
        for s, depth in enumerate(MAX_DEPTHS):
            if s > 0:
                chain.add("conv", widths[s], kernel=(3,), stride=2, act="none")
            ratios = [choice[f"s{s + 1}.b{j}"] for j in range(depth) if choice[f"s{s + 1}.b{j}"] != "skip"]
            if s == 3:
                attention = min(choice["attention"], len(ratios))
            for j, ratio in enumerate(ratios):
                if s == 3 and j == len(ratios) - attention:
                    chain.add("flatten", widths[s])
                if s == 3 and j >= len(ratios) - attention:
                    chain.add("transformer", widths[s], groups=widths[s] // HEAD_DIM, mid=widths[s] * ratio,
                              act=self._act)
                else:
                    chain.add("poolmixer", widths[s], kernel=(3,), mid=widths[s] * ratio, act=self._act)
        if attention:
            chain.add("tokenhead", widths[3])
        else:
            chain.add("gap", widths[3])
        chain.add("linear", self.num_classes)
        return chain.blocks
