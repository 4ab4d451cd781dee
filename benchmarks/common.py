"""Shared helpers for benchmark scripts: timing and result output."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from typing import Callable

import hwprof


def time_calls(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Median, quartiles and n of a list of seconds, in milliseconds."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_ms": statistics.median(times) * 1e3, "p25_ms": q[0] * 1e3,
            "p75_ms": q[2] * 1e3, "n": len(times)}


def emit(name: str, results: dict, json_path: str | None = None) -> None:
    """Print results, and write them as JSON with host info when asked."""
    doc = {"benchmark": name, "hwprof": hwprof.__version__, "python": sys.version.split()[0],
           "machine": platform.machine(), "results": results}
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(doc, fh, indent=2)


def feasible_points(results: dict, constraint) -> dict:
    """Per run name, the (latency ms, score) of every evaluated network that meets ``constraint``."""
    import numpy as np

    return {name: np.array([(c.latency_ms, c.score) for c in r.history if constraint.feasible(c.latency_ms)])
            .reshape(-1, 2) for name, r in results.items()}


def shared_reference_hypervolumes(points: dict, constraint) -> dict:
    """Hypervolume of each run's points against one reference point for all of them.

    The reference is the latency target (or the slowest latency any run saw) and
    the lowest score any run saw, so the runs of one seed are compared fairly.
    """
    import numpy as np

    from nas.searchers.base import hypervolume

    everything = np.vstack(list(points.values()))
    ref = (constraint.latency_ms or float(everything[:, 0].max()), float(everything[:, 1].min()))
    return {name: hypervolume(p[:, 0], p[:, 1], ref) if len(p) else 0.0 for name, p in points.items()}

