"""Per-node times from onnxruntime's built-in profiler.

The profiler writes a Chrome-trace JSON: one ``Session``/``model_run`` event per
inference and one ``Node`` event ``<node>_kernel_time`` per node run, with the
operator the runtime actually ran in ``args.op_name``. Profiling slows
inference a little, so hwprof profiles in a separate session after the timed
runs, drops warm-up inferences, and keeps each node's median.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from devices.base import NodeTime


def ort_op_times(model: onnx.ModelProto, providers: list, threads: int, opt_level: str, runs: int = 20,
                 warmup: int = 5) -> list[NodeTime]:
    """Profile ``runs`` inferences of ``model`` and return each node's median time, in run order.

    Args:
        model: Model whose nodes are all named.
        providers: onnxruntime execution providers.
        threads: Intra-op threads.
        opt_level: Graph optimisation level name (as for the timed sessions).
        runs: Profiled inferences kept.
        warmup: Inferences run first and dropped.
    """
    from devices.cpu import create_ort_session

    with tempfile.TemporaryDirectory(prefix="hwprof-ortprof-") as tmp:
        session, feed = create_ort_session(model, providers, threads, opt_level,
                                           profile_prefix=os.path.join(tmp, "profile"))
        names = [o.name for o in session.get_outputs()]
        for _ in range(warmup + runs):
            session.run(names, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
    return node_medians(trace, skip_runs=warmup)


def node_medians(trace: list[dict], skip_runs: int = 0) -> list[NodeTime]:
    """Median time per node over the inferences of an onnxruntime trace, skipping the first ``skip_runs``."""
    run_spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace
                       if e.get("cat") == "Session" and e.get("name") == "model_run")
    kept = run_spans[skip_runs:]
    if not kept:
        return []
    start = kept[0][0]
    durations: dict[tuple[str, str], list[float]] = {}
    for event in trace:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time") or event["ts"] < start:
            continue
        key = (event["name"][: -len("_kernel_time")], event.get("args", {}).get("op_name", "?"))
        durations.setdefault(key, []).append(event["dur"] / 1e3)
    return [NodeTime(node, op, float(np.median(times))) for (node, op), times in durations.items()]
