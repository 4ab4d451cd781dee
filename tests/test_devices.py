"""Device adapters and the simulated-chip model."""

from __future__ import annotations

import numpy as np
import pytest

from devices import resolve
from hwprof.arch import Arch, Block
from hwprof.build_onnx import build_onnx
from hwprof.errors import HwprofError
from tests.conftest import samples

SIMULATED = ["kirin-npu", "hexagon-dsp", "myriad-vpu", "snapdragon-cpu"]


def lat(device: str, target) -> float:
    return resolve(device).latency(build_onnx(target))[0]


@pytest.mark.parametrize("device", SIMULATED)
def test_latency_is_a_staircase_in_channels(device):
    lane = resolve(device).profile.lane
    ts = [lat(device, Block("conv", 256, c, 56, kernel=(3,))) for c in range(lane, 4 * lane + 1)]
    steps = np.diff(ts)
    # flat within a lane group, jumps at lane boundaries
    flat = [steps[i] for i in range(len(steps)) if i % lane != 0]
    jumps = [steps[i] for i in range(len(steps)) if i % lane == 0]
    assert max(abs(s) for s in flat) < 0.2 * min(jumps)
    assert min(jumps) > 0


@pytest.mark.parametrize("device", SIMULATED)
def test_block_latency_depends_on_placement(device):
    early = Block("mbconv", 24, 24, 56, kernel=(5,), mid=96)
    late = Block("mbconv", 24, 24, 14, kernel=(5,), mid=96)
    assert lat(device, early) > 1.3 * lat(device, late)


def test_kernel_and_block_rankings_differ_between_devices():
    k7 = Block("mbconv", 64, 64, 28, kernel=(7,), mid=256)
    k3_wide = Block("mbconv", 64, 64, 28, kernel=(3,), mid=768)
    ratio = {d: lat(d, k7) / lat(d, k3_wide) for d in SIMULATED}
    # depthwise 7x7 is slow on the NPU, fine on the VPU: the two blocks swap rank
    assert ratio["kirin-npu"] > 1 > ratio["myriad-vpu"]
    se = Block("mbconv", 64, 64, 28, kernel=(3,), mid=192, se=True, act="hswish")
    big = Block("mbconv", 64, 64, 28, kernel=(5,), mid=384)
    assert (lat("hexagon-dsp", se) > lat("hexagon-dsp", big)) != (lat("kirin-npu", se) > lat("kirin-npu", big))


def test_unsupported_op_costs_more_where_it_falls_back():
    plain = Block("mbconv", 40, 40, 28, kernel=(3,), mid=120, act="relu")
    hswish = Block("mbconv", 40, 40, 28, kernel=(3,), mid=120, act="hswish")
    dsp = lat("hexagon-dsp", hswish) / lat("hexagon-dsp", plain)
    npu = lat("kirin-npu", hswish) / lat("kirin-npu", plain)
    assert dsp > 1.5 and npu < 1.1
    costs = resolve("hexagon-dsp").latency(build_onnx(hswish))[1]
    assert any(c.fallback and c.op_type == "HardSwish" for c in costs)


@pytest.mark.parametrize("device", SIMULATED)
def test_end_to_end_differs_from_sum_of_blocks(device):
    arch = samples("ofa", 1)[0]
    e2e = lat(device, arch)
    blocks = sum(lat(device, b) for b in arch.blocks)
    assert abs(blocks - e2e) / e2e > 0.05


@pytest.mark.parametrize("device", SIMULATED)
def test_same_seed_same_measurements(device):
    model = build_onnx(samples("ofa", 1)[0])
    a = resolve(device, seed=3).run(model, 50)
    b = resolve(device, seed=3).run(model, 50)
    c = resolve(device, seed=4).run(model, 50)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a > 0)


def test_cpu_device_times_onnxruntime():
    arch = samples("proxyless", 1)[0]
    times = resolve("cpu").run(build_onnx(arch), 5)
    assert times.shape == (5,) and np.all(times > 0)
    assert resolve("cpu").settings() == {"threads": 1, "opt_level": "all", "dtype": "float32"}


def test_gpu_is_clear_error_without_gpu():
    gpu = resolve("gpu")
    if gpu.is_available():
        pytest.skip("a GPU is present: covered by test_gpu_measures")
    with pytest.raises(HwprofError, match="no usable GPU"):
        gpu.require_available()


def test_gpu_measures():
    gpu = resolve("gpu")
    if not gpu.is_available():
        pytest.skip("no GPU on this machine (onnxruntime CUDA provider or torch CUDA)")
    times = gpu.run(build_onnx(samples("ofa", 1)[0]), 20)
    assert np.all(times > 0)


def test_unknown_device_is_a_clear_error():
    with pytest.raises(HwprofError, match="unknown device 'tpu9'"):
        resolve("tpu9")


def test_simulated_devices_say_so():
    for name in SIMULATED:
        dev = resolve(name)
        assert dev.simulated and dev.info()["simulated"] is True
        assert dev.info()["imitates"] and dev.info()["sources"]
    assert resolve("cpu").simulated is False


def test_arch_from_other_tool_walks_with_shape_inference():
    arch = samples("resnet", 1)[0]
    model = build_onnx(arch)
    del model.graph.value_info[:]  # as a foreign model would come
    dev = resolve("kirin-npu")
    assert dev.latency(model)[0] == pytest.approx(dev.latency(build_onnx(arch))[0])
    assert isinstance(arch, Arch)


def _available_devices() -> list[str]:
    from hwprof.registry import DEVICES

    return [n for n in DEVICES.names() if resolve(n).is_available()]


@pytest.mark.parametrize("device", _available_devices())
def test_device_conformance(device):
    """What every adapter promises (built-in, optional runtime or plugin): the same checks for all."""
    import json

    dev = resolve(device, seed=1)
    assert dev.name == device and dev.kind and isinstance(dev.simulated, bool)
    info = dev.info()
    assert info["simulated"] is dev.simulated and json.dumps(info, default=str)
    json.dumps(dev.recorded_settings())  # settings are recorded with every row
    assert dev.profile_hash() == resolve(device, seed=1).profile_hash()
    block = samples("proxyless", 1)[0].blocks[3]
    session = dev.load(dev.build(block))
    try:
        times = session.run(4)
    finally:
        session.close()
    assert times.shape == (4,) and times.dtype == np.float64 and np.all(times > 0) and np.all(times < 10)
