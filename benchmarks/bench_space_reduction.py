"""Space reduction (Mills et al.) and progressive shrinking (GoldenNAS) against plain search.

Per simulated device (kirin-npu, hexagon-dsp, myriad-vpu):

1. profile ``ofa`` from end-to-end latencies of 1000 networks at the largest
   resolution (``hwprof profile-space``), and reduce it (``hwprof reduce-space``,
   gains judged by the search's own estimator, the synflow proxy);
2. fit the search's latency predictor (lut with kernel-rf fallback, 300
   networks, as ``bench_search``);
3. over several seeds, at the same budget and with the same estimator (synflow
   proxy), run evolutionary search in the original space, in the reduced space,
   and in the original space with ``--shrink``.

Hypervolume of each (device, seed, setting) uses one reference point for the
three runs: the slowest latency and the lowest proxy score any of them saw
(or the latency target). Targets: reduced > original in mean hypervolume on
every device; shrink no worse than original (ratio >= 1 to within 0.5 %, the
spread of reruns of the same search being far larger).

Also prints, per device, the profile's top and bottom three choices and its
rank agreement with directly measured block latencies (Kendall tau).

    python -m benchmarks.bench_space_reduction [--seeds 5] [--budget 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import math
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
from hwprof.space_profile import profile_sample, profile_space
from nas.space_reduction import reduce_space, score_contributions
from nas.accuracy.proxies import SynflowProxy
from nas.dimensions import hold_unseen
from nas.searchers import Constraint, create_searcher
from nas.spaces import get_space

DEVICES = ["kirin-npu", "hexagon-dsp", "myriad-vpu"]
RUNS = ["original", "reduced", "shrink"]


def _profile(root: Path, device: str, space, n: int):
    path = root / f"profile-{device}"
    measure_into(Dataset(path), resolve(device, seed=0), profile_sample(space, n, seed=0), mode="both")
    data = load_measurements(path)
    return profile_space(space, data, bootstrap=30), data.archs


def _predictor(root: Path, device: str, space):
    path = root / f"predictor-{device}"
    rng = np.random.default_rng(0)
    measure_into(Dataset(path), resolve(device, seed=0), [space.sample(rng) for _ in range(300)], mode="both")
    return fit_on("lut", load_measurements(path), fallback="kernel-rf")


def _compare(spaces: dict, predictor, estimator, constraint: Constraint, seeds: int, budget: int) -> dict:
    hv = {r: [] for r in RUNS}
    removed = []
    wall = {r: 0.0 for r in RUNS}
    for seed in range(seeds):
        results = {}
        for run in RUNS:
            start = time.perf_counter()
            searcher = create_searcher("evolutionary", shrink=run == "shrink")
            space = spaces["reduced" if run == "reduced" else "original"]
            results[run] = searcher.search(space, predictor, estimator, constraint, budget, seed)
            wall[run] += time.perf_counter() - start
        removed.append(len(results["shrink"].extra["shrink"]["removed"]))
        for r, value in shared_reference_hypervolumes(feasible_points(results, constraint), constraint).items():
            hv[r].append(value)
    return {"latency_target_ms": constraint.latency_ms, "hypervolume": hv,
            "mean_hypervolume": {r: float(np.mean(v)) for r, v in hv.items()},
            "shrink_removed_choices": removed, "search_s": wall}


def run(seeds: int, budget: int, profile_samples: int, root: Path) -> dict:
    space = get_space("ofa")
    estimator = SynflowProxy()
    out = {}
    for device in DEVICES:
        profile, profiled = _profile(root, device, space, profile_samples)
        gains = score_contributions(space, profiled, estimator.score(profiled))
        reduced, _ = reduce_space(space, profile, gains)
        predictor = _predictor(root, device, space)
        # as `nas search` does: what synflow (at 128 px) cannot judge, resolution, is held at 224
        searched, held = hold_unseen(space, estimator)
        reduced_searched, _ = hold_unseen(reduced, estimator)
        rng = np.random.default_rng(123)
        genes = np.array([searched.sample_genes(rng, searched.option_mask()) for _ in range(2000)])
        target = float(np.percentile(predictor.predict_genes(space, genes), 30))
        spaces = {"original": searched, "reduced": reduced_searched}
        ranking = profile.ranking()
        out[device] = {
            "held": [h.to_dict() for h in held],
            "profile": {"networks": profile.networks, "top3": ranking.choice.head(3).tolist(),
                        "bottom3": ranking.choice.tail(3).tolist(), "kendall_tau": profile.kendall_tau,
                        "kendall_tau_within_positions": profile.kendall_tau_within,
                        "kendall_tau_choice_ranking": profile.kendall_tau_ranking},
            "reduced": {"size_log10": math.log10(reduced.size()), "base_size_log10": math.log10(space.size()),
                        "kept_options": sum(len(m) for m, v in zip(reduced.mask, space.variables) if v.kind == "layer"),
                        "base_options": sum(len(v.options) for v in space.variables if v.kind == "layer")},
            "whole_front": _compare(spaces, predictor, estimator, Constraint(), seeds, budget),
            "under_target": _compare(spaces, predictor, estimator, Constraint(target), seeds, budget),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=300, help="networks scored per search")
    parser.add_argument("--profile-samples", type=int, default=1000, help="networks measured for each profile")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.seeds, args.budget, args.profile_samples, Path(tmp))
    ok = lambda good: "OK" if good else "MISSED"  # noqa: E731
    print("\nprofile-space on ofa (simulated devices): top / bottom three choices, Kendall tau vs measured blocks")
    for device, r in results.items():
        p = r["profile"]
        print(f"{device + ' (simulated)':24} top {', '.join(p['top3']):24} bottom {', '.join(p['bottom3']):24} "
              f"tau ranking {p['kendall_tau_choice_ranking']:.3f}, within positions "
              f"{p['kendall_tau_within_positions']:.3f}, pooled {p['kendall_tau']:.3f}")
    tops = [tuple(r["profile"]["top3"] + r["profile"]["bottom3"]) for r in results.values()]
    print(f"rankings differ between devices: {ok(len(set(tops)) == len(tops))}")
    for device, r in results.items():
        red = r["reduced"]
        print(f"{device}: reduced space keeps {red['kept_options']} of {red['base_options']} layer options, "
              f"size 10^{red['base_size_log10']:.2f} -> 10^{red['size_log10']:.2f}")
    for setting, title in (("whole_front", "no latency constraint (whole front)"),
                           ("under_target", "under a latency target (30th percentile of random networks)")):
        print(f"\nevolutionary search, synflow proxy (log10), budget {args.budget}, {args.seeds} seeds, {title}")
        print(f"{'device':24} {'target ms':>9} " + " ".join(f"{r:>20}" for r in RUNS) + "  removed by shrink")
        for device, r in results.items():
            r = r[setting]
            cells = [f"{np.mean(r['hypervolume'][k]):9.3f} ± {np.std(r['hypervolume'][k]):7.3f}" for k in RUNS]
            target = f"{r['latency_target_ms']:.3f}" if r["latency_target_ms"] else "-"
            print(f"{device + ' (simulated)':24} {target:>9} " + " ".join(f"{c:>20}" for c in cells)
                  + f"  {np.mean(r['shrink_removed_choices']):.1f}")
        for device, r in results.items():
            m = r[setting]["mean_hypervolume"]
            print(f"{device}: reduced/original {m['reduced'] / m['original']:.3f} (target > 1) "
                  f"{ok(m['reduced'] > m['original'])}; shrink/original {m['shrink'] / m['original']:.4f} "
                  f"(target: no worse) {ok(m['shrink'] >= 0.995 * m['original'])}")
    emit("space_reduction", results, args.json)


if __name__ == "__main__":
    main()
