"""Single-objective evolution under a latency target: every evaluation is spent below it.

NSGA-II spreads its budget along the whole accuracy-latency front; with a
latency target only the networks that meet it count. This loop follows the
evolution Once-for-All uses to specialise its subnets (Cai et al., ICLR 2020):
sample only networks the predictor says meet the target, keep the top
``parents_ratio`` by score as parents, make ``mutation_ratio`` of the children
by mutation and the rest by crossover, and redraw a child while it breaks the
target. Two changes, each measured in ``benchmarks/bench_constrained.py``:

- *Elitism over everything evaluated, no re-evaluation.* Parents are the best
  networks found so far (not only the current generation), and a child already
  scored is redrawn rather than scored again, so the budget buys only new
  networks.
- *Latency pressure.* Each child slot draws ``latency_pressure`` feasible,
  unseen candidates (the predictor is free to ask) and keeps the one that uses
  most of the latency budget: a network well under the target leaves capacity
  unused, so children are pushed toward the target from below. ``1`` turns it
  off.
- *Score surrogate* (``surrogate_candidates`` > 1). Once a generation has been
  scored, a ridge regression on the one-hot encoding of the genes is fitted to
  every score seen so far, and each child slot keeps, of
  ``surrogate_candidates`` feasible unseen candidates, the one it predicts
  best; the score is computed only for that one. This is the model-based
  sampling of surrogate-assisted evolution (e.g. BANANAS, White et al., AAAI
  2021; the predictor-guided evolution of NPENAS, Wei et al., 2022) in its
  simplest linear form, and costs no evaluations.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nas.searchers.base import Candidate, Constraint, Evaluator
from nas.searchers.sampling import MAX_TRIES


class OneHotRidge:
    """Ridge regression of scores on the one-hot encoding of genes (the score surrogate).

    scikit-learn's ``OneHotEncoder`` (every option of every variable a column,
    dense, so ``Ridge`` solves exactly by Cholesky) and ``Ridge`` (intercept not
    penalised).
    """

    def __init__(self, n_options: Sequence[int], alpha: float = 1.0) -> None:
        self.n_options = [int(n) for n in n_options]
        self.alpha = alpha

    def fit(self, genes: np.ndarray, scores: np.ndarray) -> "OneHotRidge":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder

        encoder = OneHotEncoder(categories=[np.arange(n) for n in self.n_options], sparse_output=False)
        self.model_ = make_pipeline(encoder, Ridge(alpha=self.alpha)).fit(
            np.atleast_2d(np.asarray(genes, dtype=int)), np.asarray(scores, float))
        return self

    def predict(self, genes: np.ndarray) -> np.ndarray:
        return self.model_.predict(np.atleast_2d(np.asarray(genes, dtype=int)))


def evolve_under_target(evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator, population: int,
                        parents_ratio: float, mutation_ratio: float, mutate_prob: float,
                        latency_pressure: int = 4, allowed: Sequence[Sequence[int]] | None = None,
                        surrogate_candidates: int = 1) -> None:
    """Spend the evaluator's budget on networks predicted to meet ``constraint`` (see the module docstring)."""
    space = evaluator.space
    target = float(constraint.latency_ms)
    allow = [list(a) for a in allowed] if allowed is not None else space.option_mask()
    n_parents = max(2, int(round(parents_ratio * population)))
    surrogate = OneHotRidge([len(v.options) for v in space.variables]) if surrogate_candidates > 1 else None
    fitted = False

    def draw_children(make, n: int, taken: set) -> list[tuple[int, ...]]:
        """``n`` unseen genotypes from ``make``, feasible where possible: the best of ``surrogate_candidates``
        by the surrogate once it is fitted, else the slowest of ``latency_pressure``."""
        out: list[tuple[int, ...]] = []
        per_slot = surrogate_candidates if fitted else latency_pressure
        for _ in range(n):
            chosen, fallback = None, None
            for _ in range(MAX_TRIES):
                batch = [space.canonical(make()) for _ in range(max(per_slot, 1))]
                batch = [g for g in dict.fromkeys(batch) if g not in evaluator.cache and g not in taken]
                if not batch:
                    continue
                lat = evaluator.latency(np.array(batch))
                feasible = [(float(ms), g) for g, ms in zip(batch, lat) if ms <= target]
                if feasible and fitted:
                    predicted = surrogate.predict(np.array([g for _, g in feasible]))
                    chosen = feasible[int(np.argmax(predicted))][1]
                    break
                if feasible:
                    chosen = max(feasible)[1]  # the one using most of the latency budget
                    break
                fallback = fallback or batch[int(np.argmin(lat))]
            pick = chosen or fallback
            if pick is not None:
                out.append(pick)
                taken.add(pick)
        return out

    def parents_now() -> list[Candidate]:
        feasible = [c for c in evaluator.history if c.latency_ms <= target]
        if len(feasible) >= 2:
            return sorted(feasible, key=lambda c: (-c.score, c.latency_ms))[:n_parents]
        return sorted(evaluator.history, key=lambda c: (c.latency_ms - target, -c.score))[:n_parents]

    taken: set = set()
    evaluator.evaluate(draw_children(lambda: space.sample_genes(rng, allow), population, taken))
    while evaluator.remaining > 0:
        evaluator.step += 1
        parents = parents_now()
        if surrogate is not None and len(evaluator.history) >= 2:
            seen = evaluator.history
            surrogate.fit(np.array([c.arch.genes for c in seen]), np.array([c.score for c in seen]))
            fitted = True

        def mutant() -> tuple[int, ...]:
            return space.mutate_genes(parents[int(rng.integers(len(parents)))].arch.genes, rng, mutate_prob, allow)

        def crossed() -> tuple[int, ...]:
            a, b = rng.integers(len(parents), size=2)
            return space.crossover_genes(parents[a].arch.genes, parents[b].arch.genes, rng)

        n_mut = int(round(mutation_ratio * population))
        room = min(population, evaluator.remaining)
        children = draw_children(mutant, min(n_mut, room), taken)
        children += draw_children(crossed, room - len(children), taken)
        if not children:  # the neighbourhood of the parents is exhausted: fresh random networks
            children = draw_children(lambda: space.sample_genes(rng, allow), room, taken)
            if not children:
                return
        evaluator.evaluate(children)


def best_so_far(history: Sequence[Candidate], constraint: Constraint) -> np.ndarray:
    """Score of the best network meeting the constraint after each evaluation (NaN before the first)."""
    out = np.full(len(history), np.nan)
    best = -np.inf
    for i, c in enumerate(history):
        if constraint.feasible(c.latency_ms) and c.score > best:
            best = c.score
        out[i] = best if np.isfinite(best) else np.nan
    return out
