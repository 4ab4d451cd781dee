"""Recalibrating a few-shot latency predictor where a search under a latency target ended up.

A transfer predictor fitted on 20 networks of a new device is right on
average (LiteRT int8 on this machine: 6-7 % MAPE over random networks), but a
search under a target takes its winner from one corner of the space: the
best-scoring networks predicted just under the target, which share their
large kernels and expansion ratios. The predictor's error there is a bias
shared by all of them, not noise, and the winner inherits it. So after the
search, the best-scoring networks predicted near the target are measured,
the predictor is refitted with them added to the networks it had, every
scored network is priced again, and the search runs again with the refitted
predictor (scores are cached, so networks seen before cost nothing); the
winner is the best of both searches' networks under the refitted predictor.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from hwprof.arch import Arch

#: Networks predicted within this range of the latency target (as fractions of it) are near it.
NEAR_TARGET = (0.85, 1.15)


def networks_near_target(history: Sequence, latency_ms: float, count: int) -> list:
    """The ``count`` best-scoring distinct networks predicted within NEAR_TARGET of ``latency_ms``; if there
    are fewer, the rest are those predicted closest to it."""
    distinct = list({c.arch.hash: c for c in history}.values())
    low, high = NEAR_TARGET[0] * latency_ms, NEAR_TARGET[1] * latency_ms
    near = sorted((c for c in distinct if low <= c.latency_ms <= high), key=lambda c: (-c.score, c.latency_ms))
    chosen = near[:count]
    if len(chosen) < count:
        taken = {c.arch.hash for c in chosen}
        rest = sorted((c for c in distinct if c.arch.hash not in taken), key=lambda c: abs(c.latency_ms - latency_ms))
        chosen += rest[:count - len(chosen)]
    return chosen


def recalibrate(result, latency_ms: float, count: int,
                refit: Callable[[list[Arch]], tuple[object, dict[str, float]]],
                say: Callable[[str], None] = lambda _m: None):
    """Measure the networks near the target, refit the predictor with them, choose the winner again.

    Args:
        result: The search's :class:`~nas.searchers.base.SearchResult`.
        latency_ms: The latency target.
        count: How many networks to measure.
        refit: Measures the networks given and refits the predictor with them; returns the refitted
            predictor and the measured ms of each network by hash.
        say: Progress lines.

    Returns:
        (refitted predictor, the result priced by it, a record for ``summary.json``).
    """
    from nas.searchers.base import repriced

    near = networks_near_target(result.history, latency_ms, count)
    say(f"recalibrating near the {latency_ms:g} ms target: measuring the {len(near)} best-scoring networks "
        f"predicted within {NEAR_TARGET[0]:.0%}-{NEAR_TARGET[1]:.0%} of it")
    predictor, measured = refit([c.arch for c in near])
    before = np.array([c.latency_ms for c in near])
    actual = np.array([measured[c.arch.hash] for c in near])
    after = repriced(result, predictor)
    record = {
        "networks": [{"arch_hash": c.arch.hash, "score": c.score, "predicted_before_ms": float(p),
                      "measured_ms": float(m)} for c, p, m in zip(near, before, actual)],
        "error_before": float(np.mean(before / actual - 1)),
        "mape_before": float(np.mean(np.abs(before / actual - 1))),
        "winner_before": None if result.best is None else {
            "arch_hash": result.best.arch.hash, "score": result.best.score,
            "predicted_before_ms": result.best.latency_ms,
            "predicted_after_ms": float(predictor.predict([result.best.arch])[0])},
        "near_target": list(NEAR_TARGET),
    }
    return predictor, after, record


def merged(first, second):
    """One search result holding ``first``'s networks then ``second``'s new ones (both priced by the same
    predictor), with its front and winner chosen over all of them; their wall times add up."""
    from nas.searchers.base import summarised

    seen = {c.arch.hash for c in first.history}
    steps = 1 + max((c.step for c in first.history), default=-1)
    new = [c for c in second.history if c.arch.hash not in seen]
    later = [replace(c, step=c.step + steps, index=len(first.history) + i) for i, c in enumerate(new)]
    return summarised(replace(second, history=first.history + later, wall_s=first.wall_s + second.wall_s))


def recalibrated_search(result, latency_ms: float, count: int,
                        refit: Callable[[list[Arch]], tuple[object, dict[str, float]]],
                        search: Callable[[object], object], say: Callable[[str], None] = lambda _m: None):
    """:func:`recalibrate`, then ``search`` again with the refitted predictor, and :func:`merged` with the first.

    Returns:
        (refitted predictor, the merged result, :func:`recalibrate`'s record with how many new networks the
        second search scored).
    """
    predictor, first, record = recalibrate(result, latency_ms, count, refit, say)
    say("searching again with the recalibrated predictor")
    both = merged(first, search(predictor))
    record["new_networks_searched_again"] = len(both.history) - len(first.history)
    return predictor, both, record
