"""The searcher interface, the shared evaluator, Pareto fronts and hypervolume.

A searcher proposes genotypes; the :class:`Evaluator` scores them with the
accuracy estimator and the latency predictor (through the
:class:`~hwprof.predictors.base.LatencyPredictor` interface only), caches them
by genotype, and stops the search when the evaluation budget is spent.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from hwprof.arch import Arch
from hwprof.errors import HwprofError


@dataclass(frozen=True)
class Constraint:
    """Latency constraint; ``latency_ms=None`` asks for the whole Pareto front."""

    latency_ms: float | None = None

    def feasible(self, latency_ms: np.ndarray | float) -> np.ndarray | bool:
        """Whether latencies meet the constraint."""
        if self.latency_ms is None:
            return np.ones_like(np.asarray(latency_ms), dtype=bool) if np.ndim(latency_ms) else True
        return np.asarray(latency_ms) <= self.latency_ms


@dataclass
class Candidate:
    """One evaluated network."""

    arch: Arch
    latency_ms: float
    score: float
    step: int  # generation or stage in which it was first evaluated
    index: int  # evaluation order


@dataclass
class SearchResult:
    """What a search found.

    Attributes:
        searcher: Searcher name.
        space: Space name.
        estimator: Score name (e.g. ``synflow proxy``).
        constraint: The latency constraint.
        history: Every evaluated network, in evaluation order.
        pareto: Non-dominated networks (max score, min latency), by latency.
        best: Highest-scoring network meeting the constraint (None if none does).
        hypervolume: Area dominated by the front up to ``reference``.
        reference: (latency ms, score) reference point of the hypervolume.
        wall_s: Search wall time.
        settings: Searcher settings used.
        extra: Searcher-specific output (e.g. HURRICANE's hardware-aware space).
    """

    searcher: str
    space: str
    estimator: str
    constraint: Constraint
    history: list[Candidate]
    pareto: list[Candidate]
    best: Candidate | None
    hypervolume: float
    reference: tuple[float, float]
    wall_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class BudgetExhausted(Exception):
    """Raised inside a search when the evaluation budget is spent."""


class Evaluator:
    """Evaluates genotypes once each, within a budget of distinct evaluations.

    Args:
        space: The search space.
        predictor: A fitted latency predictor.
        estimator: An accuracy estimator (``score(archs) -> np.ndarray``).
        budget: Distinct networks to evaluate at most.
        on_eval: Called after each batch with the evaluator.
    """

    def __init__(self, space, predictor, estimator, budget: int,
                 on_eval: Callable[[Evaluator], None] | None = None) -> None:
        if budget < 1:
            raise HwprofError(f"--budget must be at least 1, got {budget}")
        self.space = space
        self.predictor = predictor
        self.estimator = estimator
        self.budget = budget
        self.on_eval = on_eval
        self.cache: dict[tuple[int, ...], Candidate] = {}
        self.history: list[Candidate] = []
        self.step = 0

    @property
    def remaining(self) -> int:
        """Evaluations left."""
        return self.budget - len(self.history)

    def latency(self, genes: np.ndarray) -> np.ndarray:
        """Predicted latency of genotypes, without spending budget (predictors are cheap)."""
        return self.predictor.predict_genes(self.space, np.atleast_2d(genes))

    def evaluate(self, genotypes: Sequence[Sequence[int]]) -> list[Candidate]:
        """Candidates for ``genotypes`` (canonicalised); new ones spend budget.

        Raises:
            BudgetExhausted: when the budget ran out before all were evaluated
                (those that fit are still recorded).
        """
        keys = [self.space.canonical(tuple(int(x) for x in g)) for g in genotypes]
        new = list(dict.fromkeys(k for k in keys if k not in self.cache))
        exhausted = len(new) > self.remaining
        new = new[: max(self.remaining, 0)]
        if new:
            archs = [self.space.to_arch(k) for k in new]
            lat = self.latency(np.array(new))
            scores = np.asarray(self.estimator.score(archs), dtype=float)
            for k, a, ms, s in zip(new, archs, lat, scores):
                cand = Candidate(a, float(ms), float(s), self.step, len(self.history))
                self.cache[k] = cand
                self.history.append(cand)
            if self.on_eval:
                self.on_eval(self)
        if exhausted:
            raise BudgetExhausted
        return [self.cache[k] for k in keys]


class Searcher(ABC):
    """Base class of searchers: :meth:`run` proposes genotypes to an :class:`Evaluator`."""

    name: ClassVar[str] = ""

    def settings(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able)."""
        return {}

    def check_space(self, space) -> None:
        """Raise :class:`HwprofError` if this searcher cannot search ``space`` (checked before any work)."""

    @abstractmethod
    def run(self, evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator) -> dict[str, Any]:
        """Spend the evaluator's budget; return searcher-specific extras."""

    def search(self, space, predictor, estimator, constraint: Constraint = Constraint(), budget: int = 500,
               seed: int = 0, on_progress: Callable[[Evaluator], None] | None = None) -> SearchResult:
        """Search ``space`` for high-score, low-latency networks.

        Args:
            space: A :class:`~nas.spaces.base.SearchSpace`.
            predictor: A fitted :class:`~hwprof.predictors.base.LatencyPredictor`.
            estimator: An accuracy estimator from :mod:`nas.accuracy`.
            constraint: Latency constraint (None: whole front).
            budget: Distinct networks to score.
            seed: Makes the search reproducible.
            on_progress: Called after each evaluated batch.
        """
        start = time.perf_counter()
        evaluator = Evaluator(space, predictor, estimator, budget, on_progress)
        self.extra_: dict[str, Any] = {}  # a searcher may fill it as it goes: kept when the budget runs out
        try:
            extra = self.run(evaluator, constraint, np.random.default_rng(seed)) or {}
        except BudgetExhausted:
            extra = dict(self.extra_)
        if not evaluator.history:
            raise HwprofError("the search evaluated no networks", "raise --budget")
        return summarised(SearchResult(self.name, space.name, getattr(estimator, "label", "score"), constraint,
                                       evaluator.history, [], None, 0.0, (0.0, 0.0), time.perf_counter() - start,
                                       self.settings(), extra))


def summarised(result: SearchResult) -> SearchResult:
    """``result`` with its front, winner, hypervolume and reference worked out from its history."""
    history, constraint = result.history, result.constraint
    lat = np.array([c.latency_ms for c in history])
    score = np.array([c.score for c in history])
    front = [history[i] for i in pareto_indices(lat, score)]
    feasible = [c for c in history if constraint.feasible(c.latency_ms)]
    best = max(feasible, key=lambda c: (c.score, -c.latency_ms)) if feasible else None
    reference = default_reference(lat, score, constraint)
    return replace(result, pareto=sorted(front, key=lambda c: c.latency_ms), best=best,
                   hypervolume=hypervolume(lat, score, reference), reference=reference)


def repriced(result: SearchResult, predictor) -> SearchResult:
    """``result`` with every scored network's latency predicted again by ``predictor`` (scores kept), and its
    front and winner chosen again."""
    latency = np.asarray(predictor.predict([c.arch for c in result.history]), dtype=float)
    return summarised(replace(result, history=[replace(c, latency_ms=float(ms))
                                               for c, ms in zip(result.history, latency)]))


def pareto_indices(latency: np.ndarray, score: np.ndarray) -> list[int]:
    """Indices of non-dominated points (lower latency, higher score), sorted by latency."""
    order = np.lexsort((-score, latency))
    front, best = [], -np.inf
    for i in order:
        if score[i] > best:
            front.append(int(i))
            best = score[i]
    return front


def hypervolume(latency: np.ndarray, score: np.ndarray, reference: tuple[float, float]) -> float:
    """2-D hypervolume dominated by the points, up to ``reference`` = (max latency, min score)."""
    lat_ref, score_ref = reference
    keep = (latency <= lat_ref) & (score >= score_ref)
    if not keep.any():
        return 0.0
    lat, sc = latency[keep], score[keep]
    idx = pareto_indices(lat, sc)
    area, prev_score = 0.0, score_ref
    for i in idx:  # ascending latency, ascending score
        area += (lat_ref - lat[i]) * (sc[i] - prev_score)
        prev_score = sc[i]
    return float(area)


def default_reference(latency: np.ndarray, score: np.ndarray, constraint: Constraint) -> tuple[float, float]:
    """Reference point: the constraint (or the slowest network) and the lowest score seen."""
    lat_ref = constraint.latency_ms if constraint.latency_ms is not None else float(latency.max())
    return float(lat_ref), float(score.min())


def non_dominated_sort(latency: np.ndarray, score: np.ndarray, violation: np.ndarray) -> list[np.ndarray]:
    """NSGA-II fronts under Deb's feasibility rule (feasible first, then less violation)."""
    n = len(latency)
    dominated_by = [[] for _ in range(n)]
    counts = np.zeros(n, dtype=int)
    for i in range(n):
        for j in range(i + 1, n):
            if _dominates(i, j, latency, score, violation):
                dominated_by[i].append(j)
                counts[j] += 1
            elif _dominates(j, i, latency, score, violation):
                dominated_by[j].append(i)
                counts[i] += 1
    fronts, current = [], [i for i in range(n) if counts[i] == 0]
    while current:
        fronts.append(np.array(current))
        nxt = []
        for i in current:
            for j in dominated_by[i]:
                counts[j] -= 1
                if counts[j] == 0:
                    nxt.append(j)
        current = nxt
    return fronts


def _dominates(i: int, j: int, latency: np.ndarray, score: np.ndarray, violation: np.ndarray) -> bool:
    if violation[i] == 0 and violation[j] > 0:
        return True
    if violation[i] > 0 or violation[j] > 0:
        return violation[i] < violation[j]
    better_or_equal = latency[i] <= latency[j] and score[i] >= score[j]
    return better_or_equal and (latency[i] < latency[j] or score[i] > score[j])


def crowding_distance(latency: np.ndarray, score: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front."""
    n = len(latency)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for values in (latency, score):
        order = np.argsort(values, kind="stable")
        span = values[order[-1]] - values[order[0]] or 1.0
        dist[order[0]] = dist[order[-1]] = np.inf
        dist[order[1:-1]] += (values[order[2:]] - values[order[:-2]]) / span
    return dist
