"""LiteRT (TensorFlow Lite) on the host CPU with the XNNPACK delegate: what Android phones run.

An optional extra: ``pip install 'hwprof[litert]'`` (PyPI ``ai-edge-litert``,
no TensorFlow). hwprof's networks are lowered to ``.tflite`` by
:mod:`hwprof.build_tflite`; ``hwprof measure --device litert-cpu --model
net.tflite`` measures any LiteRT model. The interpreter applies its default
delegate, XNNPACK, which runs float32 and int8 models; ``--dtype int8`` writes
a full-integer model.

The adapter registers through the ``hwprof.devices`` entry-point group, as a
third-party device would (see the README's "Add your own device").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.base import Session, host_info, timed_calls
from devices.optional import OptionalRuntimeDevice
from hwprof.errors import HwprofError
from hwprof.quantization import CALIBRATION


class LiteRTSession(Session):
    """A LiteRT interpreter with a fixed seeded input, timed around each ``invoke``."""

    def __init__(self, content: bytes, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_content=content, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise HwprofError(f"LiteRT cannot load the model: {str(exc).strip().splitlines()[0]}",
                              "check the .tflite file with LiteRT's analyzer, or use another device") from None
        rng = np.random.default_rng(0)
        for detail in self.interpreter.get_input_details():
            dtype = np.dtype(detail["dtype"])
            if dtype.kind == "f":
                value = rng.standard_normal(detail["shape"]).astype(dtype)
            else:
                info = np.iinfo(dtype)
                value = rng.integers(max(info.min, -128), min(info.max, 127) + 1, detail["shape"]).astype(dtype)
            self.interpreter.set_tensor(detail["index"], value)

    def run(self, n: int) -> np.ndarray:
        return timed_calls(self.interpreter.invoke, n)

    def close(self) -> None:
        self.interpreter = None


class LiteRTDevice(OptionalRuntimeDevice):
    """This machine's CPU through the LiteRT interpreter and its XNNPACK delegate.

    Args:
        threads: Interpreter threads (default 1: stable, comparable numbers).
        dtype: ``float32``, or ``int8`` (full-integer model; see :mod:`hwprof.build_tflite`).
    """

    name = "litert-cpu"
    model_formats = ("onnx", "tflite")
    distribution, runtime, extra, dtypes = "ai-edge-litert", "LiteRT", "litert", ("float32", "int8")

    def info(self) -> dict[str, Any]:
        return {"simulated": False, **host_info(), "ai_edge_litert": self.runtime_version(), "delegate": "xnnpack"}

    def settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {"threads": self.threads, "dtype": self.dtype, "delegate": "xnnpack"}
        if self.dtype == "int8":
            from hwprof.build_tflite import INT8_SCHEME

            values.update(quantization=INT8_SCHEME, calibration=dict(CALIBRATION))
        return values

    def build(self, target):
        """The ``.tflite`` model of an Arch or Block (lowered from its ONNX in this device's graph style)."""
        from hwprof.graph_styles import build_model

        return self.lower(build_model(target, self.graph_style, "float32"))

    def lower(self, model):
        """A :class:`~hwprof.build_tflite.TfliteModel` of ``model`` in this device's dtype (as is if already one)."""
        from hwprof.build_tflite import TfliteModel, onnx_to_tflite

        if isinstance(model, TfliteModel):
            return model
        return onnx_to_tflite(model, self.dtype)

    def prepare(self, model):
        """The ``.tflite`` flatbuffer (lowering and int8 calibration are the expensive part; the bytes pickle)."""
        return self.lower(model)

    def load(self, model) -> LiteRTSession:
        self.require_available()
        return LiteRTSession(self.lower(model).content, self.threads)
