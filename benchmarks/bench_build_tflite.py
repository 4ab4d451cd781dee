"""LiteRT (.tflite) build time of search-space networks (target: ofa median <= 100 ms, IR to flatbuffer).

A network reaches ``litert-cpu`` as hwprof's ONNX, lowered by
:mod:`hwprof.build_tflite`; the time counted is both steps, the way a
measurement pays it. Printed beside it, from the same run: the ONNX build
alone, and the int8 build (which adds a calibration pass in LiteRT).

    python -m benchmarks.bench_build_tflite [--n 20] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit, summary, time_calls
from hwprof.build_onnx import build_onnx
from hwprof.build_tflite import onnx_to_tflite
from nas.spaces import get_space, space_names

TARGET_MS = 100.0


def run(n: int = 20, repeats: int = 3, int8_n: int = 3) -> dict:
    results = {}
    for space in space_names():
        sp = get_space(space)
        rng = np.random.default_rng(0)
        archs = [sp.sample(rng) for _ in range(n)]
        onnx_times, tflite_times, int8_times = [], [], []
        for arch in archs:
            onnx_times += time_calls(lambda a=arch: build_onnx(a), repeats)
            tflite_times += time_calls(lambda a=arch: onnx_to_tflite(build_onnx(a)), repeats)
        for arch in archs[:int8_n]:
            int8_times += time_calls(lambda a=arch: onnx_to_tflite(build_onnx(a), "int8"), 1)
        results[space] = {"onnx": summary(onnx_times), "tflite": summary(tflite_times), "int8": summary(int8_times)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="networks per space")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    results = run(args.n)
    print(f"{'space':10} {'onnx ms':>9} {'tflite ms':>10} {'int8 ms':>9}   (medians; tflite includes the ONNX build)")
    for space, r in results.items():
        print(f"{space:10} {r['onnx']['median_ms']:9.1f} {r['tflite']['median_ms']:10.1f} "
              f"{r['int8']['median_ms']:9.1f}")
    ofa = results["ofa"]["tflite"]["median_ms"]
    verdict = "OK" if ofa <= TARGET_MS else "SLOWER THAN TARGET"
    print(f"ofa LiteRT build median {ofa:.1f} ms (target <= {TARGET_MS:.0f} ms): {verdict}")
    emit("build_tflite", results, args.json)


if __name__ == "__main__":
    main()
