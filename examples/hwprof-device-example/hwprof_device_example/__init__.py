"""An example device plugin for hwprof: onnxruntime on the CPU with graph optimizations off.

It shows the whole device protocol: a ``Device`` subclass that says what it is
(``name``, ``kind``, ``simulated``), whether it can run here, what describes the
hardware (``info``) and the settings (``settings``, recorded with every row),
and turns an ONNX model into a ``Session`` whose ``run(n)`` returns ``n``
per-inference latencies in seconds. hwprof's protocol does the rest (warm-up,
outlier rejection, confidence intervals, drift reference, datasets).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from devices.base import Device, Session, host_info, model_input


class _Session(Session):
    def __init__(self, model: onnx.ModelProto) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        name, shape, dtype = model_input(model)
        self.feed = {name: np.random.default_rng(0).standard_normal(shape).astype(dtype)}

    def run(self, n: int) -> np.ndarray:
        times = np.empty(n)
        for i in range(n):
            start = time.perf_counter_ns()
            self.session.run(None, self.feed)
            times[i] = time.perf_counter_ns() - start
        return times * 1e-9


class UnoptimizedOrtDevice(Device):
    """onnxruntime's CPU provider with every graph optimization disabled (one thread)."""

    name = "ort-unoptimized"
    kind = "cpu"
    simulated = False

    def __init__(self, seed: int = 0) -> None:
        pass

    def is_available(self) -> bool:
        return "CPUExecutionProvider" in ort.get_available_providers()

    def info(self) -> dict[str, Any]:
        return {"simulated": False, **host_info(), "onnxruntime": ort.__version__}

    def settings(self) -> dict[str, Any]:
        return {"threads": 1, "graph_optimization": "disabled"}

    def load(self, model: onnx.ModelProto) -> Session:
        return _Session(model)
