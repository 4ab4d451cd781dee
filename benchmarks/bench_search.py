"""Searchers compared: hypervolume of random, evolutionary and hurricane per device.

Same predictor (lut with kernel-rf fallback, fitted on 300 measured ofa
networks per device), same estimator (synflow proxy, cached by arch hash), same
budget, over several seeds. As in ``nas search``, resolution (which synflow at
128 px cannot judge) is held at 224 px. Target: evolutionary and hurricane reach a higher
mean hypervolume than random on kirin-npu, hexagon-dsp and myriad-vpu (all
simulated). The hypervolume of each (device, seed) uses one reference point for
the three searchers: the slowest latency and lowest score any of them saw.
Also prints HURRICANE's hardware-aware space per device (operators kept per
layer), which must differ between devices.

Two settings: the whole front (no constraint), and under a latency target
(HURRICANE's own setting: it searches for the best network under a target).
The target per device is the 30th percentile of the predicted latency of 2000
random networks; hypervolume then counts only networks meeting it, with the
target as the latency end of the reference point. The best feasible score per
searcher is printed too.

    python -m benchmarks.bench_search [--seeds 5] [--budget 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit, feasible_points, shared_reference_hypervolumes
from devices import resolve
from hwprof.dataset import Dataset
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from nas.accuracy.proxies import SynflowProxy
from nas.dimensions import hold_unseen
from nas.searchers import Constraint, create_searcher
from nas.searchers.hurricane import hardware_aware_space
from nas.spaces import get_space

DEVICES = ["kirin-npu", "hexagon-dsp", "myriad-vpu"]
SEARCHERS = ["random", "evolutionary", "hurricane"]


def _predictor(root: Path, device: str, space):
    path = root / device
    rng = np.random.default_rng(0)
    measure_into(Dataset(path), resolve(device, seed=0), [space.sample(rng) for _ in range(300)], mode="both")
    return fit_on("lut", load_measurements(path), fallback="kernel-rf")


def _compare(space, predictor, estimator, constraint: Constraint, seeds: int, budget: int) -> dict:
    hv = {s: [] for s in SEARCHERS}
    best = {s: [] for s in SEARCHERS}
    wall = {s: 0.0 for s in SEARCHERS}
    for seed in range(seeds):
        results = {}
        for name in SEARCHERS:
            start = time.perf_counter()
            results[name] = create_searcher(name).search(space, predictor, estimator, constraint, budget, seed)
            wall[name] += time.perf_counter() - start
        points = feasible_points(results, constraint)
        for name, value in shared_reference_hypervolumes(points, constraint).items():
            hv[name].append(value)
            best[name].append(float(points[name][:, 1].max()) if len(points[name]) else float("nan"))
    return {"latency_target_ms": constraint.latency_ms, "hypervolume": hv,
            "mean_hypervolume": {k: float(np.mean(v)) for k, v in hv.items()},
            "mean_best_score": {k: float(np.mean(v)) for k, v in best.items()}, "search_s": wall}


def run(seeds: int, budget: int, root: Path) -> dict:
    full = get_space("ofa")
    estimator = SynflowProxy()
    space, held = hold_unseen(full, estimator)  # as `nas search` does: resolution held at 224 for synflow
    out = {}
    for device in DEVICES:
        predictor = _predictor(root, device, full)
        allowed = hardware_aware_space(space, predictor)
        rng = np.random.default_rng(123)
        genes = np.array([space.sample_genes(rng, space.option_mask()) for _ in range(2000)])
        target = float(np.percentile(predictor.predict_genes(space, genes), 30))
        layers = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
        out[device] = {"held": [h.to_dict() for h in held], "whole_front": _compare(space, predictor, estimator, Constraint(), seeds, budget),
                       "under_target": _compare(space, predictor, estimator, Constraint(target), seeds, budget),
                       "hardware_aware_space": {space.variables[i].name: [space.variables[i].labels[j]
                                                                          for j in allowed[i]] for i in layers}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=150, help="networks scored per search")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.seeds, args.budget, Path(tmp))
    ok = lambda good: "OK" if good else "MISSED"  # noqa: E731
    for setting, title in (("whole_front", "no latency constraint (whole front)"),
                           ("under_target", "under a latency target (30th percentile of random networks)")):
        held = next(iter(results.values()))["held"]
        print(f"\nsynflow proxy (log10), budget {args.budget}, {args.seeds} seeds, {title}; held: "
              + (", ".join(f"{h['variable']}={h['value']}" for h in held) or "nothing"))
        print(f"{'device':24} {'target ms':>9} " + " ".join(f"{s:>22}" for s in SEARCHERS))
        for device, r in results.items():
            r = r[setting]
            cells = [f"{np.mean(r['hypervolume'][s]):10.3f} ± {np.std(r['hypervolume'][s]):6.3f}" for s in SEARCHERS]
            target = f"{r['latency_target_ms']:.3f}" if r["latency_target_ms"] else "-"
            print(f"{device + ' (simulated)':24} {target:>9} " + " ".join(f"{c:>22}" for c in cells))
        for device, r in results.items():
            m, b = r[setting]["mean_hypervolume"], r[setting]["mean_best_score"]
            print(f"{device}: hypervolume evolutionary/random {m['evolutionary'] / m['random']:.3f}, hurricane/random "
                  f"{m['hurricane'] / m['random']:.3f} (target > 1): "
                  f"{ok(m['evolutionary'] > m['random'] and m['hurricane'] > m['random'])}; mean best proxy "
                  + ", ".join(f"{s} {b[s]:.3f}" for s in SEARCHERS))
    print("\nHURRICANE hardware-aware space (operators kept per layer):")
    names = list(next(iter(results.values()))["hardware_aware_space"])
    print(f"{'layer':8} " + " ".join(f"{d:>32}" for d in results))
    for layer in names:
        print(f"{layer:8} " + " ".join(f"{','.join(results[d]['hardware_aware_space'][layer]):>32}"
                                       for d in results))
    spaces = [tuple(map(tuple, r["hardware_aware_space"].values())) for r in results.values()]
    print(f"spaces differ between devices: {ok(len(set(spaces)) == len(spaces))}")
    emit("search", results, args.json)


if __name__ == "__main__":
    main()
