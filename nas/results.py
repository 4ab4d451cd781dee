"""Latency bounds of a space and the files a search writes.

``--out DIR`` receives ``best.json``, ``best.onnx``, ``pareto.csv``,
``history.parquet``, ``pareto.png`` and ``summary.json``; each is written to a
temp file and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwprof.build_onnx import build_onnx
from hwprof.errors import HwprofError
from hwprof.io import atomic_write_bytes, atomic_write_text, atomic_write_via
from nas.searchers.base import Candidate, SearchResult


def latency_range(space, predictor, n_samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(fastest, slowest) predicted latency in ``space``.

    Exact from cost tables for layer-additive predictors on separable spaces
    (minimum/maximum option per layer, for every combination of global
    choices when there are few); otherwise estimated from a sample.
    """
    globals_ = [v for v in space.variables if v.kind != "layer"]
    combos = int(np.prod([len(v.options) for v in globals_])) if globals_ else 1
    if predictor.layer_additive and getattr(space, "separable", True) and combos <= 64:
        lows, highs = [], []
        for k in range(combos):
            choice, rest = {}, k
            for v in globals_:
                choice[v.name] = v.options[rest % len(v.options)]
                rest //= len(v.options)
            table = predictor.cost_table(space, choice)
            lows.append(table.intercept_ms + sum(float(c.min()) for c in table.costs_ms))
            highs.append(table.intercept_ms + sum(float(c.max()) for c in table.costs_ms))
        return min(lows), max(highs)
    rng = np.random.default_rng(seed)
    genes = np.array([space.sample_genes(rng) for _ in range(n_samples)])
    lat = predictor.predict_genes(space, genes)
    return float(lat.min()), float(lat.max())


def check_constraint(latency_ms: float | None, fastest: float, slowest: float, target: str) -> None:
    """Refuse a latency target no network of the space can meet."""
    if latency_ms is None:
        return
    if latency_ms <= 0:
        raise HwprofError(f"--latency-ms must be positive, got {latency_ms}")
    if latency_ms < fastest:
        raise HwprofError(f"no network meets {latency_ms:g} ms on {target}: the fastest is predicted at "
                          f"{fastest:.3f} ms", f"choose --latency-ms between {fastest:.3f} and {slowest:.3f}")


def _candidate_row(c: Candidate) -> dict[str, Any]:
    return {"arch_hash": c.arch.hash, "latency_ms": c.latency_ms, "score": c.score, "step": c.step,
            "index": c.index, "macs": c.arch.macs, "params": c.arch.params, "resolution": c.arch.resolution,
            "arch_json": c.arch.to_json()}


def write_outputs(out: Path, result: SearchResult, summary: dict[str, Any], title: str) -> dict[str, str]:
    """Write the search's files into ``out``; returns name -> path."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwprofError(f"cannot create output directory {out}: {exc.strerror}", "choose a writable --out") from None
    files: dict[str, str] = {}
    history = pd.DataFrame([_candidate_row(c) for c in result.history])
    buf = io.BytesIO()
    history.to_parquet(buf, index=False)
    atomic_write_bytes(out / "history.parquet", buf.getvalue())
    files["history"] = str(out / "history.parquet")
    pareto = pd.DataFrame([_candidate_row(c) for c in result.pareto])
    atomic_write_text(out / "pareto.csv", pareto.to_csv(index=False))
    files["pareto"] = str(out / "pareto.csv")
    if result.best is not None:
        best = {**json.loads(result.best.arch.to_json()),
                "hwprof_search": {k: summary[k] for k in ("target", "simulated", "score_label") if k in summary}
                | {"predicted_latency_ms": result.best.latency_ms, "score": result.best.score,
                   "measured_latency_ms": summary.get("best", {}).get("measured_latency_ms")}}
        atomic_write_text(out / "best.json", json.dumps(best, indent=2) + "\n")
        atomic_write_bytes(out / "best.onnx", build_onnx(result.best.arch).SerializeToString())
        files["best_json"], files["best_onnx"] = str(out / "best.json"), str(out / "best.onnx")
    plot_pareto(out / "pareto.png", result, title)
    files["plot"] = str(out / "pareto.png")
    files["summary"] = str(out / "summary.json")
    atomic_write_text(out / "summary.json", json.dumps({**summary, "files": files}, indent=2, default=str) + "\n")
    return files


def plot_pareto(path: Path, result: SearchResult, title: str) -> None:
    """Latency vs score of every evaluated network, the front highlighted, the constraint as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = np.array([c.latency_ms for c in result.history])
    score = np.array([c.score for c in result.history])
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    ax.scatter(lat, score, s=6, alpha=0.35, color="tab:gray", label=f"evaluated ({len(lat)})")
    front = sorted(result.pareto, key=lambda c: c.latency_ms)
    ax.plot([c.latency_ms for c in front], [c.score for c in front], "o-", ms=4, color="tab:blue",
            label=f"Pareto front ({len(front)})")
    if result.constraint.latency_ms is not None:
        ax.axvline(result.constraint.latency_ms, color="tab:red", ls="--", label="latency constraint")
    if result.best is not None:
        ax.scatter([result.best.latency_ms], [result.best.score], marker="*", s=160, color="tab:orange",
                   zorder=5, label="best")
    ax.set(xlabel="predicted latency (ms)", ylabel=result.estimator, title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write_via(path, fig.savefig, ".png")
    plt.close(fig)
