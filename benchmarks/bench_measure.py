"""Measurement pipeline: overhead, agreement with a plain timeit loop, simulated throughput.

Three figures, each measured side by side in this one run:

1. **cpu overhead ratio** (target <= 1.3): wall time of ``hwprof measure --device cpu``
   (a subprocess, process start included) divided by the inference time it records
   (warm-up and kept samples).
2. **cpu agreement** (target within 5%): for the same models, the median that
   ``hwprof`` records versus the median of a plain ``timeit`` loop around
   ``InferenceSession.run``, interleaved so that drift hits both alike.
3. **simulated throughput** (target >= 20 nets/s): ``ofa`` networks measured end to
   end per second on simulated ``kirin-npu`` (ONNX build + graph walk + protocol).

    python -m benchmarks.bench_measure [--nets 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import emit
from devices.ort import create_ort_session
from devices import resolve
from hwprof.build_onnx import build_onnx
from hwprof.dataset import Dataset
from hwprof.protocol import Protocol, measure_session
from hwprof.profiling import measure_into
from nas.spaces import get_space

OVERHEAD_TARGET = 1.3
AGREEMENT_TARGET = 0.05
SIM_TARGET_PER_S = 20.0


def _hwprof_exe() -> str:
    exe = Path(sys.executable).with_name("hwprof")
    return str(exe) if exe.exists() else "hwprof"


def cpu_overhead(nets: int, seed: int) -> dict:
    """Run the CLI on ``nets`` ofa networks (e2e and blocks) and compare wall to recorded time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        cmd = [_hwprof_exe(), "measure", "--device", "cpu", "--space", "ofa", "--samples", str(nets),
               "--seed", str(seed), "--out", str(out), "--json"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - start
        df = pd.read_parquet(out)
    recorded = float(sum(np.sum(s) + np.sum(w) for s, w in zip(df.samples_ms, df.warmup_ms))) / 1e3
    return {"rows": len(df), "e2e_rows": int((df.block_key == "e2e").sum()),
            "block_rows": int((df.block_key != "e2e").sum()), "wall_s": wall,
            "recorded_inference_s": recorded, "overhead_ratio": wall / recorded}


def cpu_agreement(nets: int, seed: int, rounds: int = 3) -> dict:
    """hwprof's median vs a plain timeit median on the same sessions, interleaved."""
    space = get_space("ofa")
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(nets)]
    device = resolve("cpu")
    protocol = Protocol(min_time_s=0.25)
    per_net = []
    for arch in archs:
        model = build_onnx(arch)
        session, feed = create_ort_session(model, ["CPUExecutionProvider"], 1, "all")
        names = [o.name for o in session.get_outputs()]
        hw_session = device.load(model)
        hw, plain = [], []
        for _ in range(rounds):
            hw.append(measure_session(hw_session, protocol).median_ms)
            timer = timeit.Timer(lambda: session.run(names, feed))
            number = max(1, int(0.05 / max(timer.timeit(1), 1e-6)))
            plain.append(float(np.median(timer.repeat(repeat=15, number=number))) / number * 1e3)
        hw_ms, plain_ms = float(np.median(hw)), float(np.median(plain))
        per_net.append({"arch": arch.hash, "hwprof_ms": hw_ms, "timeit_ms": plain_ms,
                        "rel_diff": hw_ms / plain_ms - 1})
    diffs = np.array([abs(r["rel_diff"]) for r in per_net])
    return {"nets": per_net, "max_abs_rel_diff": float(diffs.max()), "median_abs_rel_diff": float(np.median(diffs))}


def simulated_throughput(nets: int, seed: int, device_name: str = "kirin-npu") -> dict:
    """End-to-end ofa networks per second on a simulated device."""
    space = get_space("ofa")
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(nets)]
    device = resolve(device_name, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        measure_into(Dataset(Path(tmp)), device, archs, mode="e2e")
        wall = time.perf_counter() - start
    return {"device": f"{device_name} (simulated)", "nets": nets, "wall_s": wall, "nets_per_s": nets / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", type=int, default=10, help="ofa networks for the cpu figures")
    parser.add_argument("--sim-nets", type=int, default=200, help="ofa networks for the simulated figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()

    overhead = cpu_overhead(args.nets, args.seed)
    agreement = cpu_agreement(min(args.nets, 5), args.seed)
    sim = simulated_throughput(args.sim_nets, args.seed)

    ok = lambda good: "OK" if good else "MISSED"  # noqa: E731
    print(f"cpu overhead: {overhead['rows']} rows ({overhead['e2e_rows']} e2e, {overhead['block_rows']} blocks), "
          f"wall {overhead['wall_s']:.1f} s / recorded inference {overhead['recorded_inference_s']:.1f} s "
          f"= {overhead['overhead_ratio']:.3f} (target <= {OVERHEAD_TARGET}): "
          f"{ok(overhead['overhead_ratio'] <= OVERHEAD_TARGET)}")
    print(f"{'arch':18} {'hwprof ms':>10} {'timeit ms':>10} {'diff':>8}")
    for r in agreement["nets"]:
        print(f"{r['arch']:18} {r['hwprof_ms']:10.3f} {r['timeit_ms']:10.3f} {r['rel_diff']:+8.2%}")
    print(f"cpu agreement: max |diff| {agreement['max_abs_rel_diff']:.2%} (target <= {AGREEMENT_TARGET:.0%}): "
          f"{ok(agreement['max_abs_rel_diff'] <= AGREEMENT_TARGET)}")
    print(f"simulated throughput: {sim['nets']} ofa nets on {sim['device']} in {sim['wall_s']:.2f} s = "
          f"{sim['nets_per_s']:.1f} nets/s (target >= {SIM_TARGET_PER_S:.0f}): "
          f"{ok(sim['nets_per_s'] >= SIM_TARGET_PER_S)}")
    emit("measure", {"cpu_overhead": overhead, "cpu_agreement": agreement, "simulated": sim}, args.json)


if __name__ == "__main__":
    main()
