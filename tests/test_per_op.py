"""Per-layer breakdown (--per-op) and `hwprof report`."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, samples
from devices.base import NodeTime
from devices import resolve
from hwprof.build_onnx import build_onnx
from hwprof.errors import HwprofError
from hwprof.per_op import breakdown, group_by_kernel, named
from hwprof.predictors.kernels import onnx_kernels


@pytest.mark.parametrize("device", ["kirin-npu", "hexagon-dsp"])
def test_simulated_breakdown_accounts_for_every_op(device):
    dev = resolve(device)
    model = build_onnx(samples("ofa", 1, seed=2)[0])
    result = breakdown(dev, model)
    ops = dev.latency(named(model))[1]
    assert result["sum_ms"] == pytest.approx(sum(c.time_s for c in ops) * 1e3)
    names = [k["name"] for k in result["kernels"]]
    assert names[: len(onnx_kernels(model))] == [k.name for k in onnx_kernels(model)]
    assert "simulator" in result["source"]


def test_hswish_fallback_shows_on_the_dsp_breakdown():
    arch = next(a for a in samples("ofa", 20, seed=1) if any(b.act == "hswish" for b in a.blocks[1:]))
    model = named(build_onnx(arch))
    dev = resolve("hexagon-dsp")
    fallback = {t.node for t in dev.op_times(model) if "CPU fallback" in t.op}
    assert fallback  # the DSP runs h-swish on the CPU
    hosting = [k for k in breakdown(dev, model)["kernels"] if fallback & set(k["nodes"])]
    assert hosting and all(k["ms"] > 0 for k in hosting)


def test_runtime_renamed_and_inserted_nodes_are_attributed():
    model = named(build_onnx(samples("ofa", 1, seed=2)[0]))
    kernels = onnx_kernels(model)
    conv = kernels[0]
    times = [NodeTime(conv.nodes[0], "Conv", 1.0),          # as named in the graph
             NodeTime(conv.nodes[1], "BatchNormalization", 0.5),
             NodeTime("b1.dw_nchwc", "Conv", 2.0),          # onnxruntime: output tensor name + layout suffix
             NodeTime("ReorderInput_token_7", "ReorderInput", 0.25),
             NodeTime("ReorderOutput", "ReorderOutput", 0.25),
             NodeTime(f"{kernels[-1].nodes[0]}/MatMulAddFusion", "Gemm", 0.125)]  # fused: first node + fusion
    grouped = {k.name: k for k in group_by_kernel(model, times)}
    assert grouped[kernels[-1].name].ms == pytest.approx(0.125)
    assert grouped[conv.name].ms == pytest.approx(1.5)
    assert grouped["b1.dw/Conv"].ms == pytest.approx(2.0)
    runtime = grouped["runtime: layout conversion"]
    assert runtime.type == "runtime" and runtime.ms == pytest.approx(0.5) and len(runtime.nodes) == 2
    assert sum(k.ms for k in grouped.values()) == pytest.approx(sum(t.ms for t in times))


def test_cpu_profiler_breakdown_matches_the_timed_latency():
    dev = resolve("cpu")
    model = build_onnx(samples("ofa", 1, seed=6)[0])
    result = breakdown(dev, model, runs=10)
    assert result["source"] == "onnxruntime profiler"
    convs = [k for k in result["kernels"] if k["type"] in ("conv", "pwconv", "dwconv")]
    assert convs and all(k["ms"] > 0 for k in convs)  # every conv was found in the profile
    latency = float(min(dev.run(model, 15))) * 1e3  # the least disturbed run: the machine may be busy
    assert 0.5 * latency < result["sum_ms"] < 1.5 * latency


def test_device_without_breakdown_says_so():
    from tests.test_drift import DriftingDevice

    with pytest.raises(HwprofError, match="cannot break latency down"):
        DriftingDevice().op_times(build_onnx(samples("ofa", 1)[0]))


def test_measure_per_op_then_report_from_the_cli(tmp_path):
    out = tmp_path / "run"
    run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "3", "--mode", "e2e",
            "--per-op", "--out", str(out), "--json", check=True)
    png = tmp_path / "layers.png"
    proc = run_cli("hwprof", "report", str(out), "--top", "4", "--plot", str(png), check=True)
    assert "SIMULATED" in proc.stdout and "by kernel type" in proc.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
    report = json.loads(run_cli("hwprof", "report", str(out), "--top", "4", "--json", check=True).stdout)
    assert report["networks"] == 3
    first = report["shown"][0]
    ms = [k["ms"] for k in first["top"]]
    assert ms == sorted(ms, reverse=True) and len(ms) == 4 and first["simulated"]
    one = run_cli("hwprof", "report", str(out), "--arch", first["arch_hash"][:6], "--json", check=True)
    assert json.loads(one.stdout)["networks"] == 1


def test_report_bad_inputs(tmp_path):
    plain = tmp_path / "plain"
    run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "1", "--mode", "e2e",
            "--out", str(plain), check=True)
    for args, words in (((str(tmp_path / "missing"),), "does not exist"),
                        ((str(plain),), "no per-layer breakdowns"),):
        proc = run_cli("hwprof", "report", *args)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "1", "--mode", "e2e",
            "--per-op", "--out", str(plain), "--seed", "3", check=True)
    proc = run_cli("hwprof", "report", str(plain), "--arch", "zzzz")
    assert proc.returncode == 2 and "matches" in proc.stderr
