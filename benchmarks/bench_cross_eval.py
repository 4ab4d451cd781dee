"""Is a network searched for target T better on T than one searched for another? Real runtimes, measured.

Reads the real-target data that ``bench_runtimes --sections predictors``
measured (``DATA/<target>-train``: 300 ``ofa`` networks and their blocks per
target; ``DATA/<target>-predictors.json``: its predictor table), then:

1. **Cross-eval matrix** (``nas cross-eval``): each target's predictor is
   chosen as a real target's default is (``fit-predictor --model best``: the
   lowest 5-fold cross-validated MAPE among the predictors), fitted on its 300
   training networks and handed to the search with ``--predictor``; the budget is the
   0.3 quantile of 2000 random networks' predicted latency; one evolutionary
   search per target and seed under the synflow *proxy* score; every winner is
   then measured on every target (drift-corrected). Reported per target: how
   often its own winner meets its budget, and how often it wins or ties the
   best feasible winner searched for another target (target: >= 4 of 5 seeds).
2. **Block-choice rankings** (``hwprof profile-space --compare``): per-choice
   latency contributions on every real target (from the same 300 networks, as
   ``profile-space --data`` does) and on the four simulated chips, with the
   pairwise Kendall tau and the top/bottom three choices per target.
3. **Issue 5's criterion**: on each real target, does every model beat
   ``flops-linear`` on MAPE by more than that target's test-retest MAPE?

Keep the machine quiet while the winners are measured.

    python -m benchmarks.bench_cross_eval --data-dir bench-runtimes-data [--targets cpu,litert-cpu:int8,openvino-cpu]
        [--seeds 5] [--out bench-xeval] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import emit

SIMULATED = ["kirin-npu", "hexagon-dsp", "myriad-vpu", "snapdragon-cpu"]


def _tag(token: str) -> str:
    return token.replace(":", "-")


def fitted_predictors(data_dir: Path, targets: list[str], out: Path) -> dict[str, Path]:
    """Each target's predictor, chosen by cross-validation and fitted on its training networks (kept for a rerun)."""
    from hwprof.predictors import store
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.training import BEST, fit_and_test

    files = {}
    for token in targets:
        path = out / "predictors" / f"{_tag(token)}-best.pred"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"choosing and fitting a predictor on {data_dir / (_tag(token) + '-train')}", flush=True)
            predictor, _ = fit_and_test(BEST, [load_measurements(data_dir / f"{_tag(token)}-train")], test_fraction=0)
            store.save(predictor, path)
        chosen = store.load(path).provenance_["selection"]
        print(f"{token}: {chosen['chosen']} (out-of-fold MAPE " + ", ".join(
            f"{name} {m['mape']:.2%}" for name, m in chosen["scores"].items()) + ")", flush=True)
        files[token] = path
    return files


def rankings(data_dir: Path, targets: list[str], out: Path, samples: int) -> dict:
    """profile-space --compare over the real targets (their training data) and the simulated chips."""
    from hwprof.space_profile import compare_targets, profile_device
    from nas.spaces import get_space

    space = get_space("ofa")

    def profile_one(token: str):
        data = data_dir / f"{_tag(token)}-train" if token in targets else None
        return profile_device(space, token, out / "profiles" / _tag(token), data=data, samples=samples)[1]

    (out / "profiles").mkdir(parents=True, exist_ok=True)
    return compare_targets(targets + [s for s in SIMULATED if s not in targets], out / "profiles", 3, 0, profile_one)


def flops_criterion(data_dir: Path, targets: list[str]) -> dict:
    """Issue 5: every model's MAPE below flops-linear's by more than the test-retest MAPE?"""
    result = {}
    for token in targets:
        path = data_dir / f"{_tag(token)}-predictors.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text())
        floor, flops = rows["test-retest"]["mape"], rows["flops-linear"]["mape"]
        margins = {name: flops - m["mape"] for name, m in rows.items() if name not in ("flops-linear", "test-retest")}
        result[token] = {"flops_linear_mape": flops, "test_retest_mape": floor, "margins": margins,
                         "every_model_beats_flops_beyond_noise": all(v > floor for v in margins.values())}
    return result


def main() -> None:
    from nas.cross_eval import cross_eval

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="bench_runtimes' --data-dir (predictors section done)")
    parser.add_argument("--targets", default="cpu,litert-cpu:int8,openvino-cpu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--search-budget", type=int, default=400)
    parser.add_argument("--sim-samples", type=int, default=1000, help="profile sample on each simulated chip")
    parser.add_argument("--out", default="bench-xeval")
    parser.add_argument("--json")
    args = parser.parse_args()
    data_dir, out = Path(args.data_dir), Path(args.out)
    targets = [t for t in args.targets.split(",") if t]
    results: dict = {}

    files = fitted_predictors(data_dir, targets, out)
    summary = cross_eval("ofa", targets, out / "xeval", budget_quantile=0.3, estimator="synflow",
                         budget=args.search_budget, seeds=args.seeds, predictor_files=files,
                         status=lambda m: print(f"  {m}", flush=True))
    results["cross_eval"] = summary
    print(f"\ncross-eval, ofa, synflow proxy, {args.seeds} seeds (diagonal = searched for the column's target)")
    for token, d in summary["diagonal"].items():
        label = f"{token} (simulated)" if summary["simulated"][token] else token
        print(f"  {label:18s} budget {summary['budgets_ms'][token]:7.3f} ms: own winner feasible "
              f"{d['diagonal_feasible']}/{d['runs']}, wins or ties {d['wins_or_ties']}/{d['runs']} (target >= 4)")
        for e in d["seeds"]:
            other = e["best_feasible_other_score"]
            print(f"      seed {e['seed']}: own {e['diagonal_ms']:.3f} ms, proxy {e['diagonal_score']:.3f}; best "
                  f"feasible other {'none' if other is None else f'{other:.3f}'}")

    compare = rankings(data_dir, targets, out, args.sim_samples)
    results["rankings"] = compare
    tokens = list(compare["tau"])
    print("\nKendall tau between block-choice rankings (ofa)")
    print(" " * 18 + "".join(f"{t[:12]:>13s}" for t in tokens))
    for a in tokens:
        print(f"{a[:18]:18s}" + "".join(f"{compare['tau'][a][b]:13.3f}" for b in tokens))
    for t in tokens:
        sim = " (simulated)" if compare["simulated"][t] else ""
        print(f"  {t}{sim}: top {', '.join(compare['top'][t])}; bottom {', '.join(compare['bottom'][t])}")

    results["flops_criterion"] = flops_criterion(data_dir, targets)
    print("\nissue 5: every model beats flops-linear on MAPE by more than the test-retest MAPE?")
    for token, r in results["flops_criterion"].items():
        worst = min(r["margins"], key=r["margins"].get)
        print(f"  {token:18s} flops-linear MAPE {r['flops_linear_mape']:.2%}, test-retest {r['test_retest_mape']:.2%}; "
              f"smallest margin {worst} {r['margins'][worst]:+.2%}: "
              f"{'yes' if r['every_model_beats_flops_beyond_noise'] else 'no'}")
    emit("cross_eval", results, args.json)


if __name__ == "__main__":
    main()
