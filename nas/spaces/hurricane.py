"""HURRICANE operator pool, from which per-device spaces are selected.

Zhang et al., "Fast Hardware-Aware Neural Architecture Search" (HURRICANE),
CVPR Workshops 2020. HURRICANE starts from a large pool of 32 operators of
MBConv, ShuffleNetV2 and Xception-style families with SE and activation
variants, and keeps per device the efficient ones. The backbone follows the
Single-Path One-Shot ShuffleNetV2 supernet it is compared with (Guo et al.,
ECCV 2020): stem conv 16 stride 2, 20 layers in stages of 4, 4, 8, 4 with
64, 160, 320, 640 channels (first layer of each stage strided), 1x1 conv to
1024, pooling, classifier; 224 px. Candidates per layer: MBConv k{3,5,7} x
e{3,6} x SE{no,yes} x {ReLU, h-swish} (24), ShuffleNetV2 k{3,5,7} x SE{no,yes}
(6), Xception-style ShuffleNetV2 (1), and skip for non-first layers (32 in all).
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Block
from hwprof.layers import make_divisible
from hwprof.registry import SPACES
from nas.spaces.base import Chain, SearchSpace, Variable, option_variable

STAGES = ((64, 4), (160, 4), (320, 8), (640, 4))


def _operators() -> tuple[list[tuple], list[str]]:
    ops, labels = [], []
    for k in (3, 5, 7):
        for e in (3, 6):
            for se in (False, True):
                for act in ("relu", "hswish"):
                    ops.append(("mbconv", k, e, se, act))
                    labels.append(f"mb_k{k}_e{e}" + ("_se" if se else "") + ("_hs" if act == "hswish" else ""))
    for k in (3, 5, 7):
        for se in (False, True):
            ops.append(("shuffle", k, 0, se, "relu"))
            labels.append(f"shuffle_k{k}" + ("_se" if se else ""))
    ops.append(("xception", 3, 0, False, "relu"))
    labels.append("xception")
    return ops, labels


OPERATORS, LABELS = _operators()


@SPACES.register("hurricane")
class HurricaneSpace(SearchSpace):
    """HURRICANE's 32-operator pool on a 20-layer ShuffleNetV2-style backbone."""

    name = "hurricane"
    description = "HURRICANE operator pool: 20 layers x 32 ops (MBConv/SE/h-swish, ShuffleNetV2, Xception, skip), 224 px"
    reference = "Zhang et al., HURRICANE (Fast Hardware-Aware NAS), CVPRW 2020"

    def __init__(self, resolution: int = 224, num_classes: int = 1000) -> None:
        self.resolution = resolution
        self.num_classes = num_classes

    def _variables(self) -> list[Variable]:
        return [option_variable(f"s{s + 1}.b{j}", OPERATORS, LABELS, j > 0)
                for s, (_, n) in enumerate(STAGES) for j in range(n)]

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return [tuple(f"s{s + 1}.b{j}" for j in range(1, n)) for s, (_, n) in enumerate(STAGES)]

    def _build(self, choice: dict[str, Any]) -> list[Block]:
        chain = Chain(3, self.resolution)
        chain.add("conv", 16, kernel=(3,), stride=2)
        for s, (width, n) in enumerate(STAGES):
            for j in range(n):
                option = choice[f"s{s + 1}.b{j}"]
                if option == "skip":
                    continue
                op, k, e, se, act = option
                stride = 2 if j == 0 else 1
                if op == "mbconv":
                    chain.add("mbconv", width, kernel=(k,), stride=stride,
                              mid=make_divisible(chain.channels * e, 8), se=se, act=act)
                else:
                    chain.add(op, width, kernel=(k,), stride=stride, se=se, act=act)
        chain.add("conv", 1024, kernel=(1,))
        chain.add("gap", 1024)
        chain.add("linear", self.num_classes)
        return chain.blocks
