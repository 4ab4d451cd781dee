"""The host CPU through onnxruntime's CPU execution provider."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from devices.base import Device, NodeTime, Session, host_info, input_feed, timed_calls
from hwprof.errors import HwprofError
from hwprof.quantization import CALIBRATION, QDQ_SCHEME, as_dtype, check_dtype
from hwprof.registry import DEVICES

DTYPES = ("float32", "float16", "int8")

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


@DEVICES.register("cpu")
class CPUDevice(Device):
    """This machine's CPU via onnxruntime.

    Args:
        threads: Intra-op threads (default 1: stable, comparable numbers).
        opt_level: Graph optimisation level: disable | basic | extended | all.
        dtype: ``float32``, ``float16`` (hwprof builds float16 models), or ``int8`` (a static QDQ
            model, see :mod:`hwprof.quantization`; float ONNX models given to it are quantized too).
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
        check_dtype(dtype, DTYPES, self.name)
        self.threads = threads
        self.opt_level = opt_level
        self.dtype = dtype

    def is_available(self) -> bool:
        return "CPUExecutionProvider" in ort.get_available_providers()

    def info(self) -> dict[str, Any]:
        return {"simulated": False, **host_info(), "onnxruntime": ort.__version__,
                "provider": "CPUExecutionProvider"}

    def settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {"threads": self.threads, "opt_level": self.opt_level, "dtype": self.dtype}
        if self.dtype == "int8":
            values.update(quantization=QDQ_SCHEME, calibration=dict(CALIBRATION))
        return values

    def load(self, model: onnx.ModelProto) -> OrtSession:
        model = as_dtype(model, self.dtype)
        return OrtSession(*create_ort_session(model, ["CPUExecutionProvider"], self.threads, self.opt_level))

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        from devices.ort_profile import ort_op_times

        return ort_op_times(as_dtype(model, self.dtype), ["CPUExecutionProvider"], self.threads, self.opt_level,
                            runs)
