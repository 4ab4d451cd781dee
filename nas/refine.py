"""S3NAS's steps after the search: compound scaling, then SE / h-swish post-processing.

The scaled and post-processed networks leave the search space the latency
predictor was fitted on (new widths, depths, resolutions and blocks), so their
latency is taken on the target itself (:func:`hwprof.interleave.network_timer`);
on a simulated device that is the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from hwprof.arch import Arch
from nas.postprocess import PostprocessResult, postprocess
from nas.scaling import ScalingResult, compound_scale


def short_training_score(data, epochs: int = 3, batch: int = 64, seed: int = 0) -> Callable[[Arch], float]:
    """A function scoring networks by held-out top-1 after ``epochs`` of training on ``data`` (same seed for all)."""
    import torch

    from nas.accuracy.train import with_classes
    from hwprof.build_torch import build_torch
    from nas.training import top1, train_classifier

    def score(arch: Arch) -> float:
        torch.manual_seed(seed)
        net = build_torch(with_classes(arch, len(data.classes)))
        train_classifier(net, data.x_train, data.y_train, epochs, batch, seed)
        return top1(net, data.x_val, data.y_val)

    return score


@dataclass
class Refined:
    """The network after scaling and post-processing, and what each step did."""

    arch: Arch
    latency_ms: float
    scaling: ScalingResult | None
    post: PostprocessResult | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"arch_hash": self.arch.hash, "latency_ms": self.latency_ms,
                "scaling": self.scaling.to_dict() if self.scaling else None,
                "postprocess": self.post.to_dict() if self.post else None}


def refine(arch: Arch, limit_ms: float, latency_ms: Callable[[Arch], float], score: Callable[[Arch], float],
           scale: bool = True, post: bool = True, status: Callable[[str], None] = lambda _m: None) -> Refined:
    """Scale ``arch`` up within ``limit_ms``, then add SE / h-swish where they pay.

    Args:
        arch: The searched network.
        limit_ms: The latency constraint.
        latency_ms: Latency of a network on the target.
        score: Score of a network for post-processing (higher is better).
        scale: Run compound scaling.
        post: Run post-processing.
        status: Receives one line per step.
    """
    scaling = None
    if scale:
        status("compound scaling within the latency constraint")
        scaling = compound_scale(arch, latency_ms, limit_ms)
        arch = scaling.arch
    processed = None
    if post:
        status("post-processing: trying SE and h-swish")
        processed = postprocess(arch, latency_ms, score, limit_ms)
        arch = processed.arch
    return Refined(arch, latency_ms(arch), scaling, processed)
