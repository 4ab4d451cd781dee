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
