"""S3NAS post-processing: add squeeze-and-excitation and h-swish where they pay on the target.

After scaling, S3NAS tries the two MobileNetV3 additions (Howard et al., ICCV
2019) on the found network: SE blocks in the MBConv blocks of the later half
of the network, and h-swish in place of ReLU there and in the stem and head.
A variant is kept only if its latency on the target stays within the
constraint *and* its score beats the plain network's. Both costs come from the
target, so the choice is device-aware: where a device cannot run h-swish, h-sigmoid
or global pooling and falls back to the host CPU (simulated ``hexagon-dsp``),
the variants are slow there and are not chosen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from hwprof.arch import Arch
from nas.scaling import stages


def _later_half(arch: Arch) -> set[int]:
    mb = [i for start, end in stages(arch.blocks) for i in range(start, end)]
    return set(mb[len(mb) // 2:])


def with_se(arch: Arch) -> Arch:
    """SE in every MBConv block of the later half of the network."""
    later = _later_half(arch)
    return Arch(tuple(dataclasses.replace(b, se=True) if i in later else b for i, b in enumerate(arch.blocks)))


def with_hswish(arch: Arch) -> Arch:
    """h-swish instead of ReLU in the later half's MBConv blocks, the stem and the head convolutions."""
    later = _later_half(arch)
    last_mb = max(later) if later else len(arch.blocks)
    out = []
    for i, b in enumerate(arch.blocks):
        stem_or_head = b.op == "conv" and (i == 0 or i > last_mb)
        if b.act in ("relu", "relu6") and (i in later or stem_or_head):
            b = dataclasses.replace(b, act="hswish")
        out.append(b)
    return Arch(tuple(out))


VARIANTS: dict[str, Callable[[Arch], Arch]] = {
    "se": with_se,
    "hswish": with_hswish,
    "se+hswish": lambda a: with_hswish(with_se(a)),
}


@dataclass
class PostprocessResult:
    """What post-processing did.

    Attributes:
        arch: The kept network (the input when no variant paid).
        applied: Name of the kept variant, or None.
        base_latency_ms: Latency of the input network.
        base_score: Score of the input network.
        variants: Per variant: name, latency_ms, fits, score (None when it did not fit).
    """

    arch: Arch
    applied: str | None
    base_latency_ms: float
    base_score: float | None
    variants: list[dict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether a variant was kept."""
        return self.applied is not None

    def to_dict(self) -> dict:
        """JSON-able summary."""
        return {"applied": self.applied, "arch_hash": self.arch.hash, "base_latency_ms": self.base_latency_ms,
                "base_score": self.base_score, "variants": self.variants}


def postprocess(arch: Arch, latency_ms: Callable[[Arch], float], score: Callable[[Arch], float],
                limit_ms: float) -> PostprocessResult:
    """Keep the best-scoring SE / h-swish variant that fits ``limit_ms`` and beats ``arch``.

    Args:
        arch: The network after search (and scaling).
        latency_ms: Latency of a network on the target.
        score: Higher is better (e.g. top-1 after short training); called only
            when some variant fits.
        limit_ms: The latency constraint.
    """
    base_ms = latency_ms(arch)
    rows, fitting = [], []
    for name, make in VARIANTS.items():
        variant = make(arch)
        if variant.hash == arch.hash:
            continue
        ms = latency_ms(variant)
        rows.append({"name": name, "latency_ms": ms, "fits": ms <= limit_ms, "score": None})
        if ms <= limit_ms:
            fitting.append((rows[-1], variant))
    if not fitting:
        return PostprocessResult(arch, None, base_ms, None, rows)
    base_score = score(arch)
    best_row, best_arch = None, arch
    for row, variant in fitting:
        row["score"] = score(variant)
        if row["score"] > (best_row["score"] if best_row else base_score):
            best_row, best_arch = row, variant
    return PostprocessResult(best_arch, best_row["name"] if best_row else None, base_ms, base_score, rows)
