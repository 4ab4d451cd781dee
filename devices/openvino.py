"""OpenVINO runtime on the host CPU: Intel's deployment runtime, reading hwprof's ONNX directly.

An optional extra: ``pip install 'hwprof[openvino]'``. Models compile for the
``CPU`` plugin with one inference stream, the latency performance hint, a
recorded thread count and float32 inference precision (OpenVINO would
otherwise pick bf16 on CPUs that have it, silently changing what is timed).
``--dtype int8`` hands OpenVINO the QDQ model of :mod:`hwprof.quantization`,
which its low-precision transformations turn into int8 kernels.

``--per-op`` reads OpenVINO's own performance counters: one entry per
executed primitive, named after the original ONNX nodes it fused.

The adapter registers through the ``hwprof.devices`` entry-point group, as a
third-party device would (see the README's "Add your own device").
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from devices.base import NodeTime, Session, host_info, input_feed, timed_calls
from devices.optional import OptionalRuntimeDevice
from hwprof.errors import HwprofError
from hwprof.quantization import CALIBRATION, QDQ_SCHEME, as_dtype

_OV_SUFFIX = re.compile(r"(/WithoutBiases|/folded)+$")  # what OpenVINO and BN folding append to a node's name


def _bn_folded(model: onnx.ModelProto) -> onnx.ModelProto:
    """BatchNormalization folded into its convolution, as OpenVINO does itself, but keeping the
    convolution's ONNX name (OpenVINO's own folding renames it), so per-op times map to layers."""
    from hwprof.graph_rewrites import apply_rewrites, find_rewrites

    folds = [r for r in find_rewrites(model) if r.kind == "bn-fold"]
    return apply_rewrites(model, folds) if folds else model


@dataclass
class CompiledOnDisk:
    """A model :meth:`OpenVINODevice.prepare` compiled into the model cache (what crosses to the timing process).

    Attributes:
        model: The ONNX model (quantized for int8), for the input feed and the per-op breakdown.
        path: Its BN-folded ONNX file in the cache directory: ``compile_model(path)`` finds the cached blob by
            the file, without reading or converting the model.
    """

    model: onnx.ModelProto
    path: str


class OpenVINOSession(Session):
    """An OpenVINO infer request with a fixed seeded input, timed around each ``infer``."""

    def __init__(self, compiled, feed: dict[str, np.ndarray]) -> None:
        import openvino as ov

        self.compiled = compiled
        self.request = compiled.create_infer_request()
        for name, value in feed.items():
            self.request.set_tensor(name, ov.Tensor(value))

    def run(self, n: int) -> np.ndarray:
        return timed_calls(self.request.infer, n)

    def close(self) -> None:
        self.request = self.compiled = None


class OpenVINODevice(OptionalRuntimeDevice):
    """This machine's CPU through OpenVINO's CPU plugin.

    Args:
        threads: ``INFERENCE_NUM_THREADS`` (default 1: stable, comparable numbers).
        dtype: ``float32``, or ``int8`` (the QDQ model of :mod:`hwprof.quantization`).
    """

    name = "openvino-cpu"
    caches_compiled_models = True  # OpenVINO's model cache (CACHE_DIR): a compiled blob another process imports
    per_op_source = "OpenVINO performance counters"
    distribution, runtime, extra, dtypes = "openvino", "OpenVINO", "openvino", ("float32", "int8")

    def info(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"simulated": False, **host_info(), "openvino": self.runtime_version(), "plugin": "CPU"}
        if self.is_available():
            import openvino as ov

            facts["plugin_device"] = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
        return facts

    def settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {"threads": self.threads, "dtype": self.dtype, "streams": 1,
                                  "performance_hint": "LATENCY", "inference_precision": "f32"}
        if self.dtype == "int8":
            values.update(quantization=QDQ_SCHEME, calibration=dict(CALIBRATION))
        return values

    def config(self, per_op: bool = False) -> dict[str, Any]:
        """The CPU plugin configuration every model is compiled with (plus the model cache, when one is set:
        OpenVINO keeps it out of the compiled model, so a cached blob is the model compiled without it)."""
        values = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": self.threads,
                  "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": per_op}
        if self.compile_cache_dir and not per_op:
            values["CACHE_DIR"] = self.compile_cache_dir
        return values

    def prepare(self, model: onnx.ModelProto) -> "onnx.ModelProto | CompiledOnDisk":
        """``model`` quantized (int8); with a :attr:`compile_cache_dir`, also compiled into it from a file there,
        so that :meth:`load` in another process imports the compiled blob without reading the model again."""
        model = as_dtype(model, self.dtype)
        if not self.compile_cache_dir:
            return model
        import hashlib
        from pathlib import Path

        folded = _bn_folded(model).SerializeToString()
        path = Path(self.compile_cache_dir) / f"{hashlib.sha256(folded).hexdigest()[:24]}.onnx"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(folded)
            os.replace(tmp, path)
        prepared = CompiledOnDisk(model, str(path))
        self._compile_file(prepared)  # the blob lands in the cache; the compiled model here is dropped
        return prepared

    def _compile_file(self, prepared: "CompiledOnDisk"):
        import openvino as ov

        try:
            return ov.Core().compile_model(prepared.path, "CPU", self.config())
        except RuntimeError as exc:
            raise HwprofError(f"OpenVINO cannot compile the model: {str(exc).strip().splitlines()[0]}",
                              "check the model with onnx.checker, or use another device") from None

    def build(self, target) -> onnx.ModelProto:
        from hwprof.graph_styles import build_model

        return as_dtype(build_model(target, self.graph_style, "float32"), self.dtype)

    def _compile(self, model: onnx.ModelProto, per_op: bool = False):
        self.require_available()
        import openvino as ov

        model = _bn_folded(as_dtype(model, self.dtype))  # no-ops on what prepare() returned
        core = ov.Core()
        try:
            compiled = core.compile_model(core.read_model(io.BytesIO(model.SerializeToString())), "CPU",
                                          self.config(per_op))
        except RuntimeError as exc:
            raise HwprofError(f"OpenVINO cannot compile the model: {str(exc).strip().splitlines()[0]}",
                              "check the model with onnx.checker, or use another device") from None
        return compiled, input_feed(model)

    def load(self, model: "onnx.ModelProto | CompiledOnDisk") -> OpenVINOSession:
        if isinstance(model, CompiledOnDisk):
            self.require_available()
            return OpenVINOSession(self._compile_file(model), input_feed(model.model))
        return OpenVINOSession(*self._compile(model))

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        """Median time per executed primitive from OpenVINO's performance counters.

        Each primitive is named after the first original ONNX node it fused that
        the model has (OpenVINO renames fused convolutions); layout reorders it
        inserts keep OpenVINO's name and op ``Reorder``.
        """
        if isinstance(model, CompiledOnDisk):
            model = model.model
        session = OpenVINOSession(*self._compile(model, per_op=True))
        graph_names = {n.name for n in model.graph.node} | {o for n in model.graph.node for o in n.output}
        origin = {}
        for op in session.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            names = [op.get_friendly_name()] + info["originalLayersNames"].astype(str).split(",")
            known = [_OV_SUFFIX.sub("", n) for n in names if _OV_SUFFIX.sub("", n) in graph_names]
            origin[op.get_friendly_name()] = (known[0] if known else op.get_friendly_name(),
                                              info["layerType"].astype(str))
        samples: dict[str, list[float]] = {}
        for _ in range(5):
            session.request.infer()
        for _ in range(runs):
            session.request.infer()
            for p in session.request.get_profiling_info():
                if p.status.name == "EXECUTED":
                    samples.setdefault(p.node_name, []).append(p.real_time.total_seconds() * 1e3)
        session.close()
        return [NodeTime(origin.get(node, (node, "?"))[0], origin.get(node, (node, "?"))[1], float(np.median(ms)))
                for node, ms in samples.items()]
