"""Search under a latency target: the default searcher against constrained evolution.

The baseline is written here from the published description of the
evolution Once-for-All uses to specialise its subnets (Cai et al., ICLR 2020,
section 3.3 and its evolution finder): sample only networks the latency model
says meet the target, keep the top quarter of the population as parents, make
half the next generation by mutation and half by crossover, redraw a child
while it breaks the target. It counts distinct scored networks, as our
searchers do (a network scored twice costs nothing the second time).

Same predictor per device (lut with kernel-rf fallback, 300 measured ofa
networks), same synflow proxy, and, as in ``nas search``, resolution (which
synflow at 128 px cannot judge) held at 224 px. Targets: the 30th and 60th
percentile of the predicted latency of 2000 random networks. Each (device,
target, seed) runs each method once with the largest budget and reads the
best score meeting the target after 300, 900, ... networks (its best-so-far
curve; our constrained mode keeps a fixed population, so the curve at N is
what a run with budget N finds). Reported: mean best score per budget, per-seed
wins of our default searcher, and, for reference, the NSGA-II mode
(``mode=pareto``, the old default) and any other searcher named in
``--others`` (``hurricane``, ``random``) on the same settings.

    python -m benchmarks.bench_constrained [--devices kirin-npu,hexagon-dsp,myriad-vpu]
        [--budgets 300,900,2000] [--seeds 5] [--percentiles 30,60] [--others nsga2,hurricane,random]
        [--json out.json]
    python -m benchmarks.bench_constrained --merge a.json b.json ...   (one report from several runs)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit
from devices import resolve
from hwprof.dataset import Dataset
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from nas.accuracy.proxies import SynflowProxy
from nas.dimensions import hold_unseen
from nas.searchers import Constraint, create_searcher
from nas.searchers.base import BudgetExhausted, Evaluator, Searcher
from nas.searchers.constrained import best_so_far
from nas.searchers.sampling import redraw_infeasible
from nas.spaces import get_space


class ConstrainedEvolutionBaseline(Searcher):
    """Once-for-All's constrained evolution (our code, from the published description)."""

    name = "ofa-constrained-evolution"

    def __init__(self, population: int = 100, parents_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 mutate_prob: float = 0.1) -> None:
        self.population, self.parents_ratio = population, parents_ratio
        self.mutation_ratio, self.mutate_prob = mutation_ratio, mutate_prob

    def run(self, evaluator: Evaluator, constraint: Constraint, rng: np.random.Generator) -> dict:
        space = evaluator.space
        allow = space.option_mask()
        n_parents = max(2, int(round(self.parents_ratio * self.population)))
        n_mut = int(round(self.mutation_ratio * self.population))
        pop = evaluator.evaluate(redraw_infeasible(evaluator, constraint, lambda: space.sample_genes(rng, allow),
                                                   self.population))
        while evaluator.remaining > 0:
            evaluator.step += 1
            feasible = [c for c in pop if constraint.feasible(c.latency_ms)] or pop
            parents = sorted(feasible, key=lambda c: -c.score)[:n_parents]

            def mutant():
                return space.mutate_genes(parents[int(rng.integers(len(parents)))].arch.genes, rng,
                                          self.mutate_prob, allow)

            def crossed():
                a, b = rng.integers(len(parents), size=2)
                return space.crossover_genes(parents[a].arch.genes, parents[b].arch.genes, rng)

            children = redraw_infeasible(evaluator, constraint, mutant, n_mut)
            children += redraw_infeasible(evaluator, constraint, crossed, self.population - n_mut)
            before = len(evaluator.history)
            pop = parents + evaluator.evaluate(children)
            if len(evaluator.history) == before:  # every child already scored: the population has converged
                pop += evaluator.evaluate(redraw_infeasible(evaluator, constraint,
                                                            lambda: space.sample_genes(rng, allow), n_parents))
        return {}


def _predictor(root: Path, device: str, space):
    path = root / device
    rng = np.random.default_rng(0)
    measure_into(Dataset(path), resolve(device, seed=0), [space.sample(rng) for _ in range(300)], mode="both")
    return fit_on("lut", load_measurements(path))


def curve(searcher, space, predictor, estimator, target: float, budget: int, seed: int) -> np.ndarray:
    try:
        result = searcher.search(space, predictor, estimator, Constraint(target), budget, seed)
    except BudgetExhausted:  # pragma: no cover - search() handles it
        raise
    return best_so_far(result.history, Constraint(target))


OURS, BASE = "default (evolutionary)", "baseline (OFA constrained evolution)"


def report(results: dict, budgets: list[int], seeds: int) -> bool:
    """Print the per-setting table and the acceptance line; True when ours is level everywhere."""
    for key, r in results.items():
        done = len(r["per_seed"][OURS])
        print(f"\n{key} (target {r['target_ms']:.3f} ms, simulated device; {done}/{seeds} seeds)")
        for m, v in r["mean_best"].items():
            print(f"  {m:38s} " + "  ".join(f"{b}: {x:.3f}" for b, x in zip(budgets, v))
                  + f"   ({r['search_s'][m]:.0f} s)")
        print("  default vs baseline, seeds won: " + "  ".join(
            f"{b}: {w}/{done}" for b, w in zip(budgets, r["default_wins"])), flush=True)
    level = all(r["mean_best"][OURS][i] >= r["mean_best"][BASE][i] for r in results.values() for i in range(len(budgets)))
    ahead = sum(r["mean_best"][OURS][i] > r["mean_best"][BASE][i] for r in results.values() for i in range(len(budgets)))
    won = sum(sum(r["default_wins"]) for r in results.values())
    runs = sum(len(r["per_seed"][OURS]) * len(budgets) for r in results.values())
    print(f"\ndefault at least level with the baseline in every setting: {'OK' if level else 'MISSED'}; "
          f"ahead in {ahead}/{len(results) * len(budgets)} settings (target: at least half); "
          f"seed-level wins {won}/{runs}")
    return level


def summarise(best: dict, target: float, budgets: list[int], wall: dict) -> dict:
    """One setting's figures from the per-seed best scores found so far."""
    ours, base = np.array(best[OURS]), np.array(best[BASE])
    return {"target_ms": target, "budgets": budgets,
            "mean_best": {m: np.mean(v, axis=0).tolist() for m, v in best.items()},
            "per_seed": {m: np.asarray(v).tolist() for m, v in best.items()},
            "default_wins": (ours > base).sum(axis=0).tolist(), "ties": (ours == base).sum(axis=0).tolist(),
            "search_s": wall}


def merge(paths: list[str]) -> None:
    """Combine the JSON files of several runs (one per device and target) into one report."""
    results, budgets, seeds = {}, None, 0
    for path in paths:
        doc = json.loads(Path(path).read_text())["results"]
        results.update(doc)
        for r in doc.values():
            budgets = r["budgets"]
            seeds = max(seeds, len(r["per_seed"][OURS]))
    report(results, budgets, seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="kirin-npu,hexagon-dsp,myriad-vpu")
    parser.add_argument("--budgets", default="300,900,2000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--percentiles", default="30,60")
    parser.add_argument("--others", default="nsga2", help="reference searchers: nsga2, hurricane, random (or none)")
    parser.add_argument("--json", help="results file, rewritten after every finished seed")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="only combine earlier --json files into one report")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge)
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    full = get_space("ofa")
    estimator = SynflowProxy()
    space, held = hold_unseen(full, estimator)
    methods = {OURS: lambda: create_searcher("evolutionary"), BASE: ConstrainedEvolutionBaseline}
    others = {"nsga2": ("NSGA-II (mode=pareto)", lambda: create_searcher("evolutionary", mode="pareto")),
              "hurricane": ("hurricane", lambda: create_searcher("hurricane")),
              "random": ("random", lambda: create_searcher("random"))}
    # searchers whose schedule depends on the budget (population capped at budget/5, stage split) run once
    # per budget; the others' best-so-far curve at N is what a run with budget N finds
    per_budget = {"NSGA-II (mode=pareto)", "hurricane"}
    for name in filter(None, args.others.split(",")):
        if name != "none":
            label, make = others[name]
            methods[label] = make
    results = {}
    print(f"synflow proxy, ofa, held: {', '.join(f'{h.variable}={h.value}' for h in held)}; budgets {budgets}, "
          f"{args.seeds} seeds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for device in args.devices.split(","):
            predictor = _predictor(Path(tmp), device, full)
            rng = np.random.default_rng(123)
            genes = np.array([space.sample_genes(rng, space.option_mask()) for _ in range(2000)])
            lat = predictor.predict_genes(space, genes)
            for pct in (int(p) for p in args.percentiles.split(",")):
                target = float(np.percentile(lat, pct))
                key = f"{device} p{pct}"
                best = {m: [] for m in methods}
                wall = {m: 0.0 for m in methods}
                for seed in range(args.seeds):
                    for m, make in methods.items():
                        start = time.perf_counter()
                        if m in per_budget:
                            row = [curve(make(), space, predictor, estimator, target, b, seed)[-1] for b in budgets]
                        else:
                            c = curve(make(), space, predictor, estimator, target, max(budgets), seed)
                            row = [c[min(b, len(c)) - 1] for b in budgets]
                        best[m].append(row)
                        wall[m] += time.perf_counter() - start
                    print(f"{key} seed {seed}: " + "; ".join(
                        f"{m.split(' (')[0]} " + "/".join(f"{x:.3f}" for x in best[m][-1]) for m in methods),
                        flush=True)
                    results[key] = summarise(best, target, budgets, wall)
                    emit("constrained", results, args.json)
    report(results, budgets, args.seeds)


if __name__ == "__main__":
    main()
