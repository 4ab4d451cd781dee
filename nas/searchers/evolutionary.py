"""Multi-objective evolutionary search: NSGA-II over (score, latency).

Deb et al., "A fast and elitist multiobjective genetic algorithm: NSGA-II",
IEEE TEVC 2002. Defaults follow the evolutionary search of Once-for-All (Cai et
al., ICLR 2020; also used by GoldenNAS): population 100, parents ratio 0.25,
mutation ratio 0.5, per-choice mutation probability 0.1. The latency
constraint is a feasibility rule (Deb): feasible beats infeasible, and among
infeasible networks the smaller violation wins. Children are redrawn while the
predictor says they break the constraint, as OFA does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from hwprof.errors import HwprofError
from hwprof.registry import SEARCHERS
from nas.searchers.base import (Candidate, Constraint, Evaluator, Searcher, crowding_distance, non_dominated_sort,
                                pareto_indices)
from nas.searchers.sampling import feasible_samples, redraw_infeasible


def _objectives(pop: list[Candidate], constraint: Constraint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat = np.array([c.latency_ms for c in pop])
    score = np.array([c.score for c in pop])
    limit = constraint.latency_ms
    violation = np.maximum(lat - limit, 0.0) if limit is not None else np.zeros(len(pop))
    return lat, score, violation


def nsga2_select(pop: list[Candidate], k: int, constraint: Constraint) -> tuple[list[Candidate], np.ndarray]:
    """The ``k`` survivors by front rank then crowding distance, and their ranks/crowding keys."""
    lat, score, violation = _objectives(pop, constraint)
    chosen: list[int] = []
    keys = np.zeros((len(pop), 2))
    for rank, front in enumerate(non_dominated_sort(lat, score, violation)):
        crowd = crowding_distance(lat[front], score[front])
        keys[front, 0], keys[front, 1] = rank, -crowd
        order = front[np.lexsort((-crowd,))]
        chosen.extend(order[: k - len(chosen)].tolist())
        if len(chosen) >= k:
            break
    return [pop[i] for i in chosen], keys[chosen]


def front_ranks(latency: np.ndarray, score: np.ndarray, depth: int) -> np.ndarray:
    """Pareto front index of each point (0 = non-dominated), peeling ``depth`` fronts; deeper points get ``depth``."""
    ranks = np.full(len(latency), depth)
    left = np.arange(len(latency))
    for rank in range(depth):
        if not len(left):
            break
        front = left[pareto_indices(latency[left], score[left])]
        ranks[front] = rank
        left = np.setdiff1d(left, front)
    return ranks


@dataclass
class Shrinker:
    """Progressive space shrinking (GoldenNAS): drop choices whose networks are consistently dominated.

    Every ``every`` generations, each layer choice that at least ``min_members``
    evaluated networks carry, none of them within the first ``fronts`` Pareto
    fronts of everything evaluated so far (feasible networks only, when there is
    a constraint), is marked; a choice marked at ``patience`` checks in a row is
    removed from the space the search samples and mutates in. ``skip`` (depth)
    and global choices stay; a layer keeps at least one choice; interchangeable
    positions of a stage are judged and shrunk together.

    Attributes:
        removed: What was removed: generation, variable(s), option label, members seen.
    """

    every: int = 2
    min_members: int = 8
    fronts: int = 2
    patience: int = 2
    removed: list[dict[str, Any]] = field(default_factory=list)
    _strikes: dict[tuple[int, int], int] = field(default_factory=dict)
    _allow: list[list[int]] = field(default_factory=list)

    def summary(self, space) -> dict[str, Any]:
        """What was removed, and the options left at every shrunk variable."""
        shrunk = {name for r in self.removed for name in r["variables"]}
        names = [v.name for v in space.variables]
        kept = {name: [space.variables[names.index(name)].labels[j] for j in self._allow[names.index(name)]]
                for name in sorted(shrunk, key=names.index)} if self._allow else {}
        return {"removed": self.removed, "kept": kept, "checks_every_generations": self.every}

    def update(self, generation: int, evaluator: Evaluator, constraint: Constraint, allow: list[list[int]]) -> None:
        """Judge the choices after ``generation`` and narrow ``allow`` in place."""
        self._allow = allow
        if generation % self.every:
            return
        space = evaluator.space
        history = [c for c in evaluator.history if constraint.feasible(c.latency_ms)]
        if len(history) < 2 * self.min_members:
            return
        ranks = front_ranks(np.array([c.latency_ms for c in history]), np.array([c.score for c in history]),
                            self.fronts)
        genes = np.array([c.arch.genes for c in history])
        groups = {g[0]: g for g in space.skip_groups}
        grouped = {i for g in space.skip_groups for i in g}
        units = [groups.get(i, (i,)) for i, v in enumerate(space.variables)
                 if v.kind == "layer" and (i not in grouped or i in groups)]
        for unit in units:
            v = space.variables[unit[0]]
            for j in [o for o in allow[unit[0]] if o != v.skip_index]:
                carriers = np.any(genes[:, list(unit)] == j, axis=1)
                dominated = carriers.sum() >= self.min_members and ranks[carriers].min() >= self.fronts
                key = (unit[0], j)
                self._strikes[key] = self._strikes.get(key, 0) + 1 if dominated else 0
                kept = [o for o in allow[unit[0]] if o != v.skip_index]
                if self._strikes[key] >= self.patience and len(kept) > 1:
                    for i in unit:
                        allow[i].remove(j)
                    self.removed.append({"generation": generation, "variables": [space.variables[i].name for i in unit],
                                         "option": v.labels[j], "members": int(carriers.sum())})


def evolve(evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator, population: int,
           parents_ratio: float, mutation_ratio: float, mutate_prob: float,
           allowed: Sequence[Sequence[int]] | None = None, fixed: dict[int, int] | None = None,
           budget: int | None = None, initial: list[Candidate] | None = None,
           inherited: Sequence[int] | None = None, shrinker: Shrinker | None = None) -> list[Candidate]:
    """Run NSGA-II until ``budget`` evaluations (default: all remaining) are spent.

    Args:
        allowed: Option indices allowed per variable (a reduced space).
        fixed: Variable index -> option held fixed (the other variables evolve).
        initial: Start from these evaluated networks instead of random samples.
        inherited: Variables each child copies unchanged from its first parent
            (they are held per network rather than globally, unlike ``fixed``).

    Returns:
        The final population.
    """
    space = evaluator.space
    stop_at = len(evaluator.history) + (budget if budget is not None else evaluator.remaining)
    allow = [list(a) for a in allowed] if allowed is not None else space.option_mask()
    for i, o in (fixed or {}).items():
        allow[i] = [o]

    keep = list(inherited or [])

    def fix(genes: tuple[int, ...], parent: Candidate | None = None) -> tuple[int, ...]:
        # a choice outside the allowed set (fixed, or shrunk away since the parent was made) is redrawn
        genes = [g if g in allow[i] else allow[i][0] if len(allow[i]) == 1 else allow[i][int(rng.integers(len(allow[i])))]
                 for i, g in enumerate(genes)]
        for i in keep:
            genes[i] = parent.arch.genes[i]
        return space.canonical(tuple(genes))

    def spend(genotypes: list[tuple[int, ...]]) -> list[Candidate]:
        room = stop_at - len(evaluator.history)
        fresh = [g for g in dict.fromkeys(genotypes) if space.canonical(g) not in evaluator.cache]
        if len(fresh) > room:  # stay within this call's budget: drop the extra new ones
            keep = set(fresh[:max(room, 0)])
            genotypes = [g for g in genotypes if g in keep or space.canonical(g) in evaluator.cache]
        return evaluator.evaluate(genotypes) if genotypes else []

    pop = list(initial) if initial else spend(feasible_samples(evaluator, constraint, rng, population, allow))
    n_parents = max(2, int(round(parents_ratio * population)))
    while len(evaluator.history) < stop_at and evaluator.remaining > 0:
        evaluator.step += 1
        parents, keys = nsga2_select(pop, min(n_parents, len(pop)), constraint)

        def tournament() -> Candidate:
            i, j = rng.integers(len(parents), size=2)
            return parents[i] if tuple(keys[i]) <= tuple(keys[j]) else parents[j]

        n_mut = int(round(mutation_ratio * population))

        def mutant() -> tuple[int, ...]:
            parent = tournament()
            return fix(space.mutate_genes(parent.arch.genes, rng, mutate_prob, allow), parent)

        def child() -> tuple[int, ...]:
            first = tournament()
            return fix(space.crossover_genes(first.arch.genes, tournament().arch.genes, rng), first)

        offspring = redraw_infeasible(evaluator, constraint, mutant, n_mut)
        offspring += redraw_infeasible(evaluator, constraint, child, population - n_mut)
        before = len(evaluator.history)
        pop = list({id(c): c for c in pop + spend(offspring)}.values())
        pop, _ = nsga2_select(pop, population, constraint)
        if shrinker is not None:
            shrinker.update(evaluator.step, evaluator, constraint, allow)
        if len(evaluator.history) == before:  # converged: every child already seen; inject fresh blood
            if keep:
                fresh = [fix(space.mutate_genes(c.arch.genes, rng, 0.5, allow), c)
                         for c in pop[: max(1, population // 4)]]
            else:
                fresh = feasible_samples(evaluator, constraint, rng, max(1, population // 4), allow)
            extra = spend(fresh)
            if not extra or len(evaluator.history) == before:
                break
            pop, _ = nsga2_select(list({id(c): c for c in pop + extra}.values()), population, constraint)
    return pop


MODES = ("auto", "pareto", "constrained")


@SEARCHERS.register("evolutionary")
class EvolutionarySearcher(Searcher):
    """NSGA-II over (score, latency); under a latency target, single-objective evolution below it.

    Without a target it returns the whole front (NSGA-II). With one, the
    default (``mode=auto``) spends every evaluation on networks predicted to
    meet it (:func:`~nas.searchers.constrained.evolve_under_target`), which
    finds better networks under the target for the same budget; ``mode=pareto``
    keeps NSGA-II with Deb's feasibility rule.

    Args:
        population: Networks per generation (OFA: 100).
        parents_ratio: Share of the population kept as parents (OFA: 0.25).
        mutation_ratio: Share of children made by mutation, the rest by crossover (OFA: 0.5).
        mutate_prob: Per-choice mutation probability (OFA: 0.1).
        shrink: Progressive space shrinking (GoldenNAS, see :class:`Shrinker`):
            drop choices whose networks stay dominated; the result lists them.
        shrink_every: Generations between shrinking checks.
        mode: ``auto`` (constrained under a target, else pareto), ``pareto`` or ``constrained``.
        latency_pressure: Constrained mode: candidates drawn per child, the one using most of
            the latency budget kept (1: plain constrained evolution), until the score
            surrogate has data.
        surrogate_candidates: Constrained mode: candidates drawn per child once a generation
            is scored, the one a ridge surrogate of the score predicts best kept (1: off).
            The surrogate is fitted on scores already paid for and costs no evaluations;
            32 was chosen on kirin-npu (ofa, synflow, 3 seeds, 900 networks) over 8 and off.
    """

    name = "evolutionary"

    def __init__(self, population: int = 100, parents_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 mutate_prob: float = 0.1, shrink: bool = False, shrink_every: int = 2, mode: str = "auto",
                 latency_pressure: int = 4, surrogate_candidates: int = 32) -> None:
        if mode not in MODES:
            raise HwprofError(f"unknown evolutionary mode '{mode}'", f"use one of: {', '.join(MODES)}")
        if int(latency_pressure) < 1:
            raise HwprofError(f"latency_pressure must be at least 1, got {latency_pressure}")
        self.mode = mode
        self.latency_pressure = int(latency_pressure)
        if int(surrogate_candidates) < 1:
            raise HwprofError(f"surrogate_candidates must be at least 1, got {surrogate_candidates}")
        self.surrogate_candidates = int(surrogate_candidates)
        if population < 4 or not 0 < parents_ratio <= 1 or not 0 <= mutation_ratio <= 1 or not 0 < mutate_prob <= 1:
            raise HwprofError("evolutionary settings out of range",
                              "population >= 4, 0 < parents_ratio <= 1, 0 <= mutation_ratio <= 1, 0 < mutate_prob <= 1")
        self.population = population
        self.parents_ratio = parents_ratio
        self.mutation_ratio = mutation_ratio
        self.mutate_prob = mutate_prob
        if shrink_every < 1:
            raise HwprofError(f"shrink_every must be at least 1, got {shrink_every}")
        self.shrink = bool(shrink)
        self.shrink_every = int(shrink_every)

    def settings(self) -> dict[str, Any]:
        return {"population": self.population, "parents_ratio": self.parents_ratio,
                "mutation_ratio": self.mutation_ratio, "mutate_prob": self.mutate_prob, "shrink": self.shrink,
                "shrink_every": self.shrink_every, "mode": self.mode, "latency_pressure": self.latency_pressure,
                "surrogate_candidates": self.surrogate_candidates}

    def run(self, evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator) -> dict[str, Any]:
        population = min(self.population, max(4, evaluator.budget // 5))
        constrained = self.mode == "constrained" or (self.mode == "auto" and constraint.latency_ms is not None
                                                     and not self.shrink)
        if constrained:
            if constraint.latency_ms is None:
                raise HwprofError("evolutionary mode=constrained needs a latency target", "give --latency-ms")
            from nas.searchers.constrained import evolve_under_target

            # At least three generations; from a budget of 3 x population on, the population does not
            # depend on the budget, so a run's best-so-far curve at N >= 300 is what a run with budget N finds.
            population = min(self.population, max(4, evaluator.budget // 3))
            self.extra_ = {"population_used": population, "mode_used": "constrained"}
            evolve_under_target(evaluator, constraint, rng, population, self.parents_ratio,
                                self.mutation_ratio, self.mutate_prob, self.latency_pressure,
                                surrogate_candidates=self.surrogate_candidates)
            return self.extra_
        shrinker = Shrinker(every=self.shrink_every) if self.shrink else None
        try:
            evolve(evaluator, constraint, rng, population, self.parents_ratio, self.mutation_ratio, self.mutate_prob,
                   shrinker=shrinker)
        finally:  # the budget ends a search by exception: record what was shrunk either way
            self.extra_ = {"population_used": population, "mode_used": "pareto"}
            if shrinker is not None:
                self.extra_["shrink"] = shrinker.summary(evaluator.space)
        return self.extra_
