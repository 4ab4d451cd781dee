"""``hwprof measure --prepare-workers``: wall time against recorded inference, agreement, peak memory.

Each figure is measured side by side in this one run, with and without
workers, on the same networks:

1. **wall / recorded inference** per target (targets: cpu:int8, litert-cpu:int8
   and openvino-cpu <= 1.3x, openvino-cpu:int8 <= 1.6x, with one preparation
   worker on a 2-core machine): ``hwprof measure --mode e2e`` on ``--nets``
   ``ofa`` networks, ``--prepare-workers 0`` (every model prepared in the
   timing process, as before) then ``1``. Wall time is the run's own (its
   JSON ``wall_s``: process start-up excluded); recorded inference is every
   timed run, warm-ups included.
2. **peak memory** of each run: the most resident memory the ``hwprof``
   process and its worker processes held at once (sampled every 0.2 s from
   ``/proc``), with workers against without (target <= 1.5x).
3. **agreement**: ``--agree-nets`` networks measured on ``--agree-target``
   without workers, with workers, and without workers again: the share of
   networks whose medians agree within +-10% with and without workers, beside
   the test-retest share of the two runs without workers.

The workers are a neighbour of the timed core: each run's noise verdict is
printed beside its figures.

    python -m benchmarks.bench_prepare [--nets 300] [--targets cpu:int8,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import emit

TARGETS = {"cpu": 1.3, "cpu:int8": 1.3, "litert-cpu:int8": 1.3, "openvino-cpu": 1.3, "openvino-cpu:int8": 1.6}
MEMORY_TARGET = 1.5
AGREE_TARGET = 0.95


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kb(p)
        todo.extend(tree.get(p, []))
    return total / 1024


def run_measure(target: str, nets: int, seed: int, workers: int, out: Path) -> dict:
    """One ``hwprof measure --json`` run; its summary plus the peak memory of its process tree."""
    cmd = [str(Path(sys.executable).parent / "hwprof"), "measure", "--device", target, "--space", "ofa",
           "--samples", str(nets), "--seed", str(seed), "--mode", "e2e", "--prepare-workers", str(workers),
           "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.strip()[-500:]}")
    summary = json.loads(stdout)
    summary["peak_rss_mb"] = peak[0]
    summary["ratio"] = summary["wall_s"] / summary["inference_s"]
    return summary


def medians(out: Path, drift_corrected: bool = False) -> pd.Series:
    """Each network's median, ms (drift-corrected: over its row's ``ref_ms``, as predictors see it)."""
    df = pd.read_parquet(out, columns=["arch_hash", "block_key", "median_ms", "ref_ms"])
    df = df[df["block_key"] == "e2e"].set_index("arch_hash")
    return df["median_ms"] / df["ref_ms"] if drift_corrected else df["median_ms"]


def within(a: pd.Series, b: pd.Series, tol: float = 0.10) -> float:
    common = a.index.intersection(b.index)
    return float(np.mean(np.abs(b[common] / a[common] - 1) <= tol))


def _verdict(summary: dict) -> str:
    noise = summary.get("noise") or {}
    return noise.get("line", "") if isinstance(noise, dict) else ""


def wall_ratios(targets: list[str], nets: int, seed: int, tmp: Path) -> dict:
    results = {}
    for target in targets:
        runs = {}
        for workers in (0, 1):
            runs[workers] = run_measure(target, nets, seed, workers, tmp / f"{target}-{workers}")
            s = runs[workers]
            print(f"  {target:18s} workers {workers}: wall {s['wall_s']:7.1f} s / inference {s['inference_s']:6.1f} s"
                  f" = {s['ratio']:.2f}x; peak memory {s['peak_rss_mb']:.0f} MB; waiting for models "
                  f"{s['preparation']['wait_s']:.1f} s, building {s['build_s']:.1f} s, loading {s['load_s']:.1f} s",
                  flush=True)
            prep, noise = s["preparation"], s.get("noise") or {}
            print(f"      {noise.get('rows_quiet')} of {noise.get('rows')} rows timed quiet; rounds with the workers "
                  f"stopped: {prep.get('rounds_with_workers_stopped')} of {prep.get('rounds_with_workers')}; "
                  f"prepared by the timing process rather than wait: {prep.get('prepared_here')}, beside the "
                  f"running workers: {prep.get('prepared_ahead')}; noise: {_verdict(s)}", flush=True)
        before, after = runs[0], runs[1]
        results[target] = {
            "ratio_without": before["ratio"], "ratio_with": after["ratio"], "target": TARGETS.get(target, 1.3),
            "wall_without_s": before["wall_s"], "wall_with_s": after["wall_s"],
            "met": after["ratio"] <= TARGETS.get(target, 1.3),
            "peak_mb_without": before["peak_rss_mb"], "peak_mb_with": after["peak_rss_mb"],
            "memory_ratio": after["peak_rss_mb"] / before["peak_rss_mb"],
            "agreement_with_vs_without": within(medians(tmp / f"{target}-0"), medians(tmp / f"{target}-1")),
            "runs": {str(k): v for k, v in runs.items()},
        }
    return results


def agreement(target: str, nets: int, seed: int, tmp: Path) -> dict:
    outs = {name: tmp / f"agree-{name}" for name in ("without", "with", "retest")}
    for name, workers in (("without", 0), ("with", 1), ("retest", 0)):
        s = run_measure(target, nets, seed, workers, outs[name])
        print(f"  {target} {name:8s}: {s['measured']} networks, wall {s['wall_s']:.1f} s; noise: {_verdict(s)}",
              flush=True)
    base, corrected = medians(outs["without"]), medians(outs["without"], True)
    return {"target": target, "networks": nets, "with_vs_without": within(base, medians(outs["with"])),
            "test_retest": within(base, medians(outs["retest"])),
            "with_vs_without_drift_corrected": within(corrected, medians(outs["with"], True)),
            "test_retest_drift_corrected": within(corrected, medians(outs["retest"], True))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", type=int, default=300, help="networks per wall-time run")
    parser.add_argument("--targets", default="cpu:int8,litert-cpu:int8,openvino-cpu,openvino-cpu:int8")
    parser.add_argument("--agree-target", default="cpu:int8")
    parser.add_argument("--agree-nets", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="keep the datasets here (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores; one timing, the rest preparing", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        tmp = Path(args.out or tmp)
        print(f"wall / recorded inference, {args.nets} ofa networks (e2e) per run:", flush=True)
        walls = wall_ratios([t for t in args.targets.split(",") if t], args.nets, args.seed, tmp)
        print(f"agreement, {args.agree_nets} networks on {args.agree_target}:", flush=True)
        agree = agreement(args.agree_target, args.agree_nets, args.seed + 1, tmp) if args.agree_nets else None
    print("\nsummary")
    for target, r in walls.items():
        print(f"  {target:18s} wall / inference {r['ratio_without']:.2f}x -> {r['ratio_with']:.2f}x "
              f"(target <= {r['target']}x: {'met' if r['met'] else 'NOT met'}); wall time "
              f"{r['wall_without_s']:.0f} -> {r['wall_with_s']:.0f} s; peak memory "
              f"{r['peak_mb_without']:.0f} -> {r['peak_mb_with']:.0f} MB ({r['memory_ratio']:.2f}x, target <= "
              f"{MEMORY_TARGET}x); medians with vs without within +-10%: {r['agreement_with_vs_without']:.0%}")
    if agree:
        print(f"  agreement on {agree['target']}, {agree['networks']} networks: with vs without workers "
              f"{agree['with_vs_without']:.0%} within +-10% (target >= {AGREE_TARGET:.0%}); test-retest without "
              f"workers {agree['test_retest']:.0%}; drift-corrected (median / ref_ms): "
              f"{agree['with_vs_without_drift_corrected']:.0%} vs test-retest {agree['test_retest_drift_corrected']:.0%}")
    emit("bench_prepare", {"wall": walls, "agreement": agree}, args.json)


if __name__ == "__main__":
    main()
