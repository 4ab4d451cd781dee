"""Benchmarks of hwprof itself, in one runner.

    python -m benchmarks --out results.json        # quick suite -> hwprof.bench results file
    python -m benchmarks --full                    # every benchmark script with its targets

The quick suite times hwprof's own hot paths (ONNX build, a simulated
measurement, predictor fit and predict, a small search) with repeated
samples, and writes them in the format of ``hwprof bench``, so two runs can be
checked with ``hwprof compare base.json current.json``. ``--full`` runs the
target-checking scripts (measurement overhead, predictor accuracy, search
hypervolume, regression-check error rates), which take many minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

FULL = ["benchmarks.bench_build_onnx", "benchmarks.bench_build_tflite", "benchmarks.bench_measure", "benchmarks.bench_predictors",
        "benchmarks.bench_search", "benchmarks.bench_compare", "benchmarks.bench_single_path",
        "benchmarks.bench_space_reduction", "benchmarks.bench_estimator_dimensions", "benchmarks.bench_byom",
        "benchmarks.bench_constrained"]


def _samples(fn: Callable[[], object], repeats: int, arms: int = 1) -> list[list[float]]:
    """``repeats`` timings (ms) per arm; the arms take turns, so drift of the machine hits each alike."""
    fn()  # warm-up
    out: list[list[float]] = [[] for _ in range(arms)]
    for i in range(repeats * arms):
        start = time.perf_counter()
        fn()
        out[i % arms].append((time.perf_counter() - start) * 1e3)
    return out


def quick_suite(repeats: int, arms: int = 1) -> list[list[dict]]:
    """hwprof's hot paths timed: one list of results per arm.

    With ``arms=2`` the samples of the two arms are interleaved in one process, an A/A
    pair that ``hwprof compare`` must call "no change": a noisy neighbour or a clock
    change slows both arms alike instead of failing the check.
    """
    from devices import resolve
    from hwprof.device import Device
    from hwprof.build_onnx import build_onnx
    from hwprof.dataset import Dataset
    from hwprof.protocol import Protocol, measure_session
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.training import fit_on
    from hwprof.profiling import measure_into
    from nas.accuracy.proxies import SynflowProxy
    from nas.searchers import Constraint, create_searcher
    from nas.spaces import get_space

    space = get_space("ofa")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(120)]
    npu: Device = resolve("kirin-npu", seed=0)
    items = {"build_onnx ofa": _samples(lambda: build_onnx(archs[0]), repeats, arms),
             "simulated measure ofa (kirin-npu)": _samples(
                 lambda: measure_session(npu.load(build_onnx(archs[1])), Protocol()), repeats, arms)}
    with tempfile.TemporaryDirectory() as tmp:
        measure_into(Dataset(tmp), npu, archs, mode="both")
        data = load_measurements(tmp)
        items["fit lut+kernel-rf (120 nets)"] = _samples(lambda: fit_on("lut", data, fallback="kernel-rf"),
                                                        max(3, repeats // 4), arms)
        items["fit additive (120 nets)"] = _samples(lambda: fit_on("additive", data), max(3, repeats // 4), arms)
        lut = fit_on("lut", data, fallback="kernel-rf")
        genes = np.array([space.sample_genes(rng) for _ in range(10_000)])
        items["predict_genes lut (10k)"] = _samples(lambda: lut.predict_genes(space, genes), repeats, arms)
        os.environ["HWPROF_CACHE"] = str(Path(tmp) / "cache")
        proxy = SynflowProxy(workers=1)
        items["search evolutionary (budget 60, cached proxy)"] = _samples(
            lambda: create_searcher("evolutionary").search(space, lut, proxy, Constraint(), 60, 0),
            max(3, repeats // 4), arms)
    return [[{"model": name, "device": "host", "simulated": False, "settings": {}, "profile_hash": "",
              "median_ms": float(np.median(s[arm])), "p10_ms": float(np.percentile(s[arm], 10)),
              "p90_ms": float(np.percentile(s[arm], 90)), "n": len(s[arm]), "samples_ms": s[arm]}
             for name, s in items.items()] for arm in range(arms)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the quick suite's results (hwprof.bench JSON) here")
    parser.add_argument("--repeats", type=int, default=20, help="samples per quick item")
    parser.add_argument("--aa", nargs=2, metavar=("A.json", "B.json"),
                        help="time every item as two interleaved arms and write one results file per arm "
                             "(an A/A pair for checking `hwprof compare` against the machine's own noise)")
    parser.add_argument("--full", action="store_true", help="run every benchmark script instead")
    args = parser.parse_args()
    if args.full:
        for name in FULL:
            print(f"== {name}", flush=True)
            sys.argv = [name]
            importlib.import_module(name).main()
        return
    from hwprof.device import host_info
    from hwprof.benchsuite import results_document
    from hwprof.io import atomic_write_text

    outs = list(args.aa) if args.aa else [args.out]
    profile = host_info()
    for results, out in zip(quick_suite(args.repeats, arms=len(outs)), outs):
        for r in results:
            print(f"{r['model']:48} median {r['median_ms']:9.2f} ms  (p10 {r['p10_ms']:.2f}, "
                  f"p90 {r['p90_ms']:.2f}, n {r['n']})")
            r["profile_hash"] = f"{profile['cpu_model']}/{profile['cores']}"
        if out:
            atomic_write_text(out, json.dumps(results_document("hwprof-self", results), indent=1) + "\n")
            print(f"results written to {out}")


if __name__ == "__main__":
    main()
