"""Random search: the baseline every searcher must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwprof.registry import SEARCHERS
from nas.searchers.base import Constraint, Evaluator, Searcher
from nas.searchers.sampling import feasible_samples


@SEARCHERS.register("random")
class RandomSearcher(Searcher):
    """Uniform random networks; under a constraint, only those the predictor deems feasible.

    Args:
        batch: Networks evaluated per step.
    """

    name = "random"

    def __init__(self, batch: int = 50) -> None:
        self.batch = batch

    def settings(self) -> dict[str, Any]:
        return {"batch": self.batch}

    def run(self, evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator) -> dict[str, Any]:
        while evaluator.remaining > 0:
            evaluator.evaluate(feasible_samples(evaluator, constraint, rng, min(self.batch, evaluator.remaining)))
            evaluator.step += 1
        return {}
