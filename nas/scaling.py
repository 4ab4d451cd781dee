"""Compound scaling (EfficientNet) of a searched network up to a latency limit.

Tan and Le, "EfficientNet", ICML 2019: depth, width and resolution grow
together as ``alpha^phi``, ``beta^phi``, ``gamma^phi`` with alpha = 1.2,
beta = 1.1, gamma = 1.15 (``alpha * beta^2 * gamma^2 ~ 2``: each unit of phi
about doubles the MACs). S3NAS scales the network found by the search to the
largest one whose latency stays within the constraint. Depth repeats the last
block of each MBConv stage; width scales every channel count (rounded to 8)
but the classifier's; resolution is rounded to a multiple of 8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from hwprof.arch import Arch, Block
from hwprof.layers import make_divisible
from nas.spaces.base import Chain

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def stages(blocks: tuple[Block, ...]) -> list[tuple[int, int]]:
    """(start, end) of each MBConv stage: a block that changes shape, then blocks that keep it."""
    out: list[tuple[int, int]] = []
    for i, b in enumerate(blocks):
        if b.op != "mbconv" or not b.expand_conv:
            continue
        continues = out and out[-1][1] == i and b.stride == 1 and b.c_in == b.c_out
        if continues:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def _fields(b: Block) -> dict:
    return {f.name: getattr(b, f.name) for f in dataclasses.fields(b)
            if f.name not in ("op", "c_in", "c_out", "resolution", "mid")}


def scale_arch(arch: Arch, depth: float = 1.0, width: float = 1.0, resolution: float = 1.0) -> Arch:
    """The network with stage depths times ``depth``, channels times ``width``, input size times ``resolution``."""
    runs = {start: end for start, end in stages(arch.blocks)}
    chain = Chain(arch.blocks[0].c_in, max(8, int(round(arch.resolution * resolution / 8)) * 8))
    i, blocks = 0, arch.blocks
    while i < len(blocks):
        group = blocks[i:runs[i]] if i in runs else blocks[i:i + 1]
        if i in runs:
            n = max(len(group), int(round(len(group) * depth)))
            group = group + (group[-1],) * (n - len(group))
        for j, b in enumerate(group):
            kwargs = _fields(b)
            if j > 0 and i in runs:
                kwargs["stride"] = 1
            last = i + len(group) >= len(blocks) and j == len(group) - 1
            c_out = b.c_out if (b.op == "linear" and last) or b.op == "gap" else make_divisible(b.c_out * width, 8)
            if b.op == "gap":
                c_out = chain.channels
            if b.op in ("mbconv", "resblock"):
                ratio = b.mid / b.c_in
                kwargs["mid"] = chain.channels if not b.expand_conv else make_divisible(chain.channels * ratio, 8)
            if b.op == "conv" and kwargs.get("residual") and chain.channels != c_out:
                kwargs["residual"] = False
            chain.add(b.op, c_out, **kwargs)
        i += len(blocks[i:runs[i]]) if i in runs else 1
    return Arch(tuple(chain.blocks))


@dataclass
class ScalingResult:
    """What compound scaling did.

    Attributes:
        arch: The scaled network (the input network when nothing fitted).
        phi: Compound coefficient used (0: unchanged).
        depth: Depth multiplier ``alpha^phi``.
        width: Width multiplier ``beta^phi``.
        resolution: Resolution multiplier ``gamma^phi``.
        latency_ms: Latency of ``arch``.
        tried: (phi, latency ms, fits) of every network tried.
    """

    arch: Arch
    phi: float
    depth: float
    width: float
    resolution: float
    latency_ms: float
    tried: list[tuple[float, float, bool]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether scaling changed the network."""
        return self.phi > 0

    def to_dict(self) -> dict:
        """JSON-able summary."""
        return {"phi": self.phi, "depth": self.depth, "width": self.width, "resolution": self.resolution,
                "latency_ms": self.latency_ms, "arch_hash": self.arch.hash, "changed": self.changed,
                "tried": [{"phi": p, "latency_ms": ms, "fits": ok} for p, ms, ok in self.tried]}


def compound_scale(arch: Arch, latency_ms: Callable[[Arch], float], limit_ms: float, step: float = 0.1,
                   max_phi: float = 4.0, coefficients: tuple[float, float, float] = (ALPHA, BETA, GAMMA)
                   ) -> ScalingResult:
    """Scale ``arch`` up to the largest compound coefficient whose latency stays within ``limit_ms``.

    Latency grows with phi, so phi is raised in steps until a network no longer
    fits; networks that round to the one before are skipped.

    Args:
        arch: The searched network.
        latency_ms: Latency of a network on the target (a predictor or a measurement).
        limit_ms: The latency constraint.
        step: Increment of phi.
        max_phi: Largest phi tried.
        coefficients: (alpha, beta, gamma).
    """
    alpha, beta, gamma = coefficients
    base_ms = latency_ms(arch)
    best = ScalingResult(arch, 0.0, 1.0, 1.0, 1.0, base_ms, [(0.0, base_ms, base_ms <= limit_ms)])
    if base_ms > limit_ms:
        return best
    seen = {arch.hash}
    k = 1
    while k * step <= max_phi + 1e-9:
        phi = round(k * step, 6)
        k += 1
        candidate = scale_arch(arch, alpha**phi, beta**phi, gamma**phi)
        if candidate.hash in seen:
            continue
        seen.add(candidate.hash)
        ms = latency_ms(candidate)
        fits = ms <= limit_ms
        best.tried.append((phi, ms, fits))
        if not fits:
            break
        best = ScalingResult(candidate, phi, alpha**phi, beta**phi, gamma**phi, ms, best.tried)
    return best
