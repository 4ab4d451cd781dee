"""The host CPU through onnxruntime's CPU execution provider."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from devices.base import Device, NodeTime, Session, host_info, model_input
from hwprof.errors import HwprofError
from hwprof.registry import DEVICES

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
        times = np.empty(n)
        run, feed, names = self.session.run, self.feed, self.output_names
        clock = time.perf_counter_ns
        for i in range(n):
            start = clock()
            run(names, feed)
            times[i] = clock() - start
        return times * 1e-9


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
    opts.log_severity_level = 3
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    try:
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise HwprofError(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}",
                          "check the model with onnx.checker, or use another device") from None
    name, shape, dtype = model_input(model)
    feed = {name: np.random.default_rng(0).standard_normal(shape).astype(dtype)}
    return session, feed


@DEVICES.register("cpu")
class CPUDevice(Device):
    """This machine's CPU via onnxruntime.

    Args:
        threads: Intra-op threads (default 1: stable, comparable numbers).
        opt_level: Graph optimisation level: disable | basic | extended | all.
        dtype: Input and weight dtype used when hwprof builds models (float32 | float16).
    """

    name = "cpu"
    kind = "cpu"
    simulated = False

    def __init__(self, threads: int = 1, opt_level: str = "all", dtype: str = "float32", seed: int = 0) -> None:
        if opt_level not in OPT_LEVELS:
            raise HwprofError(f"unknown graph optimisation level '{opt_level}'",
                              f"use one of: {', '.join(OPT_LEVELS)}")
        if threads < 1:
            raise HwprofError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self.opt_level = opt_level
        self.dtype = dtype

    def is_available(self) -> bool:
        return "CPUExecutionProvider" in ort.get_available_providers()

    def info(self) -> dict[str, Any]:
        return {"simulated": False, **host_info(), "onnxruntime": ort.__version__,
                "provider": "CPUExecutionProvider"}

    def settings(self) -> dict[str, Any]:
        return {"threads": self.threads, "opt_level": self.opt_level, "dtype": self.dtype}

    def load(self, model: onnx.ModelProto) -> OrtSession:
        return OrtSession(*create_ort_session(model, ["CPUExecutionProvider"], self.threads, self.opt_level))

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        from devices.ort_profile import ort_op_times

        return ort_op_times(model, ["CPUExecutionProvider"], self.threads, self.opt_level, runs)
