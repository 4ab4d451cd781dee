"""A small seeded measure -> fit -> search on a simulated chip, reduced to what must never change by a refactor.

`python -m tests.golden OUT.json` writes it; tests/test_golden.py reruns it and compares with the stored
result in tests/data/golden_kirin_npu.json (written by the code before issue 41's restructuring).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd


def _cli(*args: str) -> None:
    exe = Path(sys.executable).parent / args[0]
    subprocess.run([str(exe), *args[1:]], check=True, capture_output=True, text=True,
                   env={**os.environ, "COLUMNS": "200"})


def _sig(x: float) -> float:
    return float(f"{x:.9g}")


def run() -> dict:
    """Measure 24 ofa networks and their blocks on kirin-npu (seed 3), fit additive, search (seed 0, budget 20)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "npu"
        _cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "-n", "24", "--seed", "3",
             "--out", str(data))
        rows = pd.concat([pd.read_parquet(p) for p in sorted(data.glob("*.parquet"))])
        rows = rows.sort_values(["arch_hash", "block_key"])
        measured = {f"{r.arch_hash}:{r.block_key}": _sig(r.median_ms) for r in rows.itertuples()}
        result: dict = {"rows": len(rows), "median_ms": measured}
        for model in ("additive",):
            pred = root / f"{model}.pred"
            _cli("hwprof", "fit-predictor", "--data", str(data), "--model", model, "--out", str(pred))
            out = root / f"search-{model}"
            _cli("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--predictor", str(pred),
                 "--latency-ms", "4", "--budget", "20", "--seed", "0", "--out", str(out))
            summary = json.loads((out / "summary.json").read_text())
            best = summary["best"]
            result[model] = {"winner": best["arch_hash"], "score": _sig(best["score"]),
                             "predicted_ms": _sig(best["predicted_latency_ms"]),
                             "measured_ms": _sig(best["measured_latency_ms"]),
                             "pareto_size": summary["pareto_size"], "hypervolume": _sig(summary["hypervolume"])}
        return result


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(run(), indent=1, sort_keys=True) + "\n")
