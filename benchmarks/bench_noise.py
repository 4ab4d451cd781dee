"""Measurements on a noisy machine: test-retest and a lut's accuracy, with an injected neighbour.

For each condition (quiet first, then each kind of neighbour switching on and
off, then one always on) this runs, as a user would, with ``hwprof measure``
pinned to core 0 and the neighbour (:mod:`benchmarks.neighbour`) on the other
core(s):

1. ``--networks`` networks and their blocks (``--mode both``, seed 0): the training set;
2. ``--test`` held-out networks end to end (seed 1), twice: test-retest;
3. a lut fitted on (1), scored with ``hwprof evaluate`` on the *quiet* test set
   (the quiet condition's first pass), the latency hwprof sets out to estimate.

It prints one table row per condition: test-retest within +-10% (MAPE), the
lut within +-10% of the quiet latency (MAPE, tau), how close the test
measurements came to the quiet ones, wall time against the quiet run's, and
the run's noise verdict. Each chunked run's chunks are kept beside its dataset
(``<dataset>.chunks.jsonl``, ``hwprof measure --trace``), and when the
neighbour was on (``neighbour.json``, on the same monotonic clock as the
chunks' ``clock_s``). ``--protocol contiguous`` runs the same with the
protocol hwprof used before (each model in one stretch) for comparison.

    python -m benchmarks.bench_noise --networks 100 --test 60
    python -m benchmarks.bench_noise --conditions quiet,stream:switching --protocol contiguous

The neighbour's schedule is seeded (``--seed``); the machine's own noise is not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.neighbour import Neighbour

CONDITIONS = ["quiet", "stream:switching", "compute:switching", "cache:switching", "stream:always"]
HWPROF = [sys.executable, "-c", "import cli; cli.hwprof_main()"]


def _pinned() -> None:
    os.sched_setaffinity(0, {0})


def hwprof(*args: str) -> dict:
    """Run an hwprof command pinned to core 0; its --json output."""
    out = subprocess.run([*HWPROF, *args, "--json"], capture_output=True, text=True, preexec_fn=_pinned,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode not in (0,):
        raise SystemExit(f"hwprof {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def measure(out: Path, seed: int, samples: int, mode: str, protocol: str) -> dict:
    return hwprof("measure", "--device", "cpu", "--space", "ofa", "--samples", str(samples), "--seed", str(seed),
                  "--mode", mode, "--out", str(out), "--protocol", protocol,
                  *(["--trace", f"{out}.chunks.jsonl"] if protocol == "chunked" else []))


def e2e(path: Path) -> dict[str, tuple[float, float]]:
    """arch hash -> (median ms, reference ms) of a dataset's end-to-end rows."""
    import pandas as pd

    df = pd.read_parquet(path)
    df = df[df["block_key"] == "e2e"]
    return {h: (m, r) for h, m, r in zip(df["arch_hash"], df["median_ms"], df["ref_ms"])}


def agreement(a: dict, b: dict, drift_corrected: bool = False) -> tuple[float, float]:
    """Share of the networks both hold whose medians agree within +-10%, and the MAPE (b as truth).

    ``drift_corrected``: each median over its row's reference latency (``ref_ms``), as
    predictors see them (:mod:`hwprof.drift`): the machine's own speed, which differs
    from one run to the next on a shared host, divides out.
    """
    keys = sorted(set(a) & set(b))
    x = np.array([a[k][0] / (a[k][1] if drift_corrected else 1.0) for k in keys])
    y = np.array([b[k][0] / (b[k][1] if drift_corrected else 1.0) for k in keys])
    err = np.abs(x / y - 1)
    return float(np.mean(err <= 0.10)), float(np.mean(err))


def run_condition(name: str, root: Path, args, quiet_test: Path | None) -> dict:
    kind, _, pattern = name.partition(":")
    neighbour = Neighbour("stream", "off") if name == "quiet" else Neighbour(kind, pattern, cores=args.cores,
                                                                              seed=args.seed)
    here = root / name.replace(":", "-")
    result: dict = {"condition": name}
    with neighbour:
        began = time.monotonic()
        train = measure(here / "train", 0, args.networks, "both", args.protocol)
        train_wall = time.monotonic() - began
        first = measure(here / "test-a", 1, args.test, "e2e", args.protocol)
        second = measure(here / "test-b", 1, args.test, "e2e", args.protocol)
        ended = time.monotonic()
        result["neighbour_on_share"] = round(neighbour.on_share(began, ended), 3) if name != "quiet" else 0.0
    (here / "neighbour.json").write_text(json.dumps(neighbour.timeline()))  # when it was on, monotonic seconds
    result.update(train_wall_s=round(train_wall, 1), train_rows=train["measured"],
                  test_wall_s=round(first["wall_s"] + second["wall_s"], 1),
                  verdict=(train.get("noise") or {}).get("line", "n/a"),
                  verdict_state=(train.get("noise") or {}).get("state"),
                  rows_quiet=[(r.get("noise") or {}).get("rows_quiet") for r in (train, first, second)])
    within, mape = agreement(e2e(here / "test-a"), e2e(here / "test-b"))
    result.update(retest_within_10=round(within, 3), retest_mape=round(mape, 4))
    within, mape = agreement(e2e(here / "test-a"), e2e(here / "test-b"), drift_corrected=True)
    result.update(retest_drift_within_10=round(within, 3), retest_drift_mape=round(mape, 4))
    truth = quiet_test or here / "test-a"
    within, mape = agreement(e2e(here / "test-a"), e2e(truth))
    result.update(vs_quiet_within_10=round(within, 3), vs_quiet_mape=round(mape, 4))
    within, mape = agreement(e2e(here / "test-a"), e2e(truth), drift_corrected=True)
    result.update(vs_quiet_drift_within_10=round(within, 3), vs_quiet_drift_mape=round(mape, 4))
    pred = here / "lut.pred"
    hwprof("fit-predictor", "--data", str(here / "train"), "--model", "lut", "--out", str(pred))
    scores = hwprof("evaluate", "--predictor", str(pred), "--data", str(truth))["metrics"]
    result.update(lut_within_10=round(scores["within_10pct"], 3), lut_mape=round(scores["mape"], 4),
                  lut_tau=round(scores["kendall_tau"], 3))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=100, help="training networks (with their blocks)")
    parser.add_argument("--test", type=int, default=60, help="held-out networks, timed twice")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--protocol", choices=("chunked", "contiguous"), default="chunked")
    parser.add_argument("--cores", default="1", help="cores the neighbour loads (hwprof runs on core 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the neighbour's on/off schedule")
    parser.add_argument("--out", default="bench-noise", help="working directory (datasets, predictors)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.cores = [int(c) for c in args.cores.split(",")]
    root = Path(args.out) / args.protocol
    rows = []
    quiet_test = None
    for name in args.conditions.split(","):
        result = run_condition(name, root, args, quiet_test)
        if name == "quiet":
            quiet_test = root / "quiet" / "test-a"
        rows.append(result)
        print(json.dumps(result), flush=True)
    quiet_wall = next((r["train_wall_s"] + r["test_wall_s"] for r in rows if r["condition"] == "quiet"), None)
    print(f"\nprotocol {args.protocol}; {args.networks} training networks with blocks, {args.test} test networks "
          f"timed twice; cpu (onnxruntime, 1 thread) pinned to core 0, neighbour on cores {args.cores}")
    print("retest: the two test runs' medians; drift-corrected: each over its row's ref_ms, as predictors see them")
    print(f"{'condition':20} {'on':>5} {'retest ±10%':>12} {'(MAPE)':>7} {'drift-corr.':>12} {'(MAPE)':>7} "
          f"{'lut ±10%':>9} {'(MAPE)':>7} {'tau':>5} {'vs quiet ±10%':>14} {'wall':>6}  verdict")
    for r in rows:
        wall = r["train_wall_s"] + r["test_wall_s"]
        ratio = f"{wall / quiet_wall:.2f}x" if quiet_wall else "-"
        print(f"{r['condition']:20} {r['neighbour_on_share']:5.0%} {r['retest_within_10']:12.1%} "
              f"{r['retest_mape']:7.2%} {r['retest_drift_within_10']:12.1%} {r['retest_drift_mape']:7.2%} "
              f"{r['lut_within_10']:9.1%} {r['lut_mape']:7.2%} {r['lut_tau']:5.2f} "
              f"{r['vs_quiet_within_10']:14.1%} {ratio:>6}  {r['verdict']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"protocol": args.protocol, "networks": args.networks,
                                               "test": args.test, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
