"""Drawing and varying genotypes under a latency constraint (the predictor is free to ask)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from nas.searchers.base import Constraint, Evaluator

MAX_TRIES = 20


def redraw_infeasible(evaluator: Evaluator, constraint: Constraint, draw: Callable[[], tuple[int, ...]],
            n: int) -> list[tuple[int, ...]]:
    """``n`` genotypes from ``draw``, redrawn (up to MAX_TRIES rounds) while infeasible."""
    out = [draw() for _ in range(n)]
    if constraint.latency_ms is None:
        return out
    for _ in range(MAX_TRIES):
        bad = np.flatnonzero(~constraint.feasible(evaluator.latency(np.array(out))))
        if not len(bad):
            break
        for i in bad:
            out[i] = draw()
    return out


def feasible_samples(evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator, n: int,
                     allowed: Sequence[Sequence[int]] | None = None) -> list[tuple[int, ...]]:
    """``n`` random genotypes, predicted feasible where possible."""
    space = evaluator.space
    return redraw_infeasible(evaluator, constraint, lambda: space.sample_genes(rng, allowed), n)

