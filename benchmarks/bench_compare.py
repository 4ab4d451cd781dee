"""`hwprof compare` on recorded noise of the real cpu and a simulated NPU, optionally beside a neighbour.

Records ``--pairs`` pairs of runs of one ofa network on each device, each
pair measured interleaved as ``hwprof bench --baseline`` takes them (8
rounds: on cpu the chunked protocol with its quiet selection, on the
simulated NPU round-robin rounds of 10 samples), and judges each pair on its round medians
(and, for contrast, on the raw samples): A/A (target: flagged in <= 1%), current 10% slower (flagged
in >= 95%) and 3% slower with --threshold 0.05 (not flagged). Slowdowns scale
the recorded samples of the current run, so the noise is the device's own.

    python -m benchmarks.bench_compare [--pairs 100] [--json out.json]
    python -m benchmarks.bench_compare --neighbour stream:switching   # hwprof pinned to core 0, the neighbour on 1
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit
from hwprof.build_onnx import build_onnx
from hwprof.benchsuite import measure_models, measure_rounds
from hwprof.protocol import Protocol
from hwprof.profiling import get_device
from hwprof.regression import MIN_ROUNDS, NO_CHANGE, REGRESSION, compare_samples
from nas.spaces import get_space

ROUNDS = 8


def record(device_name: str, pairs: int) -> list[tuple[tuple, tuple]]:
    """Pairs of runs of the same model, each pair measured interleaved as `hwprof bench --baseline` does.

    Each run is (samples, round medians), as the results file of `hwprof bench` keeps them.
    """
    model = build_onnx(get_space("ofa").sample(np.random.default_rng(4)))
    out = []
    for seed in range(pairs):
        device = get_device(device_name, seed=2 * seed)
        if device.simulated:  # two noise seeds, as two runs of a simulated chip differ
            protocol = Protocol(warmup=3, min_samples=10, max_samples=10, target_ci=1e-3)
            sessions = [get_device(device_name, seed=2 * seed + k).load(model) for k in range(2)]
            rounds = measure_rounds(sessions, protocol, ROUNDS)
            for session in sessions:
                session.close()
            runs = [(np.concatenate(r), np.array([np.median(x) for x in r])) for r in rounds]
        else:
            measured = measure_models(device, [model, model], Protocol(warmup=3, min_time_s=0.03), ROUNDS, seed)
            runs = [(np.asarray(samples), np.asarray(medians)) for samples, medians, _ in measured]
        out.append((runs[0], runs[1]))
    return out


def judge(pairs: list, on_rounds: bool) -> dict:
    counts = {"a_a_flagged": 0, "slow10_flagged": 0, "slow3_flagged": 0}
    for a, b in pairs:
        base, cur = (a[1], b[1]) if on_rounds and min(len(a[1]), len(b[1])) >= MIN_ROUNDS else (a[0], b[0])
        counts["a_a_flagged"] += compare_samples(base, cur).verdict != NO_CHANGE
        counts["slow10_flagged"] += compare_samples(base, cur * 1.10).verdict == REGRESSION
        counts["slow3_flagged"] += compare_samples(base, cur * 1.03).verdict != NO_CHANGE
    return {k: v / len(pairs) for k, v in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--json")
    parser.add_argument("--neighbour", default=None, help="KIND:PATTERN of benchmarks.neighbour on core 1 "
                        "(e.g. stream:switching); hwprof is pinned to core 0")
    args = parser.parse_args()
    import contextlib
    import os

    from benchmarks.neighbour import Neighbour

    neighbour = contextlib.nullcontext()
    if args.neighbour:
        os.sched_setaffinity(0, {0})
        kind, _, pattern = args.neighbour.partition(":")
        neighbour = Neighbour(kind, pattern or "switching", cores=[1], seed=0)
    ok = lambda good: "OK" if good else "MISSED"  # noqa: E731
    results = {}
    for device in ("cpu", "kirin-npu"):
        with neighbour if device == "cpu" else contextlib.nullcontext():
            runs = record(device, args.pairs)
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
