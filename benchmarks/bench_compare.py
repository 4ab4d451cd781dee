"""`hwprof compare` on recorded noise of the real cpu and a simulated NPU.

Records ``--runs`` independent runs of one ofa network on each device, each
as ``hwprof bench`` takes it (8 rounds of 10 samples), then judges 100 random
pairs of distinct runs on their round medians (and, for contrast, on the raw
samples): A/A (target: flagged in <= 1%), current 10% slower (flagged
in >= 95%) and 3% slower with --threshold 0.05 (not flagged). Slowdowns scale
the recorded samples of the current run, so the noise is the device's own.

    python -m benchmarks.bench_compare [--runs 40] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit
from hwprof.build_onnx import build_onnx
from hwprof.benchsuite import measure_rounds
from hwprof.protocol import Protocol
from hwprof.profiling import get_device
from hwprof.regression import NO_CHANGE, REGRESSION, compare_samples
from nas.spaces import get_space

ROUNDS = 8


def record(device_name: str, runs: int) -> list[list[np.ndarray]]:
    """Per run: the samples of each of its rounds."""
    model = build_onnx(get_space("ofa").sample(np.random.default_rng(4)))
    out = []
    for seed in range(runs):
        device = get_device(device_name, seed=seed)
        session = device.load(model)
        out.append(measure_rounds([session], Protocol(warmup=3, min_samples=10, max_samples=10, target_ci=1e-3),
                                  ROUNDS)[0])
        session.close()
    return out


def judge(runs: list[list[np.ndarray]], on_rounds: bool, pairs: int = 100, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    counts = {"a_a_flagged": 0, "slow10_flagged": 0, "slow3_flagged": 0}

    def data(run: list[np.ndarray]) -> np.ndarray:
        return np.array([np.median(r) for r in run]) if on_rounds else np.concatenate(run)

    for _ in range(pairs):
        i, j = rng.choice(len(runs), size=2, replace=False)
        base, cur = data(runs[i]), data(runs[j])
        counts["a_a_flagged"] += compare_samples(base, cur).verdict != NO_CHANGE
        counts["slow10_flagged"] += compare_samples(base, cur * 1.10).verdict == REGRESSION
        counts["slow3_flagged"] += compare_samples(base, cur * 1.03).verdict != NO_CHANGE
    return {k: v / pairs for k, v in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json")
    args = parser.parse_args()
    ok = lambda good: "OK" if good else "MISSED"  # noqa: E731
    results = {}
    for device in ("cpu", "kirin-npu"):
        runs = record(device, args.runs)
        for on_rounds in (True, False):
            r = judge(runs, on_rounds)
            results[f"{device} {'round medians' if on_rounds else 'raw samples'}"] = r
            label = device + (" (simulated)" if device != "cpu" else "")
            print(f"{label:22} {'rounds' if on_rounds else 'raw':6} A/A flagged {r['a_a_flagged']:5.1%} "
                  f"(<= 1%: {ok(r['a_a_flagged'] <= 0.01)})  10% slower flagged {r['slow10_flagged']:5.1%} "
                  f"(>= 95%: {ok(r['slow10_flagged'] >= 0.95)})  3% slower flagged {r['slow3_flagged']:5.1%} "
                  f"(0%: {ok(r['slow3_flagged'] == 0)})")
    emit("compare", results, args.json)


if __name__ == "__main__":
    main()
