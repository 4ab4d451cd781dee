"""Vision-transformer space in the style of AutoFormer.

Chen, Peng, Fu and Ling, "AutoFormer: Searching Transformers for Visual
Recognition", ICCV 2021: a ViT/DeiT (Dosovitskiy et al., ICLR 2021; Touvron
et al., ICML 2021) whose embedding dimension is one choice for the whole
network and whose depth, heads and MLP ratio are chosen per layer.
AutoFormer-Tiny searches embedding {192, 216, 240}, MLP ratio {3.5, 4},
heads {3, 4} and depth {12, 13, 14}; here heads are {3, 4, 6} and MLP ratio
{3, 3.5, 4} (every head count divides every embedding), depth is 10-14 so
edge budgets have room, and the patch size {16, 32} and input resolution
{128, 160, 192, 224} are searched too (fewer tokens is the cheapest way to a
faster ViT). Each layer is a pre-norm encoder layer (LayerNorm, fused q/k/v
projection, multi-head attention, output projection, residual; LayerNorm,
MLP with GELU, residual). Tokens are mean-pooled for the classifier (no class
token), so every layer sees (resolution / patch)^2 tokens.
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, gelu_activation, option_variable

EMBEDS = (192, 216, 240)
HEADS = (3, 4, 6)
MLP_RATIOS = (3.0, 3.5, 4.0)
PATCHES = (16, 32)
RESOLUTIONS = (128, 160, 192, 224)
MAX_DEPTH, MIN_DEPTH = 14, 10


@SPACES.register("vit")
class ViTSpace(SearchSpace):
    """AutoFormer-style ViT: embedding, patch size, resolution; per layer heads x MLP ratio or skip.

    Args:
        num_classes: Classifier outputs.
        gelu: GELU form of the MLPs, ``erf`` (nn.GELU(), the papers') or ``tanh``
            (nn.GELU(approximate="tanh")); onnxruntime fuses the first into one kernel
            and runs the second as its elementwise chain, so measure the one you ship.
    """

    name = "vit"
    description = ("AutoFormer-style ViT: embed {192,216,240}, patch {16,32}, resolution 128-224, "
                   "depth 10-14, heads {3,4,6} x MLP ratio {3,3.5,4} per layer")
    reference = "Chen et al., AutoFormer, ICCV 2021"
    deployment_values = {"resolution": 224, "patch": 16}  # DeiT and AutoFormer ship 16-px patches at 224 px
    input_grid_variables = ("resolution", "patch")

    def __init__(self, num_classes: int = 1000, gelu: str = "erf") -> None:
        self.num_classes = num_classes
        self.gelu = gelu
        self._act = gelu_activation(gelu)

    def _variables(self) -> list[Variable]:
        variables = [Variable("embed", EMBEDS, tuple(map(str, EMBEDS)), "global"),
                     Variable("patch", PATCHES, tuple(map(str, PATCHES)), "global"),
                     Variable("resolution", RESOLUTIONS, tuple(map(str, RESOLUTIONS)), "global")]
        options = [(h, r) for h in HEADS for r in MLP_RATIOS]
        labels = [f"h{h}_r{r:g}" for h, r in options]
        variables += [option_variable(f"l{i}", options, labels, i >= MIN_DEPTH) for i in range(MAX_DEPTH)]
        return variables

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"l{i}" for i in range(MIN_DEPTH, MAX_DEPTH))]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        embed, patch = choice["embed"], choice["patch"]
        chain = Chain(3, choice["resolution"])
        chain.add("patchembed", embed, kernel=(patch,), stride=patch, position=True)
        for i in range(MAX_DEPTH):
            option = choice[f"l{i}"]
            if option == "skip":
                continue
            heads, ratio = option
            chain.add("transformer", embed, groups=heads, mid=int(round(embed * ratio)), act=self._act)
        chain.add("tokenhead", embed)
        chain.add("linear", self.num_classes)
        return chain.blocks
