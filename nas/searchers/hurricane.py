"""HURRICANE: hardware-aware candidate selection, then two-stage search.

Zhang et al., "Fast Hardware-Aware Neural Architecture Search", CVPR
Workshops 2020. Step 1 builds a *hardware-aware space*: for each layer it keeps
the operators that are efficient on the target, judged by predicted latency
against a capacity measure (MACs), so each device gets its own space. Step 2
searches it in two stages: first the later layers with the earlier layers fixed
(to their cheapest kept operator), then the earlier layers with the later
layers fixed to the stage-1 winner; the budget is split between the stages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwprof.registry import SEARCHERS
from nas.searchers.base import Candidate, Constraint, Evaluator, Searcher
from nas.searchers.evolutionary import evolve


def hardware_aware_space(space, predictor, keep: int = 4, globals: dict | None = None) -> list[list[int]]:
    """Option indices kept per variable: per layer, the latency/MACs-efficient operators.

    For each layer, the options on the (lower latency, more MACs) Pareto front
    are preferred, then those with the most MACs gained per millisecond over the
    layer's cheapest operator, up to ``keep``; ``skip`` stays where the layer
    has it, so depth remains searchable. Global variables keep every option.
    """
    table = predictor.cost_table(space, globals)
    layer_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    genes = [v.options.index(table.globals[v.name]) if v.name in table.globals else 0 for v in space.variables]
    for i in layer_idx:
        v = space.variables[i]
        genes[i] = next(j for j in range(len(v.options)) if j != v.skip_index)
    macs = space.layer_deltas([space.to_arch(g).macs for g in space.layer_variants(genes)])
    allowed = [list(range(len(v.options))) for v in space.variables]
    for pos, i in enumerate(layer_idx):
        v = space.variables[i]
        lat, cap = table.costs_ms[pos], macs[pos]
        ops = [j for j in range(len(v.options)) if j != v.skip_index]
        base = min(ops, key=lambda j: (lat[j], -cap[j]))
        front = [j for j in ops if not any((lat[o] <= lat[j] and cap[o] >= cap[j]) and
                                           (lat[o] < lat[j] or cap[o] > cap[j]) for o in ops)]

        def efficiency(j: int) -> float:
            return (cap[j] - cap[base]) / max(lat[j] - lat[base], 1e-6) if j != base else np.inf

        ranked = sorted(front, key=efficiency, reverse=True)[:keep]
        ranked += sorted((j for j in ops if j not in ranked), key=efficiency, reverse=True)[: keep - len(ranked)]
        allowed[i] = sorted(ranked) + ([v.skip_index] if v.skip_index is not None else [])
    for group in space.skip_groups:  # positions of a skip group are interchangeable: share one set
        shared = sorted(set().union(*(allowed[i] for i in group)))
        for i in group:
            allowed[i] = shared
    return allowed


@SEARCHERS.register("hurricane")
class HurricaneSearcher(Searcher):
    """Two-stage HURRICANE search in a per-device hardware-aware space.

    Args:
        keep: Operators kept per layer (plus skip where allowed).
        stage1_share: Share of the budget spent on the later layers (stage 1).
        population: NSGA-II population per stage (OFA's 100; capped by budget).
        mutate_prob: Per-choice mutation probability.
    """

    name = "hurricane"

    def __init__(self, keep: int = 4, stage1_share: float = 0.5, population: int = 100,
                 mutate_prob: float = 0.1) -> None:
        self.keep = keep
        self.stage1_share = stage1_share
        self.population = population
        self.mutate_prob = mutate_prob

    def settings(self) -> dict[str, Any]:
        return {"keep": self.keep, "stage1_share": self.stage1_share, "population": self.population,
                "mutate_prob": self.mutate_prob}

    def run(self, evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator) -> dict[str, Any]:
        space = evaluator.space
        allowed = hardware_aware_space(space, evaluator.predictor, self.keep)
        layer_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
        split = len(layer_idx) // 2
        for group in space.skip_groups:  # do not cut a skip group in two
            if layer_idx.index(group[0]) < split <= layer_idx.index(group[-1]):
                split = layer_idx.index(group[0])
        early, late = layer_idx[:split], layer_idx[split:]
        table = evaluator.predictor.cost_table(space)
        cost = {i: table.costs_ms[pos] for pos, i in enumerate(layer_idx)}
        cheapest = {i: min((j for j in allowed[i] if j != space.variables[i].skip_index), key=lambda j: cost[i][j])
                    for i in early}
        extra = {"hardware_aware_space": {space.variables[i].name: [space.variables[i].labels[j] for j in allowed[i]]
                                          for i in layer_idx},
                 "stage1_layers": [space.variables[i].name for i in late]}
        stage1_budget = max(1, int(evaluator.budget * self.stage1_share))
        population = min(self.population, max(4, stage1_budget // 5))
        evaluator.step = 0
        pop = evolve(evaluator, constraint, rng, population, 0.25, 0.5, self.mutate_prob, allowed,
                     fixed=cheapest, budget=stage1_budget)
        winner = _best(pop, constraint)
        extra["stage1_best"] = winner.arch.hash
        fixed_late = {i: winner.arch.genes[i] for i in late}
        evaluator.step = 100  # stage 2 generations are numbered from 100
        evolve(evaluator, constraint, rng, min(self.population, max(4, evaluator.remaining // 5)), 0.25, 0.5,
               self.mutate_prob, allowed, fixed=fixed_late)
        return extra


def _best(pop: list[Candidate], constraint: Constraint) -> Candidate:
    feasible = [c for c in pop if constraint.feasible(c.latency_ms)]
    if feasible:
        return max(feasible, key=lambda c: (c.score, -c.latency_ms))
    return min(pop, key=lambda c: c.latency_ms)
