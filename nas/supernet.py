"""Single-path supernet with superkernels and threshold indicators (Single-Path NAS, S3NAS).

Stamoulis et al., "Single-Path NAS", ECML-PKDD 2019, and Lee et al., "S3NAS",
IEEE TCAD 2022. Every searchable MBConv position holds *one* depthwise
superkernel of the largest size over the widest expansion: smaller kernels are
its centre, narrower expansions its first channels, and a MixConv kernel set
({3,5}, {3,5,7}) gives each channel group its own part of the superkernel.
Which part is used is decided by indicator functions of weight norms:

* the options of a position are put in a chain by cost (for kernels: mean k^2
  over the channel groups; for expand ratios: width), and the step from one
  option to the next is taken when the RMS of the weights that the next option
  adds exceeds a learned threshold, ``1(rms(w_extra) > t)``;
* a skippable position is kept when the RMS of its narrowest expansion group
  exceeds a threshold, and a block is kept only if the one before it in the
  stage is, so the depth of a stage is learned too.

Forward passes use the hard indicators, so the network trained at each step
is exactly the network the thresholds choose; gradients flow through a
sigmoid relaxation (straight-through, as Single-Path NAS does). The expected
latency is the predictor's cost table weighted by the same indicators, hence
differentiable in the thresholds and weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.layers import make_divisible, split_channels
from nas.spaces.base import SKIP, SearchSpace
from hwprof.build_torch import _ACTS, build_torch

#: Temperature of the sigmoid relaxation (statistics are relative to the superkernel's RMS).
TEMPERATURE = 0.5


def indicator(stat: torch.Tensor, threshold: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Hard ``1(stat > threshold * scale)`` in the forward pass, sigmoid gradient in the backward pass."""
    soft = torch.sigmoid((stat / scale - threshold) / TEMPERATURE)
    hard = (stat / scale > threshold).to(stat.dtype)
    return hard + soft - soft.detach()


def _chain_probs(steps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Probabilities of n+1 chained options from n step indicators: p_j = prod(steps[:j]) * (1 - steps[j])."""
    probs, reach = [], torch.ones(())
    for s in steps:
        probs.append(reach * (1 - s))
        reach = reach * s
    probs.append(reach)
    return torch.stack(probs)


@dataclass(frozen=True)
class LayerSpec:
    """One searchable position of a space, as the supernet needs it."""

    variable: int  # index in the space's variables
    c_in: int
    c_out: int
    stride: int
    act: str
    se: bool
    options: tuple  # the space's option values, SKIP included
    skippable: bool


def supernet_layout(space: SearchSpace) -> tuple[list[Block], list[LayerSpec], list[Block]]:
    """Stem blocks, searchable MBConv positions and head blocks of a space.

    Works for spaces whose layer options are ``(kernel(s), expand)`` MBConv
    choices (``s3nas``, ``ofa``); the global choices (e.g. resolution) are held
    at their largest option.

    Raises:
        HwprofError: for a space the supernet cannot represent.
    """
    if any(len(m) != len(v.options) for m, v in zip(space.option_mask(), space.variables)):
        raise HwprofError(f"single-path search trains every option of a space; this is a reduced '{space.name}'",
                          "search a reduced space with --searcher evolutionary or hurricane, "
                          f"or single-path on --space {space.name}")
    genes = []
    for v in space.variables:
        if v.kind == "layer":
            genes.append(next(i for i, o in enumerate(v.options) if o != SKIP))
        else:
            genes.append(int(np.argmax(v.options)) if all(isinstance(o, (int, float)) for o in v.options) else 0)
    arch = space.to_arch(genes)
    layer_vars = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    for i in layer_vars:
        for o in space.variables[i].options:
            if o != SKIP and not (isinstance(o, tuple) and len(o) == 2):
                raise HwprofError(f"space '{space.name}' has layer options the single-path supernet cannot "
                                  "represent (it needs (kernel, expand) MBConv choices)",
                                  "use --space s3nas or --space ofa")
    first = next((i for i, b in enumerate(arch.blocks) if b.op == "mbconv" and b.expand_conv), None)
    if first is None:
        raise HwprofError(f"space '{space.name}' has no MBConv layers: the single-path supernet is convolutional",
                          "search it with --searcher evolutionary, random or hurricane")
    stem, body = list(arch.blocks[:first]), arch.blocks[first:first + len(layer_vars)]
    head = list(arch.blocks[first + len(layer_vars):])
    if len(body) != len(layer_vars) or any(b.op != "mbconv" for b in body):
        raise HwprofError(f"space '{space.name}' does not map one MBConv block to each layer variable",
                          "use --space s3nas or --space ofa")
    specs = []
    for i, b in zip(layer_vars, body):
        v = space.variables[i]
        specs.append(LayerSpec(i, b.c_in, b.c_out, b.stride, b.act, b.se, v.options, v.skip_index is not None))
    return stem, specs, head


class SuperMBConv(nn.Module):
    """An MBConv position holding every (kernel set, expand ratio) option of a layer variable."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        choices = [o for o in spec.options if o != SKIP]
        kernel_sets = list(dict.fromkeys(tuple(o[0]) if isinstance(o[0], tuple) else (o[0],) for o in choices))
        expands = sorted(set(o[1] for o in choices))
        self.kernel_sets = sorted(kernel_sets, key=lambda ks: (np.mean(np.square(ks)), len(ks)))
        self.expands = expands
        self.mids = [make_divisible(round(spec.c_in * e), 8) for e in expands]
        mid, kmax = self.mids[-1], max(max(ks) for ks in kernel_sets)
        self.kmax = kmax
        self.residual = spec.stride == 1 and spec.c_in == spec.c_out
        self.expand = nn.Sequential(nn.Conv2d(spec.c_in, mid, 1, bias=False), nn.BatchNorm2d(mid),
                                    _ACTS[spec.act]())
        self.dw_weight = nn.Parameter(torch.empty(mid, 1, kmax, kmax))
        nn.init.kaiming_normal_(self.dw_weight, mode="fan_out")
        self.dw_bn, self.dw_act = nn.BatchNorm2d(mid), _ACTS[spec.act]()
        self.se = None
        if spec.se:
            red = make_divisible(mid // 4, 8)
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, red, 1), nn.ReLU(),
                                    nn.Conv2d(red, mid, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, spec.c_out, 1, bias=False), nn.BatchNorm2d(spec.c_out))
        # masks[k, e] marks the superkernel weights option (kernel set k, expand e) uses
        masks = torch.zeros(len(self.kernel_sets), len(expands), mid, 1, kmax, kmax)
        for a, ks in enumerate(self.kernel_sets):
            for b, m in enumerate(self.mids):
                start = 0
                for size, k in zip(split_channels(m, len(ks)), ks):
                    lo = (kmax - k) // 2
                    masks[a, b, start:start + size, :, lo:lo + k, lo:lo + k] = 1
                    start += size
        self.register_buffer("masks", masks, persistent=False)
        channel = torch.zeros(len(expands), mid)
        for b, m in enumerate(self.mids):
            channel[b, :m] = 1
        self.register_buffer("channel_masks", channel, persistent=False)
        # what each step of the kernel chain adds (at the widest expansion) and each expand step adds
        full = masks[:, -1]
        self.register_buffer("kernel_step_masks",
                             torch.stack([(full[j + 1] - full[j]).clamp(min=0) for j in range(len(kernel_sets) - 1)])
                             if len(kernel_sets) > 1 else torch.zeros(0, mid, 1, kmax, kmax), persistent=False)
        n_thresholds = (len(kernel_sets) - 1) + (len(expands) - 1) + int(spec.skippable)
        self.thresholds = nn.Parameter(torch.zeros(n_thresholds))
        # option index in the space for each (kernel set, expand) pair
        index = {}
        for i, o in enumerate(spec.options):
            if o != SKIP:
                ks = tuple(o[0]) if isinstance(o[0], tuple) else (o[0],)
                index[(self.kernel_sets.index(ks), expands.index(o[1]))] = i
        self.option_index = index
        self.skip_index = spec.options.index(SKIP) if spec.skippable else None

    @staticmethod
    def _rms(w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return w.pow(2).mean().sqrt()
        return (w.pow(2) * mask).sum().div(mask.sum().clamp(min=1)).sqrt()

    def decisions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(kernel-set probabilities, expand probabilities, keep indicator) from the thresholds."""
        t, w = self.thresholds, self.dw_weight
        scale = self._rms(w).detach().clamp(min=1e-12)  # statistics relative to the whole superkernel's RMS
        nk = len(self.kernel_sets) - 1
        k_steps = [indicator(self._rms(w, self.kernel_step_masks[j]), t[j], scale) for j in range(nk)]
        e_steps = [indicator(self._rms(w[lo:hi]), t[nk + j], scale)
                   for j, (lo, hi) in enumerate(zip(self.mids, self.mids[1:]))]
        keep = (indicator(self._rms(w[: self.mids[0]]), t[-1], scale) if self.spec.skippable
                else torch.ones((), device=w.device))
        return _chain_probs(k_steps), _chain_probs(e_steps), keep

    def option_probs(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Probability of each of the space's options (skip included) at this position."""
        pk, pe, own_keep = self.decisions()
        keep = own_keep if keep is None else keep
        probs = [torch.zeros(())] * len(self.spec.options)
        for (a, b), i in self.option_index.items():
            probs[i] = keep * pk[a] * pe[b]
        if self.skip_index is not None:
            probs[self.skip_index] = 1 - keep
        return torch.stack(probs)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        pk, pe, _ = self.decisions()
        kernel = torch.einsum("a,b,abcxyz->cxyz", pk, pe, self.masks)
        channels = (pe[:, None] * self.channel_masks).sum(0)[None, :, None, None]
        h = self.expand(x)
        h = nn.functional.conv2d(h, self.dw_weight * kernel, stride=self.spec.stride, padding=self.kmax // 2,
                                 groups=h.shape[1])
        h = self.dw_act(self.dw_bn(h)) * channels
        if self.se is not None:
            h = h * self.se(h)
        h = self.project(h)
        if self.residual:
            return x + keep * h
        return h


class Supernet(nn.Module):
    """A single-path supernet over the MBConv choices of a space.

    Args:
        space: An ``s3nas``- or ``ofa``-like space.
        num_classes: Classes of the training data (the head is resized).
        cost_table: The predictor's :class:`~hwprof.predictors.base.CostTable`
            for the space; without it :meth:`expected_latency` is unavailable.
    """

    def __init__(self, space: SearchSpace, num_classes: int, cost_table=None) -> None:
        super().__init__()
        self.space = space
        stem, specs, head = supernet_layout(space)
        head = head[:-1] + [dataclasses.replace(head[-1], c_out=num_classes)] if head[-1].op == "linear" else head
        self.stem = nn.Sequential(*[build_torch(b) for b in stem])
        self.blocks = nn.ModuleList(SuperMBConv(s) for s in specs)
        self.head = nn.Sequential(*[build_torch(b) for b in head])
        self.specs = specs
        # consecutive skippable positions of one stage: a block is kept only if its predecessor is
        self._prev_skippable = [i > 0 and s.skippable and specs[i - 1].skippable for i, s in enumerate(specs)]
        if cost_table is not None:
            layer_names = [space.variables[s.variable].name for s in specs]
            if cost_table.variables != layer_names:
                raise HwprofError("the cost table does not match the supernet's layers",
                                  f"fit the predictor on space '{space.name}'")
            self.register_buffer("costs", torch.tensor(cost_table.matrix(), dtype=torch.float32),
                                 persistent=False)
            self.intercept_ms = float(cost_table.intercept_ms)
        else:
            self.costs = None

    def keeps(self) -> list[torch.Tensor]:
        """Keep indicator of each position, chained within a stage."""
        out: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            keep = block.decisions()[2]
            if self._prev_skippable[i]:
                keep = keep * out[-1]
            out.append(keep)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block, keep in zip(self.blocks, self.keeps()):
            h = block(h, keep)
        return self.head(h)

    def option_probs(self) -> list[torch.Tensor]:
        """Per position, the probability of each option of its layer variable."""
        return [b.option_probs(k) for b, k in zip(self.blocks, self.keeps())]

    def expected_latency(self) -> torch.Tensor:
        """Latency (ms) of the chosen network from the cost table; differentiable in the indicators."""
        if self.costs is None:
            raise HwprofError("this supernet was built without a cost table")
        total = torch.tensor(self.intercept_ms)
        for i, p in enumerate(self.option_probs()):
            total = total + (p * self.costs[i, : len(p)]).sum()
        return total

    def thresholds(self) -> list[nn.Parameter]:
        """The learned thresholds (the architecture parameters)."""
        return [b.thresholds for b in self.blocks]

    def weights(self) -> list[nn.Parameter]:
        """Every parameter but the thresholds."""
        ids = {id(t) for t in self.thresholds()}
        return [p for p in self.parameters() if id(p) not in ids]

    @torch.no_grad()
    def force(self, genes) -> None:
        """Set the thresholds so that the supernet chooses ``genes`` (its layer options)."""
        on, off = -1e9, 1e9
        for block, spec in zip(self.blocks, self.specs):
            option = int(genes[spec.variable])
            t = torch.full_like(block.thresholds, off)
            nk = len(block.kernel_sets) - 1
            if option == block.skip_index:
                t[-1] = off
            else:
                a, b = next(k for k, i in block.option_index.items() if i == option)
                t[:a] = on
                t[nk:nk + b] = on
                if spec.skippable:
                    t[-1] = on
            block.thresholds.copy_(t)

    def largest_genes(self) -> tuple[int, ...]:
        """The genotype of the largest sub-network: every block kept, largest kernel set and expand ratio.

        Fixed by the supernet's structure, so worked out once (self-distillation asks every step).
        """
        if getattr(self, "_largest", None) is None:
            genes = list(self.genes())
            for block, spec in zip(self.blocks, self.specs):
                top = (len(block.kernel_sets) - 1, max(b for _, b in block.option_index))
                genes[spec.variable] = block.option_index[top]
            self._largest = tuple(genes)
        return self._largest

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the largest sub-network (the self-distillation teacher); the thresholds are left as they were."""
        saved = [b.thresholds.detach().clone() for b in self.blocks]
        try:
            self.force(self.largest_genes())
            return self(x)
        finally:
            for b, t in zip(self.blocks, saved):
                b.thresholds.copy_(t)

    @torch.no_grad()
    def genes(self) -> tuple[int, ...]:
        """The genotype the thresholds choose (global choices at their largest option)."""
        genes = []
        for v in self.space.variables:
            genes.append(int(np.argmax(v.options)) if v.kind != "layer" and all(
                isinstance(o, (int, float)) for o in v.options) else 0)
        for spec, p in zip(self.specs, self.option_probs()):
            genes[spec.variable] = int(torch.argmax(p))
        return self.space.canonical(tuple(genes))

    def arch(self) -> Arch:
        """The chosen network as an :class:`Arch` of the space."""
        return self.space.to_arch(self.genes())
