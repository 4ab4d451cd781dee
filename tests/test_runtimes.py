"""The optional deployment runtimes (LiteRT/XNNPACK, OpenVINO) and int8 on every real runtime."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from conftest import run_cli, samples
from devices import resolve
from hwprof.build_onnx import build_onnx
from hwprof.errors import HwprofError
from hwprof.graph_styles import build_model
from devices.targets import split_target

litert = pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed")
openvino = pytest.importorskip("openvino", reason="the openvino extra is not installed")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from hwprof.build_tflite import TfliteModel, onnx_to_tflite, tflite_stats  # noqa: E402
from hwprof.quantization import is_quantized  # noqa: E402


def _ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _litert(content: bytes, x_nhwc: np.ndarray) -> np.ndarray:
    interp = Interpreter(model_content=content, num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x_nhwc)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


@pytest.mark.parametrize("space,style", [("ofa", "hwprof"), ("proxyless", "hwprof"), ("resnet", "hwprof"),
                                         ("hurricane", "hwprof"), ("ofa", "torch-manual")])
def test_tflite_lowering_matches_onnxruntime(space, style):
    """Layouts, folding, padding, shuffles and pools: the LiteRT model computes what the ONNX model does."""
    arch = samples(space, 1, seed=3)[0]
    model = build_model(arch, style, "float32")
    tfl = onnx_to_tflite(model, same_padding=False)
    x = np.random.default_rng(1).standard_normal(arch.input_shape).astype(np.float32)
    ref = _ort(model, x)
    out = _litert(tfl.content, np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))))
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    stats = tflite_stats(tfl.content)
    assert stats["macs"] == arch.macs and stats["input_shape"] == (1, arch.resolution, arch.resolution, 3)


def test_tflite_default_padding_keeps_shapes_and_fuses():
    """The default (converter-like) model uses SAME padding, fused ReLU/ReLU6 and no BatchNorm."""
    arch = samples("proxyless", 1)[0]
    tfl = onnx_to_tflite(build_onnx(arch))
    interp = Interpreter(model_content=tfl.content)
    ops = {o["op_name"] for o in interp._get_ops_details()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= ops
    assert not ops & {"PAD", "RELU6", "MUL"}  # BN folded, activations fused, SAME padding


def test_int8_litert_model_is_full_integer_and_tracks_float():
    arch = samples("proxyless", 1, seed=2)[0]
    model = build_onnx(arch)
    q = onnx_to_tflite(model, "int8")
    assert q.dtype == "int8" and "per output channel" in q.meta["quantization"]
    assert q.meta["calibration"]["seed"] == 0
    interp = Interpreter(model_content=q.content)
    interp.allocate_tensors()
    types = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    assert "float32" not in types  # weights, activations, input and output are integers
    detail = interp.get_input_details()[0]
    scale, zero = detail["quantization"]
    x = np.random.default_rng(5).standard_normal(arch.input_shape).astype(np.float32)
    xq = np.clip(np.round(np.transpose(x, (0, 2, 3, 1)) / scale) + zero, -128, 127).astype(np.int8)
    interp.set_tensor(detail["index"], xq)
    interp.invoke()
    out_detail = interp.get_output_details()[0]
    o_scale, o_zero = out_detail["quantization"]
    deq = (interp.get_tensor(out_detail["index"]).astype(np.float32) - o_zero) * o_scale
    ref = _ort(model, x)
    assert np.corrcoef(deq.ravel(), ref.ravel())[0, 1] > 0.95


def test_int8_onnx_is_qdq_and_every_setting_is_recorded():
    cpu8 = resolve("cpu:int8")
    block = samples("proxyless", 1)[0].blocks[2]
    built = cpu8.build(block)
    assert is_quantized(built)
    assert cpu8.run(built, 3).shape == (3,)
    settings = cpu8.recorded_settings()
    assert settings["dtype"] == "int8" and settings["calibration"]["inputs"] == 8 and "QDQ" in settings["quantization"]
    assert resolve("cpu").settings_hash() != cpu8.settings_hash()  # int8 rows never mix with float32 rows
    assert resolve("openvino-cpu:int8").settings()["dtype"] == "int8"
    assert split_target("litert-cpu:int8") == ("litert-cpu", "int8") and split_target("cpu") == ("cpu", None)
    with pytest.raises(HwprofError, match="does not run float16"):
        resolve("litert-cpu", dtype="float16")
    with pytest.raises(HwprofError, match="no dtype setting"):
        resolve("kirin-npu:int8")


def _folded(model):
    from hwprof.graph_rewrites import apply_rewrites, find_rewrites

    folds = [r for r in find_rewrites(model) if r.kind == "bn-fold"]
    return apply_rewrites(model, folds) if folds else model


def _nodes(model):
    return sorted((n.op_type, tuple(n.input), tuple(n.output), tuple((a.name, a.i) for a in n.attribute))
                  for n in model.graph.node)


@pytest.mark.parametrize("space", ["ofa", "proxyless", "resnet", "hurricane", "fbnet", "s3nas"])
def test_fast_qdq_writes_what_onnxruntimes_quantizer_writes(space):
    """Node for node and value for value, on every kind of block of the convolutional spaces and a whole network."""
    from devices.base import model_input
    from hwprof import qdq
    from hwprof.quantization import _quantize_with_onnxruntime, quantize_qdq
    from onnx import numpy_helper
    from nas.spaces import get_space

    arch = get_space(space).sample(np.random.default_rng(3))
    kinds = {}
    for block in arch.blocks:
        kinds.setdefault((block.op, block.se, block.act, block.stride, block.c_in == block.c_out), block)
    targets = list(kinds.values()) + ([samples("proxyless:resolution=128", 1)[0]] if space == "proxyless" else [])
    for target in targets:
        model = _folded(build_onnx(target))
        assert qdq.supports(model), target
        name, shape, _ = model_input(model)
        ours, ref = quantize_qdq(build_onnx(target)), _quantize_with_onnxruntime(model, name, shape)
        assert _nodes(ours) == _nodes(ref), target
        mine = {t.name: numpy_helper.to_array(t) for t in ours.graph.initializer}
        theirs = {t.name: numpy_helper.to_array(t) for t in ref.graph.initializer}
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert mine[key].dtype == value.dtype and mine[key].shape == value.shape, key
            if value.dtype.kind == "f":
                np.testing.assert_allclose(mine[key], value, rtol=1e-4, err_msg=key)
            else:
                assert np.abs(mine[key].astype(np.int64) - value.astype(np.int64)).max(initial=0) <= 1, key
    vit_block = samples("vit", 1)[0].blocks[1]
    assert not qdq.supports(_folded(build_onnx(vit_block)))  # other graphs go through onnxruntime's quantizer


# one float and one int8 setting of each runtime (the others share every code path but the model build)
@pytest.mark.parametrize("device", ["litert-cpu:int8", "openvino-cpu"])
def test_new_devices_measure_with_drift_and_resume(tmp_path, device):
    """measure → rows with the device's settings and reference timings; a rerun resumes (skips all)."""
    out = tmp_path / "d"
    args = ["hwprof", "measure", "--device", device, "--space", "proxyless", "--samples", "1", "--mode", "both",
            "--min-time", "0.01", "--time-cap", "0.2", "--drift-every", "0.2", "--out", str(out), "--json"]
    first = run_cli(*args, check=True)
    summary = json.loads(first.stdout)
    assert summary["measured"] > 1 and summary["block_rows"] > 0
    rows = pd.concat(pd.read_parquet(p) for p in out.glob("*.parquet"))
    name, dtype = split_target(device)
    assert set(rows["device"]) == {name} and rows["ref_ms"].notna().all()
    assert {json.loads(s)["dtype"] for s in rows["settings"]} == {dtype or "float32"}
    again = json.loads(run_cli(*args, check=True).stdout)
    assert again["measured"] == 0 and again["skipped_existing"] == summary["measured"]


def test_openvino_per_op_names_layers(tmp_path):
    dev = resolve("openvino-cpu")
    model = build_onnx(samples("ofa", 1)[0])
    names = {n.name for n in model.graph.node} | {o for n in model.graph.node for o in n.output}
    times = dev.op_times(model, runs=3)
    unmatched = [t for t in times if t.node not in names]
    assert times and all(t.op == "Reorder" for t in unmatched)  # only OpenVINO's own layout conversions


def test_bring_your_own_tflite(tmp_path):
    arch = samples("proxyless", 1)[0]
    path = tmp_path / "net.tflite"
    path.write_bytes(onnx_to_tflite(build_onnx(arch)).content)
    out = tmp_path / "byom"
    run_cli("hwprof", "measure", "--device", "litert-cpu", "--model", str(path), "--min-time", "0.01",
            "--time-cap", "0.2", "--out", str(out), check=True)
    rows = pd.concat(pd.read_parquet(p) for p in out.glob("*.parquet"))
    assert list(rows["space"]) == ["tflite"] and rows["macs"].iloc[0] == arch.macs
    assert TfliteModel.from_file(path).dtype == "float32"
    wrong = run_cli("hwprof", "measure", "--device", "cpu", "--model", str(path), "--out", str(tmp_path / "x"))
    assert wrong.returncode == 2 and "litert-cpu" in wrong.stderr and "Traceback" not in wrong.stderr
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    broken = run_cli("hwprof", "measure", "--device", "litert-cpu", "--model", str(bad), "--out", str(tmp_path / "y"))
    assert broken.returncode == 2 and "TFL3" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1


def test_missing_extra_is_one_line_with_the_install(monkeypatch):
    import devices.optional

    monkeypatch.setattr(devices.optional, "package_version", lambda distribution: None)
    for name, extra in (("litert-cpu", "litert"), ("openvino-cpu", "openvino")):
        dev = resolve(name)
        assert not dev.is_available() and f"hwprof[{extra}]" in dev.unavailable_reason()
        with pytest.raises(HwprofError) as info:
            dev.require_available()
        assert f"pip install 'hwprof[{extra}]'" in str(info.value.hint)


def test_devices_lists_the_runtimes_as_plugins():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="hwprof.devices")}
    assert {"litert-cpu", "openvino-cpu"} <= names
    listing = run_cli("hwprof", "devices", "--json", check=True)
    rows = {d["name"]: d for d in json.loads(listing.stdout)}
    assert rows["litert-cpu"]["available"] and not rows["litert-cpu"]["simulated"]


def test_example_device_plugin_installs_and_measures(tmp_path):
    """The out-of-tree example under examples/ registers by entry point and measures through the CLI."""
    import os
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    source = tmp_path / "src"
    shutil.copytree(REPO / "examples" / "hwprof-device-example", source)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}
    exe = os.path.join(os.path.dirname(sys.executable), "hwprof")
    listing = json.loads(subprocess.run([exe, "devices", "--json"], env=env, capture_output=True, text=True,
                                        check=True).stdout)
    plugin = next(d for d in listing if d["name"] == "ort-unoptimized")
    assert plugin["available"] and not plugin["simulated"]
    out = tmp_path / "runs"
    measured = subprocess.run([exe, "measure", "--device", "ort-unoptimized", "--space", "proxyless", "--samples", "1",
                               "--mode", "e2e", "--min-time", "0.01", "--time-cap", "0.2", "--out", str(out), "--json"],
                              env=env, capture_output=True, text=True)
    assert measured.returncode == 0, measured.stderr
    rows = pd.concat(pd.read_parquet(p) for p in out.glob("*.parquet"))
    assert list(rows["device"]) == ["ort-unoptimized"]
    assert json.loads(rows["settings"].iloc[0]) == {"threads": 1, "graph_optimization": "disabled"}


def _onnx_file(path, nodes, inputs, outputs):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("case", ["two-inputs", "no-rule", "dynamic"])
def test_litert_bad_models_are_one_line_and_write_nothing(tmp_path, case):
    from onnx import helper

    if case == "two-inputs":
        model = _onnx_file(tmp_path / "m.onnx", [helper.make_node("Add", ["a", "b"], ["y"])],
                           [("a", [1, 4]), ("b", [1, 4])], [("y", [1, 4])])
        expect = "2 inputs"
    elif case == "no-rule":
        model = _onnx_file(tmp_path / "m.onnx", [helper.make_node("Erf", ["a"], ["y"])], [("a", [1, 4])],
                           [("y", [1, 4])])
        expect = "no rule for ONNX op 'Erf'"
    else:
        model = _onnx_file(tmp_path / "m.onnx", [helper.make_node("Relu", ["a"], ["y"])], [("a", ["n", 4])],
                           [("y", ["n", 4])])
        expect = "dynamic"
    out = tmp_path / "out"
    proc = run_cli("hwprof", "measure", "--device", "litert-cpu", "--model", str(model), "--out", str(out))
    assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
