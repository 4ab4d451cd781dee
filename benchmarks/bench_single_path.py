"""Single-path (S3NAS) search end to end, as a user runs it, at three latency targets.

For each target (15 %, 30 % and 50 % of the way from the fastest to the
slowest s3nas network on simulated kirin-npu, by the cached predictor) it runs

    nas search --searcher single-path --space s3nas --target kirin-npu --latency-ms T --json

with the default settings (same hyper-parameters for every target) and prints:
wall time (target < 10 min on 2 cores), the training loss of the first and
last epoch, the searched network's predicted latency against the target
(target: within 10 %), its measured latency against the prediction (target:
within 10 %), and what compound scaling and post-processing did.

    python -m benchmarks.bench_single_path [--device kirin-npu] [--fractions 0.15,0.3,0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import emit
from devices import resolve
from hwprof.predictors.cache import cached_predictor
from nas.results import latency_range
from nas.spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="kirin-npu")
    parser.add_argument("--fractions", default="0.15,0.3,0.5")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    space = get_space("s3nas")
    predictor = cached_predictor(resolve(args.device), space)[0]
    fastest, slowest = latency_range(space, predictor)
    nas = Path(sys.executable).parent / "nas"
    rows = []
    for fraction in map(float, args.fractions.split(",")):
        target = round(fastest + fraction * (slowest - fastest), 3)
        with tempfile.TemporaryDirectory() as out:
            cmd = [str(nas), "search", "--searcher", "single-path", "--space", "s3nas", "--target", args.device,
                   "--latency-ms", str(target), "--out", out, "--json"]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            summary = json.loads(proc.stdout)
            curve = pd.read_csv(Path(out) / "training.csv")
        per_epoch = curve.groupby(curve["epoch"].apply(lambda e: int(e - 1e-9)))["loss"].mean()
        searched, refined, best = summary["searched"], summary.get("refined") or {}, summary["best"]
        searched_measured = searched.get("measured_latency_ms", best["measured_latency_ms"])
        rows.append({
            "target_ms": target, "wall_s": round(wall, 1),
            "loss_first_epoch": round(float(per_epoch.iloc[0]), 3),
            "loss_last_epoch": round(float(per_epoch.iloc[-1]), 3),
            "searched_predicted_ms": round(searched["predicted_latency_ms"], 3),
            "searched_vs_target": f"{searched['predicted_latency_ms'] / target - 1:+.1%}",
            "searched_measured_ms": round(searched_measured, 3),
            "prediction_error": f"{searched['predicted_latency_ms'] / searched_measured - 1:+.1%}",
            "supernet_top1": round(searched["score"], 3),
            "scaling_phi": (refined.get("scaling") or {}).get("phi"),
            "postprocess": (refined.get("postprocess") or {}).get("applied"),
            "final_measured_ms": round(best["measured_latency_ms"], 3),
        })
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    print(f"\nsingle-path search on {args.device} (simulated), s3nas, feasible {fastest:.3f}-{slowest:.3f} ms")
    print(pd.DataFrame(rows).to_string(index=False))
    emit("single_path", {"device": args.device, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
