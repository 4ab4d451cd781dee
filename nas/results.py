"""Latency bounds of a space and the files a search writes.

``--out DIR`` receives ``best.json``, ``best.onnx``, ``pareto.csv``,
``history.parquet``, ``pareto.png`` and ``summary.json`` (single-path search
adds ``training.csv``/``training.png`` and, when scaling or post-processing
changed the network, ``searched.json``/``searched.onnx``); each is written to a
temp file and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwprof.arch import Arch
from hwprof.build_onnx import build_onnx
from hwprof.errors import HwprofError
from hwprof.io import atomic_write_bytes, atomic_write_text, atomic_write_via, dumps, write_json
from nas.searchers.base import Candidate, SearchResult


def latency_range(space, predictor, n_samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(fastest, slowest) predicted latency in ``space`` (within its option mask: reduced or held variables).

    Exact from cost tables for layer-additive predictors on separable spaces
    (minimum/maximum allowed option per layer, for every combination of allowed
    global choices when there are few); otherwise estimated from a sample.
    """
    mask = space.option_mask()
    global_idx = [i for i, v in enumerate(space.variables) if v.kind != "layer"]
    layer_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    combos = int(np.prod([len(mask[i]) for i in global_idx])) if global_idx else 1
    if predictor.layer_additive and getattr(space, "separable", True) and combos <= 64:
        lows, highs = [], []
        for k in range(combos):
            choice, rest = {}, k
            for i in global_idx:
                v = space.variables[i]
                choice[v.name] = v.options[mask[i][rest % len(mask[i])]]
                rest //= len(mask[i])
            table = predictor.cost_table(space, choice)
            allowed = [np.asarray(c)[mask[i]] for c, i in zip(table.costs_ms, layer_idx)]
            lows.append(table.intercept_ms + sum(float(c.min()) for c in allowed))
            highs.append(table.intercept_ms + sum(float(c.max()) for c in allowed))
        return min(lows), max(highs)
    rng = np.random.default_rng(seed)
    genes = np.array([space.sample_genes(rng, mask) for _ in range(n_samples)])
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


def feasible_range(space, predictor, latency_ms: float | None, target: str) -> tuple[float, float]:
    """(fastest, slowest) predicted latency in ``space`` (:func:`latency_range`), after refusing a ``latency_ms``
    that no network of it meets (:func:`check_constraint`)."""
    fastest, slowest = latency_range(space, predictor)
    check_constraint(latency_ms, fastest, slowest, target)
    return fastest, slowest


def smallest_network(space) -> Arch:
    """The network of ``space`` with (greedily) the fewest MACs: each choice in turn set to its cheapest option."""
    allow = space._allowed(None)
    genes = list(space.canonical(tuple(a[0] for a in allow)))
    for i in range(space.n_variables):
        costs = []
        for option in allow[i]:
            trial = list(genes)
            trial[i] = option
            try:
                costs.append((space.to_arch(space.canonical(tuple(trial))).macs, option))
            except HwprofError:  # an option combination the space does not allow
                continue
        genes[i] = min(costs)[1] if costs else genes[i]
    return space.to_arch(space.canonical(tuple(genes)))


QUICK_BOUND_MARGIN = 0.7


def precheck_constraint(latency_ms: float | None, space, device) -> float | None:
    """Refuse an impossible target before a predictor is built: time the space's smallest network once.

    A target below :data:`QUICK_BOUND_MARGIN` of the smallest network's measured
    latency cannot be met (a predictor's fastest network is at best a little
    faster than the smallest by MACs); it is refused at once, saving the
    minutes of measuring a predictor's training set. Returns the measured
    latency (ms), or None when there is no target.
    """
    if latency_ms is None:
        return None
    if latency_ms <= 0:
        raise HwprofError(f"--latency-ms must be positive, got {latency_ms}")
    from hwprof.interleave import measure_one

    device.require_available()
    smallest = smallest_network(space)
    ms = measure_one(device, device.build(smallest), device.min_time_s(quick=True)).measurement.median_ms
    if latency_ms < QUICK_BOUND_MARGIN * ms:
        raise HwprofError(f"no network meets {latency_ms:g} ms on {device.label}: the smallest network of {space.name} "
                          f"(fewest MACs) measures {ms:.3f} ms", f"choose --latency-ms of at least about {ms:.2f}")
    return ms


def _candidate_row(c: Candidate) -> dict[str, Any]:
    return {"arch_hash": c.arch.hash, "latency_ms": c.latency_ms, "score": c.score, "step": c.step,
            "index": c.index, "macs": c.arch.macs, "params": c.arch.params, "resolution": c.arch.resolution,
            "arch_json": c.arch.to_json()}


def write_outputs(out: Path, result: SearchResult, summary: dict[str, Any], title: str,
                  final: Arch | None = None) -> dict[str, str]:
    """Write the search's files into ``out``; returns name -> path.

    Args:
        out: Output directory.
        result: The search result.
        summary: What ``summary.json`` holds.
        title: Plot title.
        final: The network after scaling and post-processing, when those ran:
            it becomes ``best.json`` / ``best.onnx`` and the searched network
            ``searched.json`` / ``searched.onnx``.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwprofError(f"cannot create output directory {out}: {exc.strerror}", "choose a writable --out") from None
    files: dict[str, str] = {}
    from nas.searchers.constrained import best_so_far

    history = pd.DataFrame([_candidate_row(c) for c in result.history])
    history["feasible"] = [bool(result.constraint.feasible(c.latency_ms)) for c in result.history]
    history["best_feasible_so_far"] = best_so_far(result.history, result.constraint)
    buf = io.BytesIO()
    history.to_parquet(buf, index=False)
    atomic_write_bytes(out / "history.parquet", buf.getvalue())
    files["history"] = str(out / "history.parquet")
    pareto = pd.DataFrame([_candidate_row(c) for c in result.pareto])
    atomic_write_text(out / "pareto.csv", pareto.to_csv(index=False))
    files["pareto"] = str(out / "pareto.csv")
    if result.best is not None:
        info = {k: summary[k] for k in ("target", "simulated", "score_label") if k in summary}
        searched = {"predicted_latency_ms": result.best.latency_ms, "score": result.best.score}
        measured = (summary.get("best") or {}).get("measured_latency_ms")
        if final is not None:
            _write_network(out, "searched", result.best.arch, info | searched, files)
            _write_network(out, "best", final, info | {"refined_from": result.best.arch.hash,
                                                       "measured_latency_ms": measured}, files)
        else:
            _write_network(out, "best", result.best.arch, info | searched | {"measured_latency_ms": measured}, files)
    curve = result.extra.get("training_curve")
    if curve:
        atomic_write_text(out / "training.csv", pd.DataFrame(curve).to_csv(index=False))
        plot_training(out / "training.png", curve, result.constraint.latency_ms, title)
        files["training_csv"], files["training_plot"] = str(out / "training.csv"), str(out / "training.png")
    plot_pareto(out / "pareto.png", result, title)
    files["plot"] = str(out / "pareto.png")
    if len(result.history) > 1 and history["best_feasible_so_far"].notna().any():
        plot_convergence(out / "convergence.png", history, result, title)
        files["convergence_plot"] = str(out / "convergence.png")
    files["summary"] = str(out / "summary.json")
    extra = {k: v for k, v in summary.get("extra", {}).items() if k != "training_curve"}
    atomic_write_text(out / "summary.json", dumps({**summary, "extra": extra, "files": files}, indent=2,
                                                  default=str) + "\n")
    return files


def _write_network(out: Path, stem: str, arch: Arch, info: dict[str, Any], files: dict[str, str]) -> None:
    data = {**json.loads(arch.to_json()), "hwprof_search": info}
    write_json(out / f"{stem}.json", data)
    atomic_write_bytes(out / f"{stem}.onnx", build_onnx(arch).SerializeToString())
    files[f"{stem}_json"], files[f"{stem}_onnx"] = str(out / f"{stem}.json"), str(out / f"{stem}.onnx")


def plot_training(path: Path, curve: list[dict[str, float]], target_ms: float | None, title: str) -> None:
    """Supernet training curve: loss terms and the expected latency against the target, per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(curve)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 6), dpi=120, sharex=True)
    smooth = max(1, len(frame) // 40)
    for column, label in (("loss", "total loss"), ("cross_entropy", "cross-entropy"),
                          ("latency_penalty", "latency term")):
        top.plot(frame["epoch"], frame[column].rolling(smooth, min_periods=1).mean(), label=label)
    top.set(ylabel=f"loss (running mean of {smooth} steps)", title=title)
    top.legend(fontsize=8)
    bottom.plot(frame["epoch"], frame["expected_latency_ms"], color="tab:blue", label="latency of the chosen network")
    if target_ms is not None:
        bottom.axhline(target_ms, color="tab:red", ls="--", label="target")
    bottom.set(xlabel="epoch", ylabel="predicted latency (ms)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_via(path, fig.savefig, ".png")
    plt.close(fig)


def plot_convergence(path: Path, history: pd.DataFrame, result: SearchResult, title: str) -> None:
    """Best score meeting the constraint against networks evaluated: does more budget still help?"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0), dpi=120)
    evaluations = np.arange(1, len(history) + 1)
    ax.plot(evaluations, history["best_feasible_so_far"], color="tab:blue", drawstyle="steps-post",
            label="best so far" + (" (meeting the constraint)" if result.constraint.latency_ms else ""))
    ax.scatter(evaluations, history["score"], s=3, alpha=0.25, color="tab:gray", label="each network")
    ax.set(xlabel="networks evaluated", ylabel=result.estimator, title=f"convergence: {title}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write_via(path, fig.savefig, ".png")
    plt.close(fig)


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
