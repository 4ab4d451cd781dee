"""ONNX build time of search-space networks (target: ofa median <= 50 ms).

    python -m benchmarks.bench_build_onnx [--n 30] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit, summary, time_calls
from hwprof.build_onnx import build_onnx
from nas.spaces import get_space, space_names

TARGET_MS = 50.0


def run(n: int = 30, repeats: int = 3) -> dict:
    results = {}
    for space in space_names():
        sp = get_space(space)
        rng = np.random.default_rng(0)
        archs = [sp.sample(rng) for _ in range(n)]
        times = []
        for arch in archs:
            times += time_calls(lambda a=arch: build_onnx(a), repeats)
        results[space] = summary(times)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30, help="networks per space")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    results = run(args.n)
    print(f"{'space':10} {'median ms':>10} {'p25':>8} {'p75':>8}")
    for space, r in results.items():
        print(f"{space:10} {r['median_ms']:10.1f} {r['p25_ms']:8.1f} {r['p75_ms']:8.1f}")
    ofa = results["ofa"]["median_ms"]
    verdict = "OK" if ofa <= TARGET_MS else "SLOWER THAN TARGET"
    print(f"ofa ONNX build median {ofa:.1f} ms (target <= {TARGET_MS:.0f} ms): {verdict}")
    emit("build_onnx", results, args.json)


if __name__ == "__main__":
    main()
