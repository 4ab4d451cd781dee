"""Measurement throughput: the Ray executor against the local one, on a simulated device.

Measures the same ``ofa`` networks (whole networks and blocks) on simulated
kirin-npu into fresh datasets: once in-process (``local``), then through a
Ray instance on this machine with one slot (batch size 1: the per-task
overhead of going through Ray) and with one slot per core at several batch
sizes (what batching amortises). Ray's start-up is timed apart. Simulated
measurements are cheap (about a millisecond), so this is the worst case for
the overhead; on a real device a task takes 0.25 s or more.

    python -m benchmarks.bench_executors [--networks 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit
from devices import resolve
from hwprof.dataset import Dataset
from hwprof.profiling import measure_into, plan
from nas.spaces import get_space

DEVICE = "kirin-npu"
BATCHES = [1, 4, 16, 64]


def _run(root: Path, tag: str, archs, executor=None, batch: int | None = None) -> float:
    device = resolve(DEVICE, seed=0)
    start = time.perf_counter()
    summary = measure_into(Dataset(root / tag), device, archs, mode="both", executor=executor,
                           device_options={"seed": 0}, batch_size=batch)
    assert summary.failed == 0 and summary.measured == summary.planned
    return time.perf_counter() - start


def run(networks: int, root: Path) -> dict:
    from hwprof.executors.ray_executor import RayExecutor, require_ray

    ray = require_ray()
    space = get_space("ofa")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(networks)]
    tasks = len(plan(archs, "both"))
    out = {"device": DEVICE, "simulated": True, "networks": networks, "tasks": tasks, "cores": os.cpu_count()}
    local = _run(root, "local", archs)
    out["local"] = {"wall_s": local, "tasks_per_s": tasks / local}
    for slots in (1, os.cpu_count() or 1):
        start = time.perf_counter()
        executor = RayExecutor(slots=slots)
        startup = time.perf_counter() - start
        results = {}
        for batch in ([1] if slots == 1 else BATCHES):
            wall = _run(root, f"ray-{slots}-{batch}", archs, executor, batch)
            results[batch] = {"wall_s": wall, "tasks_per_s": tasks / wall,
                              "overhead_ms_per_task": (wall - local / slots) / tasks * 1e3}
        executor.close()
        ray.shutdown()
        out[f"ray_{slots}_slots"] = {"startup_s": startup, "by_batch": results}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.networks, Path(tmp))
    print(f"\n{r['tasks']} tasks ({r['networks']} ofa networks + their blocks) on {DEVICE} (simulated), "
          f"{r['cores']} cores")
    print(f"local:                      {r['local']['tasks_per_s']:8.1f} tasks/s ({r['local']['wall_s']:.2f} s)")
    one = r["ray_1_slots"]
    b1 = one["by_batch"][1]
    print(f"ray, 1 slot, batch 1:       {b1['tasks_per_s']:8.1f} tasks/s ({b1['wall_s']:.2f} s); "
          f"per-task overhead {b1['overhead_ms_per_task']:.2f} ms; Ray start-up {one['startup_s']:.1f} s")
    many = r[f"ray_{r['cores']}_slots"] if r["cores"] != 1 else one
    for batch, m in many["by_batch"].items():
        print(f"ray, {r['cores']} slots, batch {batch:3}:    {m['tasks_per_s']:8.1f} tasks/s ({m['wall_s']:.2f} s), "
              f"{m['tasks_per_s'] / r['local']['tasks_per_s']:.2f}x local")
    amortised = [b for b, m in many["by_batch"].items() if m["tasks_per_s"] >= r["local"]["tasks_per_s"]]
    print("smallest batch at which Ray matches local throughput: "
          + (str(min(amortised)) if amortised else "none of " + ", ".join(map(str, BATCHES))))
    emit("executors", r, args.json)


if __name__ == "__main__":
    main()
