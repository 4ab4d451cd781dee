"""The device protocol every adapter follows: :class:`Device` and :class:`Session`.

A device turns an ONNX model into a :class:`Session` (compile/load once), and a
session runs the model ``n`` times and returns per-inference seconds. The
measurement protocol (:mod:`hwprof.protocol`) drives sessions; adapters only
time single inferences as precisely as their backend allows.

These interfaces belong to hwprof's core, so the core programs against them
without importing any adapter; the adapters (package ``devices``, and
third-party plugins) implement them. ``devices.base`` re-exports them.
"""

from __future__ import annotations

import hashlib
import json
import platform
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from hwprof.errors import HwprofError

# Measurement defaults, defined once: commands and API functions ask the device (Device.min_time_s,
# Device.reference_every_s) instead of deciding between simulated and real themselves.
REAL_MIN_TIME_S = 0.25  # seconds of inference per model `hwprof measure` records on a real device
QUICK_MIN_TIME_S = 0.05  # one-off checks on a real device: a search's measured winner, the predictor cache
REFERENCE_EVERY_S = 2.0  # how often the drift reference is timed between models on a real device


def device_display_name(device: str, simulated: bool, dtype: str = "float32") -> str:
    """A device as outputs name it: marked when simulated; a real device's non-float32 dtype as in its
    ``--device`` token (``litert-cpu:int8``)."""
    if simulated:
        return f"{device} (simulated)"
    return device if dtype == "float32" else f"{device}:{dtype}"


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
    caches_compiled_models: bool = False  # True: load() imports from compile_cache_dir what prepare() compiled there
    compile_cache_dir: str | None = None  # where prepare() may leave a compiled model for load() (another process)

    @abstractmethod
    def is_available(self) -> bool:
        """Whether models can run on this device here and now."""

    def unavailable_reason(self) -> str:
        """Why :meth:`is_available` is False (for error messages)."""
        return f"device '{self.name}' is not available on this machine"

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Details for ``hwprof devices`` and dataset rows (host, versions, profile)."""

    @property
    def label(self) -> str:
        """Name for display: marked when simulated; a real device's non-float32 dtype as in its token (``cpu:int8``)."""
        return device_display_name(self.name, self.simulated, getattr(self, "dtype", "float32"))

    @property
    def token(self) -> str:
        """The target as a user writes it: ``cpu``, ``cpu:int8``, ``kirin-npu``, or a profile's ``.toml`` path."""
        return getattr(self, "_token", None) or (self.name if self.simulated else self.label)

    @property
    def options(self) -> dict[str, Any]:
        """The options it was resolved with (``devices.resolve(device.name, **device.options)`` makes the same
        device again, e.g. on a Ray node); a device made directly: its graph style only."""
        return dict(getattr(self, "_options", None) or {"graph_style": self.graph_style})

    def min_time_s(self, quick: bool = False) -> float:
        """Seconds of inference to record per model by default: none on a simulated chip (its noise is drawn,
        not caused); ``REAL_MIN_TIME_S`` on a real device, ``QUICK_MIN_TIME_S`` for a one-off check."""
        if self.simulated:
            return 0.0
        return QUICK_MIN_TIME_S if quick else REAL_MIN_TIME_S

    @property
    def reference_every_s(self) -> float | None:
        """How often to time the drift reference between models (None: a simulated chip does not drift)."""
        return None if self.simulated else REFERENCE_EVERY_S

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

    def prepare(self, model):
        """The expensive part of :meth:`load` that needs neither the timed core nor this process.

        Quantizing and calibrating, lowering to the runtime's format, and (for a
        device with ``caches_compiled_models``) compiling into
        :attr:`compile_cache_dir`. ``hwprof measure --prepare-workers`` runs it in
        worker processes ahead of timing (:mod:`hwprof.prepare`), so what it returns
        must pickle, and :meth:`load` must take it and do only the cheap rest.

        Args:
            model: What :meth:`build` returns, or a model a user gave.

        Returns:
            What :meth:`load` takes. The default: ``model`` as is (all the work is in :meth:`load`).
        """
        return model

    @abstractmethod
    def load(self, model: onnx.ModelProto) -> Session:
        """Compile/load ``model`` (as :meth:`build` or :meth:`prepare` gives it) for timing."""

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
