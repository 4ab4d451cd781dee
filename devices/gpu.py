"""An NVIDIA GPU through onnxruntime's CUDA provider, timed with CUDA events via torch.

With onnxruntime's CUDA provider, the model runs with inputs and outputs bound
on the device (IO binding) so that host transfers are not timed. When that
provider is missing but torch sees a GPU, a model that hwprof built is run as
the equivalent torch module on CUDA and timed with CUDA events.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from devices.base import Device, NodeTime, Session, host_info, model_input
from devices.ort import create_ort_session, ort_op_times
from hwprof.errors import HwprofError
from hwprof.registry import DEVICES


def _torch_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


class OrtCudaSession(Session):
    """onnxruntime CUDA session with device-resident IO, synchronised per run."""

    def __init__(self, model: onnx.ModelProto, threads: int, opt_level: str) -> None:
        self.session, feed = create_ort_session(model, ["CUDAExecutionProvider"], threads, opt_level)
        self.binding = self.session.io_binding()
        for name, array in feed.items():
            self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        for out in self.session.get_outputs():
            self.binding.bind_output(out.name, "cuda", 0)

    def run(self, n: int) -> np.ndarray:
        times = np.empty(n)
        for i in range(n):
            start = time.perf_counter_ns()
            self.session.run_with_iobinding(self.binding)
            self.binding.synchronize_outputs()
            times[i] = time.perf_counter_ns() - start
        return times * 1e-9


class TorchCudaSession(Session):
    """A torch module on CUDA timed with CUDA events."""

    def __init__(self, module, shape: tuple[int, ...]) -> None:
        import torch

        self.torch = torch
        self.module = module.cuda().eval()
        self.x = torch.randn(shape, device="cuda")

    def run(self, n: int) -> np.ndarray:
        torch = self.torch
        times = np.empty(n)
        with torch.inference_mode():
            for i in range(n):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                self.module(self.x)
                end.record()
                end.synchronize()
                times[i] = start.elapsed_time(end) * 1e-3
        return times


@DEVICES.register("gpu")
class GPUDevice(Device):
    """An NVIDIA GPU (onnxruntime CUDA provider, else torch with CUDA events)."""

    name = "gpu"
    kind = "gpu"
    simulated = False

    def __init__(self, threads: int = 1, opt_level: str = "all", dtype: str = "float32", seed: int = 0) -> None:
        self.threads = threads
        self.opt_level = opt_level
        self.dtype = dtype

    @staticmethod
    def backend() -> str:
        """'onnxruntime-cuda', 'torch-cuda' or '' when no GPU can be used."""
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return "onnxruntime-cuda"
        if _torch_cuda():
            return "torch-cuda"
        return ""

    def is_available(self) -> bool:
        return bool(self.backend())

    def unavailable_reason(self) -> str:
        return ("no usable GPU: onnxruntime has no CUDAExecutionProvider and torch sees no CUDA device")

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"simulated": False, **host_info(), "backend": self.backend() or "none"}
        if _torch_cuda():
            import torch

            info["gpu_name"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
        return info

    def settings(self) -> dict[str, Any]:
        return {"backend": self.backend(), "opt_level": self.opt_level, "dtype": self.dtype}

    def load(self, model: onnx.ModelProto) -> Session:
        self.require_available()
        if self.backend() == "onnxruntime-cuda":
            return OrtCudaSession(model, self.threads, self.opt_level)
        return TorchCudaSession(_torch_module_for(model), model_input(model)[1])

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        self.require_available()
        if self.backend() != "onnxruntime-cuda":
            return super().op_times(model, runs)
        return ort_op_times(model, ["CUDAExecutionProvider"], self.threads, self.opt_level, runs)


def _torch_module_for(model: onnx.ModelProto):
    """The torch module of a model hwprof built (found through its arch metadata)."""
    from hwprof.arch import Arch

    props = {p.key: p.value for p in model.metadata_props}
    arch_json = props.get("hwprof.arch_json")
    if not arch_json:
        raise HwprofError("the torch-CUDA backend can only run networks built by hwprof",
                          "install onnxruntime-gpu to run arbitrary ONNX models on the GPU")
    from hwprof.build_torch import build_torch

    return build_torch(Arch.from_json(arch_json))
