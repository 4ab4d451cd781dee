"""Everything hwprof asks of onnxruntime, in one place: sessions, timing, the profiler, the optimized graph.

- :func:`create_ort_session` / :class:`OrtSession`: a session with hwprof's
  settings and a seeded input feed, timed with ``perf_counter_ns``.
- :func:`ort_op_times`: per-node times from onnxruntime's built-in profiler.
  The profiler writes a Chrome-trace JSON: one ``Session``/``model_run`` event
  per inference and one ``Node`` event ``<node>_kernel_time`` per node run,
  with the operator the runtime actually ran in ``args.op_name``. Profiling
  slows inference a little, so hwprof profiles in a separate session after the
  timed runs, drops warm-up inferences, and keeps each node's median.
- :func:`optimized_graph`: the graph onnxruntime executes after its graph
  optimizations (what the kernel-rf predictor reads its kernels from).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from hwprof.device import NodeTime, Session, timed_calls
from hwprof.errors import HwprofError
from hwprof.onnx_inputs import input_feed

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OrtSession(Session):
    """An onnxruntime session timed with ``perf_counter_ns`` around each ``run``."""

    def __init__(self, session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> None:
        self.session = session
        self.feed = feed
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, n: int) -> np.ndarray:
        run, feed, names = self.session.run, self.feed, self.output_names
        return timed_calls(lambda: run(names, feed), n)


def create_ort_session(model: onnx.ModelProto, providers: list, threads: int, opt_level: str,
                       profile_prefix: str | None = None) -> tuple[ort.InferenceSession, dict[str, np.ndarray]]:
    """An onnxruntime session plus a fixed random input feed.

    ``profile_prefix`` turns on onnxruntime's profiler, writing its trace there.

    Raises:
        HwprofError: if onnxruntime rejects the model.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = OPT_LEVELS[opt_level]
    opts.log_severity_level = 4  # fatal only: a failing model is reported in one line by hwprof, not logged
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    try:
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise HwprofError(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}",
                          "check the model with onnx.checker, or use another device") from None
    return session, input_feed(model)


def optimized_graph(model: onnx.ModelProto, provider: str, opt_level: str) -> onnx.ModelProto:
    """The graph onnxruntime will execute for ``model`` (written at session creation, no inference).

    Raises:
        HwprofError: if onnxruntime cannot load or optimize the model.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = OPT_LEVELS[opt_level]
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="hwprof-opt-") as tmp:
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        try:
            ort.InferenceSession(model.SerializeToString(), opts, providers=[provider])
            return onnx.load(opts.optimized_model_filepath)
        except Exception as exc:  # onnxruntime and onnx raise their own exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise HwprofError(f"onnxruntime cannot load or optimize the model: {first}",
                              "check the model with onnx.checker, or re-export it") from None


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
