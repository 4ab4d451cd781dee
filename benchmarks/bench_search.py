"""Searchers compared: hypervolume of random, evolutionary and hurricane per device.

Same predictor (lut with kernel-rf fallback, fitted on 300 measured ofa
networks per device), same estimator (synflow proxy, cached by arch hash), same
budget, over several seeds. Target: evolutionary and hurricane reach a higher
mean hypervolume than random on kirin-npu, hexagon-dsp and myriad-vpu (all
simulated). The hypervolume of each (device, seed) uses one reference point for
the three searchers: the slowest latency and lowest score any of them saw.
Also prints HURRICANE's hardware-aware space per device (operators kept per
layer), which must differ between devices.

    python -m benchmarks.bench_search [--seeds 5] [--budget 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit
from hwprof.dataset import Dataset
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import get_device, measure_into
from nas.accuracy.proxies import SynflowProxy
from nas.searchers import Constraint, create_searcher
from nas.searchers.base import hypervolume
from nas.searchers.hurricane import hardware_aware_space
from nas.spaces import get_space

DEVICES = ["kirin-npu", "hexagon-dsp", "myriad-vpu"]
SEARCHERS = ["random", "evolutionary", "hurricane"]


def _predictor(root: Path, device: str, space):
    path = root / device
    rng = np.random.default_rng(0)
    measure_into(Dataset(path), get_device(device, seed=0), [space.sample(rng) for _ in range(300)], mode="both")
    return fit_on("lut", load_measurements(path), fallback="kernel-rf")


def run(seeds: int, budget: int, root: Path) -> dict:
    space = get_space("ofa")
    estimator = SynflowProxy()
    out = {}
    for device in DEVICES:
        predictor = _predictor(root, device, space)
        allowed = hardware_aware_space(space, predictor)
        hv = {s: [] for s in SEARCHERS}
        wall = {s: 0.0 for s in SEARCHERS}
        for seed in range(seeds):
            results = {}
            for name in SEARCHERS:
                start = time.perf_counter()
                results[name] = create_searcher(name).search(space, predictor, estimator, Constraint(), budget, seed)
                wall[name] += time.perf_counter() - start
            lat = np.concatenate([[c.latency_ms for c in r.history] for r in results.values()])
            score = np.concatenate([[c.score for c in r.history] for r in results.values()])
            ref = (float(lat.max()), float(score.min()))
            for name, r in results.items():
                hv[name].append(hypervolume(np.array([c.latency_ms for c in r.history]),
                                            np.array([c.score for c in r.history]), ref))
        layers = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
        out[device] = {"hypervolume": hv, "mean_hypervolume": {k: float(np.mean(v)) for k, v in hv.items()},
                       "search_s": wall,
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
    print(f"synflow proxy, budget {args.budget}, {args.seeds} seeds, no latency constraint (whole front)")
    print(f"{'device':24} " + " ".join(f"{s:>22}" for s in SEARCHERS))
    for device, r in results.items():
        cells = [f"{np.mean(r['hypervolume'][s]):10.2f} ± {np.std(r['hypervolume'][s]):6.2f}" for s in SEARCHERS]
        print(f"{device + ' (simulated)':24} " + " ".join(f"{c:>22}" for c in cells))
    for device, r in results.items():
        m = r["mean_hypervolume"]
        print(f"{device}: evolutionary/random {m['evolutionary'] / m['random']:.3f}, hurricane/random "
              f"{m['hurricane'] / m['random']:.3f} (target > 1): "
              f"{ok(m['evolutionary'] > m['random'] and m['hurricane'] > m['random'])}")
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
