"""The device protocol every adapter follows.

A device turns an ONNX model into a :class:`Session` (compile/load once), and a
session runs the model ``n`` times and returns per-inference seconds. The
measurement protocol (:mod:`hwprof.protocol`) drives sessions; adapters only
time single inferences as precisely as their backend allows.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import onnx

from hwprof.errors import HwprofError


@dataclass(frozen=True)
class NodeTime:
    """Time of one node as the runtime ran it (the runtime may have fused or renamed nodes).

    Attributes:
        node: Node name as the runtime reports it.
        op: Operator the runtime ran (e.g. Conv, FusedConv, ReorderInput).
        ms: Median time per inference, milliseconds.
    """

    node: str
    op: str
    ms: float


class Session(ABC):
    """A model loaded on a device, ready to run."""

    @abstractmethod
    def run(self, n: int) -> np.ndarray:
        """Run ``n`` inferences; return their latencies in seconds (float64, length ``n``)."""

    def close(self) -> None:
        """Release device resources."""


class Device(ABC):
    """A place where models run and are timed.

    Attributes:
        name: Registry name, e.g. ``"cpu"`` or ``"kirin-npu"``.
        kind: cpu | gpu | npu | dsp | vpu.
        simulated: True for analytic models of a chip; every output says so.
    """

    name: str = ""
    kind: str = ""
    simulated: bool = False
    graph_style: str = "hwprof"  # how hwprof's networks are spelled as ONNX (see hwprof.graph_styles)
    model_formats: tuple[str, ...] = ("onnx",)  # files `measure --model` may give it

    @abstractmethod
    def is_available(self) -> bool:
        """Whether models can run on this device here and now."""

    def unavailable_reason(self) -> str:
        """Why :meth:`is_available` is False (for error messages)."""
        return f"device '{self.name}' is not available on this machine"

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Details for ``hwprof devices`` and dataset rows (host, versions, profile)."""

    def settings(self) -> dict[str, Any]:
        """Options that change measurements (threads, dtype, ...); recorded with every row."""
        return {}

    def recorded_settings(self) -> dict[str, Any]:
        """:meth:`settings` plus the graph style when it is not the default (what rows record)."""
        values = self.settings()
        if self.graph_style != "hwprof":
            values = {**values, "graph_style": self.graph_style}
        return values

    def build(self, target) -> onnx.ModelProto:
        """The ONNX model of an Arch or Block in this device's graph style and dtype."""
        from hwprof.graph_styles import build_model
        from hwprof.quantization import as_dtype

        dtype = getattr(self, "dtype", "float32")
        return as_dtype(build_model(target, self.graph_style, "float32" if dtype == "int8" else dtype), dtype)

    def profile_hash(self) -> str:
        """Hash identifying the hardware and runtime a measurement reflects.

        For real devices: the facts of :meth:`info` (processor model, cores,
        library versions) without the host name, so two machines of the same kind
        share it. Simulated devices hash their profile instead.
        """
        facts = {k: v for k, v in self.info().items() if k not in ("hostname", "sources", "reason")}
        return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @abstractmethod
    def load(self, model: onnx.ModelProto) -> Session:
        """Compile/load ``model`` for timing."""

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        """Median time per graph node over ``runs`` inferences (the per-op breakdown).

        ``model``'s nodes must all be named. Devices that cannot break latency
        down per op raise :class:`HwprofError`.
        """
        raise HwprofError(f"device '{self.name}' cannot break latency down per op",
                          "use --per-op with cpu, gpu (onnxruntime) or a simulated device")

    def run(self, model: onnx.ModelProto, n: int) -> np.ndarray:
        """Load ``model`` and time ``n`` inferences (seconds). Convenience for one-off use."""
        session = self.load(model)
        try:
            return session.run(n)
        finally:
            session.close()

    def require_available(self) -> None:
        """Raise a clear error if the device cannot be used here."""
        if not self.is_available():
            raise HwprofError(self.unavailable_reason(),
                              "run `hwprof devices` to see what is available")

    def settings_hash(self) -> str:
        """Short hash of :meth:`recorded_settings` plus the profile hash."""
        text = json.dumps({"settings": self.recorded_settings(), "profile": self.profile_hash()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def timed_calls(call, n: int) -> np.ndarray:
    """Seconds of each of ``n`` calls of ``call()``, timed with ``perf_counter_ns`` (the adapters' timing loop)."""
    import time

    times = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        call()
        times[i] = clock() - start
    return times * 1e-9


def host_info() -> dict[str, Any]:
    """Facts about the host machine recorded with measurements."""
    import os

    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"hostname": platform.node(), "os": f"{platform.system()} {platform.release()}",
            "machine": platform.machine(), "cpu_model": cpu_model, "cores": os.cpu_count(),
            "python": platform.python_version()}


def model_inputs(model: onnx.ModelProto) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """Name, static shape and numpy dtype of each of a model's inputs (initializers excluded).

    Raises:
        HwprofError: if an input has a dynamic dimension.
    """
    inits = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tensor = inp.type.tensor_type
        dims = []
        for d in tensor.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                example = ",".join(map(str, _example_shape(tensor.shape.dim)))
                raise HwprofError(f"input '{inp.name}' has a dynamic dimension",
                                  f"give a static shape with --input-shape (e.g. --input-shape {inp.name}={example})")
            dims.append(d.dim_value)
        out.append((inp.name, tuple(dims), onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return out


def _example_shape(dims) -> list[int]:
    """A plausible static shape for a hint: known sizes kept; batch 1; an image's channels 3 and sides 224;
    a sequence's length 128."""
    rank = len(dims)
    out = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(d.dim_value)
        elif i == 0:
            out.append(1)
        elif rank == 4:
            out.append(3 if i == 1 else 224)
        else:
            out.append(128)
    return out


def model_input(model: onnx.ModelProto) -> tuple[str, tuple[int, ...], np.dtype]:
    """Name, static shape and numpy dtype of a model's single input.

    Raises:
        HwprofError: if the model has several inputs or a dynamic dimension.
    """
    inits = {i.name for i in model.graph.initializer}
    count = len([i for i in model.graph.input if i.name not in inits])
    if count != 1:
        raise HwprofError(f"the model has {count} inputs; this step takes single-input models")
    return model_inputs(model)[0]


def _vocabulary(model: onnx.ModelProto, name: str) -> int | None:
    """Rows of the embedding table an integer input indexes (a Gather of an initializer), if any."""
    tables = {i.name: list(i.dims) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == name and node.input[0] in tables:
            return int(tables[node.input[0]][0])
    return None


def input_feed(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded values for every input: N(0, 1) for floats; for integers, valid token ids.

    Integer inputs that index an embedding table get ids below its size; ones
    named like a mask get ones; token-type / segment / position inputs get
    zeros; any other integer input gets 0/1.
    """
    rng = np.random.default_rng(seed)
    feed = {}
    for name, shape, dtype in model_inputs(model):
        if np.dtype(dtype).kind == "f":
            feed[name] = rng.standard_normal(shape).astype(dtype)
            continue
        lowered = name.lower()
        vocab = _vocabulary(model, name)
        if "mask" in lowered:
            value = np.ones(shape)
        elif any(k in lowered for k in ("type", "segment", "position")) and vocab is None:
            value = np.zeros(shape)
        else:
            value = rng.integers(0, vocab or 2, shape)
        feed[name] = value.astype(dtype)
    return feed
