"""`hwprof compare` on recorded noise of the real cpu and a simulated NPU, optionally beside a neighbour.

Records ``--pairs`` pairs of runs of one ofa network on each device, each
pair measured interleaved as ``hwprof bench --baseline`` takes them with a
suite's default ``[protocol]`` (on cpu the chunked protocol with its quiet
selection, 16 chunks of 31 ms per model unless ``--rounds``; on the simulated
NPU 8 round-robin rounds of 10 samples). Each pair is judged round by
round (paired, as `hwprof compare` judges interleaved runs) and, for contrast,
on its round medians and on its raw samples: A/A (target: flagged in <= 1%),
current 10% slower (flagged in >= 95%) and 3% slower with --threshold 0.05
(not flagged). Slowdowns scale the recorded times of the current run, so the
noise is the device's own.

    python -m benchmarks.bench_compare [--pairs 100] [--json out.json]
    python -m benchmarks.bench_compare --neighbour stream:switching   # hwprof pinned to core 0, the neighbour on 1
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit
from devices import resolve
from hwprof.build_onnx import build_onnx
from hwprof.benchsuite import ModelRun, measure_models, measure_rounds, suite_protocol
from hwprof.protocol import Protocol
from hwprof.regression import MIN_ROUNDS, NO_CHANGE, REGRESSION, compare_paired, compare_samples, paired_rounds
from nas.spaces import get_space

ROUNDS = 8


def record(device_name: str, pairs: int, rounds: int | None = None) -> list[tuple[ModelRun, ModelRun]]:
    """Pairs of runs of the same model, each pair measured interleaved as `hwprof bench --baseline` does.

    Each run is a :class:`~hwprof.benchsuite.ModelRun`, as the results file of `hwprof bench` keeps it.
    """
    model = build_onnx(get_space("ofa").sample(np.random.default_rng(4)))
    out = []
    for seed in range(pairs):
        device = resolve(device_name, seed=2 * seed)
        if device.simulated:  # two noise seeds, as two runs of a simulated chip differ
            protocol = Protocol(warmup=3, min_samples=10, max_samples=10, target_ci=1e-3)
            sessions = [resolve(device_name, seed=2 * seed + k).load(model) for k in range(2)]
            per_model = measure_rounds(sessions, protocol, rounds or ROUNDS)
            for session in sessions:
                session.close()
            runs = [ModelRun.from_rounds(r) for r in per_model]
        else:
            # as `hwprof bench` times a suite with the default [protocol] (or only its rounds given)
            protocol, n_rounds = suite_protocol({"rounds": rounds} if rounds else {}, simulated=False)
            runs = measure_models(device, [model, model], protocol, n_rounds, seed)
        out.append((runs[0], runs[1]))
    return out


def _scaled(run: ModelRun, factor: float) -> ModelRun:
    chunks = {**run.chunks, "median_ms": [m * factor for m in run.chunks["median_ms"]]}
    return ModelRun(np.asarray(run.samples_ms) * factor, [m * factor for m in run.round_medians_ms], chunks)


def _verdict(base: ModelRun, cur: ModelRun, mode: str) -> str:
    if mode == "paired":
        paired = paired_rounds({"chunks": base.chunks}, {"chunks": cur.chunks})
        if paired is not None:
            return compare_paired(paired[0], paired[1]).verdict
        mode = "rounds"
    if mode == "rounds" and min(len(base.round_medians_ms), len(cur.round_medians_ms)) >= MIN_ROUNDS:
        return compare_samples(np.asarray(base.round_medians_ms), np.asarray(cur.round_medians_ms)).verdict
    return compare_samples(np.asarray(base.samples_ms), np.asarray(cur.samples_ms)).verdict


def judge(pairs: list, mode: str) -> dict:
    """Shares flagged: A/A, current 10% slower, current 3% slower; ``mode``: paired, rounds or raw."""
    counts = {"a_a_flagged": 0, "slow10_flagged": 0, "slow3_flagged": 0}
    for a, b in pairs:
        counts["a_a_flagged"] += _verdict(a, b, mode) != NO_CHANGE
        counts["slow10_flagged"] += _verdict(a, _scaled(b, 1.10), mode) == REGRESSION
        counts["slow3_flagged"] += _verdict(a, _scaled(b, 1.03), mode) != NO_CHANGE
    result = {k: v / len(pairs) for k, v in counts.items()}
    if mode == "paired":
        judged = [paired_rounds({"chunks": a.chunks}, {"chunks": b.chunks}) for a, b in pairs]
        result["pairs_on_quiet_rounds_only"] = sum(bool(j and j[2]) for j in judged) / len(pairs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--json")
    parser.add_argument("--rounds", type=int, default=None, help="cpu: chunks per model, the suite's [protocol] "
                        "rounds (default: hwprof bench's, 0.5 s of inference in all); simulated: 8 rounds")
    parser.add_argument("--dump", help="also write every pair's chunk records here (JSON), to study other rules")
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
    results, dumped = {}, {}
    for device in ("cpu", "kirin-npu"):
        with neighbour if device == "cpu" else contextlib.nullcontext():
            runs = record(device, args.pairs, args.rounds)
        if args.dump:
            dumped[device] = [[run.chunks for run in pair] for pair in runs]
        for mode in ("paired", "rounds", "raw"):
            r = judge(runs, mode)
            results[f"{device} {mode}"] = r
            label = device + (" (simulated)" if device != "cpu" else "")
            print(f"{label:22} {mode:6} A/A flagged {r['a_a_flagged']:5.1%} "
                  f"(<= 1%: {ok(r['a_a_flagged'] <= 0.01)})  10% slower flagged {r['slow10_flagged']:5.1%} "
                  f"(>= 95%: {ok(r['slow10_flagged'] >= 0.95)})  3% slower flagged {r['slow3_flagged']:5.1%} "
                  f"(0%: {ok(r['slow3_flagged'] == 0)})")
    emit("compare", results, args.json)
    if args.dump:
        from hwprof.io import write_json

        write_json(args.dump, dumped, indent=None)


if __name__ == "__main__":
    main()
