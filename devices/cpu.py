"""The host CPU through onnxruntime's CPU execution provider."""

from __future__ import annotations

from typing import Any

import onnx
import onnxruntime as ort

from devices.base import Device, NodeTime, host_info
from devices.ort import OPT_LEVELS, OrtSession, create_ort_session, ort_op_times
from hwprof.errors import HwprofError
from hwprof.quantization import CALIBRATION, QDQ_SCHEME, as_dtype, check_dtype
from hwprof.registry import DEVICES

DTYPES = ("float32", "float16", "int8")

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

    def prepare(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """``model`` quantized when the dtype is int8 (the calibration is the expensive part); else as is."""
        return as_dtype(model, self.dtype)

    def load(self, model: onnx.ModelProto) -> OrtSession:
        model = self.prepare(model)
        return OrtSession(*create_ort_session(model, ["CPUExecutionProvider"], self.threads, self.opt_level))

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        return ort_op_times(as_dtype(model, self.dtype), ["CPUExecutionProvider"], self.threads, self.opt_level,
                            runs)
