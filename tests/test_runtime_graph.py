"""Graphs users deploy: runtime-true kernels, graph styles, the graph advisor, trained weights."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from devices import resolve
from hwprof.arch import Block
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.graph_rewrites import apply_rewrites, find_rewrites, max_output_difference
from hwprof.graph_styles import build_model
from hwprof.predictors.data import dataset_styles, load_measurements, load_styles
from hwprof.predictors.kernels import FEATURES
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from hwprof.runtime_graph import ONNXRUNTIME, GraphRuntime, graph_kernels, runtime_for, target_kernels
from hwprof.torch_export import export_module
from nas.spaces import get_space
from tests.conftest import run_cli

CPU_ALL = GraphRuntime(ONNXRUNTIME, "CPUExecutionProvider", "all")
MBCONV = Block(op="mbconv", c_in=40, c_out=40, resolution=28, kernel=(5,), stride=1, mid=120, se=True, act="hswish",
               residual=True)


def _one_line_exit_2(proc, expected: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_runtime_kernels_follow_what_onnxruntime_fuses():
    """hwprof's form: activations fuse into the convs. Written-out form: chains and layout conversions remain."""
    fused = graph_kernels(build_model(MBCONV, "hwprof"), CPU_ALL)
    chains = graph_kernels(build_model(MBCONV, "torch-manual"), CPU_ALL)
    fused_types, chain_types = Counter(k.type for k in fused), Counter(k.type for k in chains)
    assert fused_types["pwconv"] + fused_types["dwconv"] == chain_types["pwconv"] + chain_types["dwconv"] == 5
    assert fused_types["dwconv"] == chain_types["dwconv"] == 1
    # h-swish is fused into the convolutions in hwprof's form; written out, each one is 4 elementwise kernels
    assert fused_types["act"] == 0 and chain_types["act"] >= 4 * 2
    # mean(3).mean(2): two reductions of one axis each, not a spatial mean (onnxruntime runs them far slower)
    assert chain_types["reduce-axis"] == 2 and chain_types["reduce"] == 0
    assert fused_types["reduce"] == fused_types["reduce-axis"] == 0 and fused_types["gap"] == 1
    assert chain_types["reorder"] > fused_types["reorder"]
    # timed alone the block converts its input layout and keeps the residual add apart ...
    assert [k.type for k in fused if k.boundary] == ["reorder"]
    add = next(k for k in fused if k.type == "add")
    assert add.features[-1] == 40 * 28 * 28  # it reads two whole tensors: the second is counted
    # ... inside a network (between convolutions) the add fuses into the projection conv
    inside = target_kernels(MBCONV, "hwprof", CPU_ALL, context=True)
    assert not any(k.type == "add" or k.boundary for k in inside)
    assert max(k.features[-1] for k in inside if k.type == "pwconv") >= 40 * 28 * 28  # NCHWc pads channels
    whole_types = Counter(k.type for k in graph_kernels(build_model(
        get_space("ofa").sample(np.random.default_rng(0)), "torch-manual"), CPU_ALL))
    blocks_types = Counter(k.type for b in get_space("ofa").sample(np.random.default_rng(0)).blocks
                           for k in target_kernels(b, "torch-manual", CPU_ALL, context=True))
    assert blocks_types["reorder"] == pytest.approx(whole_types["reorder"], abs=3)
    assert all(blocks_types[t] == whole_types[t] for t in ("pwconv", "dwconv", "act", "reduce", "reduce-axis"))


def test_timm_style_pools_the_se_block_with_one_reduce_mean_and_computes_the_same_function():
    """torch-timm: modules as in ``torch``, SE pooling as x.mean((2, 3)): one ReduceMean, no GlobalAveragePool."""
    from hwprof.build_torch import build_torch

    timm = graph_kernels(build_model(MBCONV, "torch-timm"), CPU_ALL)
    module = graph_kernels(build_model(MBCONV, "torch"), CPU_ALL)
    assert Counter(k.type for k in timm)["reduce"] == 1 and not any(k.type in ("gap", "reduce-axis") for k in timm)
    assert Counter(k.type for k in module)["gap"] == 1 and not any(k.type == "reduce" for k in module)
    reduce = next(k for k in timm if k.type == "reduce")
    assert reduce.features[-1] == 0  # one read of the tensor, no second operand
    x = torch.randn(1, 40, 28, 28)
    nets = {s: build_torch(MBCONV, s).eval() for s in ("module", "timm")}
    nets["timm"].load_state_dict(nets["module"].state_dict())
    with torch.no_grad():
        torch.testing.assert_close(nets["timm"](x), nets["module"](x), rtol=1e-5, atol=1e-5)


class _PlainTorchEncoder(nn.Module):
    """A transformer as users write it: patch conv, torch's own encoder layer, mean pooling."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, 8)
        self.layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True)

    def forward(self, x):
        return self.layer(self.embed(x).flatten(2).transpose(1, 2)).mean(1)


def test_torch_multihead_attention_products_are_read_with_their_real_shapes():
    # torch's exporter moves the heads through Reshape/Transpose/Squeeze/Split chains with
    # symbolic shapes; the products must still be heads x tokens x tokens x head_dim MACs
    torch.manual_seed(0)
    model = export_module(_PlainTorchEncoder().eval(), (1, 3, 56, 56))
    kernels = graph_kernels(model, runtime_for("cpu", {}, False))
    macs = FEATURES.index("macs")
    products = [k for k in kernels if k.type == "matmul"]
    assert len(products) == 2
    assert [k.features[macs] for k in products] == [4 * 49 * 49 * 16] * 2
    projections = sorted(k.features[FEATURES.index("c_out")] for k in kernels if k.type == "fc")
    assert projections == [64, 64, 128, 192]  # out, MLP down, MLP up, fused q/k/v


def test_rules_runtime_for_simulated_and_runtime_graph_for_cpu():
    assert runtime_for("kirin-npu", "{}", simulated=True).kind == "rules"
    assert runtime_for("cpu", json.dumps({"opt_level": "extended"}), simulated=False) == GraphRuntime(
        ONNXRUNTIME, "CPUExecutionProvider", "extended")
    disabled = graph_kernels(build_model(MBCONV, "hwprof"), GraphRuntime(ONNXRUNTIME, opt_level="disable"))
    assert any(k.type == "act" for k in disabled)  # nothing fused at level disable


def test_unloadable_model_is_a_clear_error():
    bad = helper.make_model(helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(HwprofError, match="onnxruntime cannot load or optimize"):
        graph_kernels(bad, CPU_ALL)


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    """The same 4 ofa networks measured in two graph styles into one dataset (simulated kirin-npu)."""
    root = tmp_path_factory.mktemp("styles")
    space, rng = get_space("ofa"), np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(4)]
    for style in ("hwprof", "torch-manual"):
        measure_into(Dataset(root), resolve("kirin-npu", graph_style=style), archs, mode="both")
    return root


def test_graph_style_rows_are_kept_apart(two_styles):
    rows = Dataset(two_styles).read(columns=["settings", "settings_hash", "block_key"])
    assert sorted(json.loads(s).get("graph_style", "hwprof") for s in rows.settings.unique()) == [
        "hwprof", "torch-manual"]
    assert rows.settings_hash.nunique() == 2
    assert dataset_styles(two_styles) == ["hwprof", "torch-manual"]
    with pytest.raises(HwprofError, match="several graph styles"):
        load_measurements(two_styles)
    hw = load_measurements(two_styles, style="hwprof")
    manual = load_measurements(two_styles, style="torch-manual")
    assert hw.graph_style == "hwprof" and manual.graph_style == "torch-manual"
    assert [a.hash for a in hw.archs] == [a.hash for a in manual.archs]
    # on the simulated NPU the written-out activations are slower, as they are on real runtimes
    assert np.all(manual.latency_ms > hw.latency_ms)
    with pytest.raises(HwprofError, match="learns one graph style"):
        fit_on("lut", load_styles([two_styles]))


def test_kernel_rf_fits_several_styles_and_predicts_each(two_styles):
    parts = load_styles([two_styles])
    model = fit_on("kernel-rf", parts)
    assert model.fitted_styles() == ["hwprof", "torch-manual"]
    archs = parts[0].archs
    fast = model.use_style("hwprof").predict(archs)
    slow = model.use_style("torch-manual").predict(archs)
    assert np.all(slow > fast)
    single = fit_on("kernel-rf", parts[0])
    with pytest.raises(HwprofError, match="not 'torch-manual'"):
        single.use_style("torch-manual")


class _Manual(nn.Module):
    """Plain torch with the spellings users write (not hwprof's builder)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 32, 1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.fc1, self.fc2 = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 1)

    def forward(self, x):
        y = self.bn(self.conv(x))
        y = y * nn.functional.relu6(y + 3) / 6
        z = self.dw(y)
        z = z * torch.clamp(z + 3, 0, 6) / 6
        g = z.mean(3, keepdim=True).mean(2, keepdim=True)
        g = nn.functional.relu6(self.fc2(torch.relu(self.fc1(g))) + 3) / 6
        return z * g


def _manual_model(train_mode_bn: bool = False) -> onnx.ModelProto:
    torch.manual_seed(0)
    module = _Manual().eval()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    model = export_module(module, (1, 8, 16, 16))
    return model


def test_rewrites_find_every_spelling_and_keep_outputs():
    model = _manual_model()
    found = Counter(r.kind for r in find_rewrites(model))
    assert found == {"hswish": 2, "hsigmoid": 1, "mean-pool": 1}
    fixed = apply_rewrites(model, find_rewrites(model))
    onnx.checker.check_model(fixed)
    ops = Counter(n.op_type for n in fixed.graph.node)
    assert ops["HardSwish"] == 2 and ops["HardSigmoid"] == 1 and ops["GlobalAveragePool"] == 1
    assert ops["ReduceMean"] == 0 and ops["Div"] == 0
    assert max_output_difference(model, fixed) <= 1e-4


def test_bn_folding_matches_outputs():
    conv_w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    c = [np.random.default_rng(i).uniform(0.5, 1.5, 4).astype(np.float32) for i in range(4)]
    inits = [onnx.numpy_helper.from_array(a, n) for a, n in zip([conv_w, *c], ["w", "s", "b", "m", "v"])]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewrites = find_rewrites(model)
    assert [r.kind for r in rewrites] == ["bn-fold"]
    fixed = apply_rewrites(model, rewrites)
    assert [n.op_type for n in fixed.graph.node] == ["Conv"]
    assert max_output_difference(model, fixed) <= 1e-4


def _hardsigmoid_times_x(alpha: float) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("HardSigmoid", ["x"], ["g"], alpha=alpha, beta=0.5, name="hs"),
         helper.make_node("Mul", ["x", "g"], ["y"], name="mul")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fix_refuses_a_rewrite_that_changes_outputs(tmp_path):
    from hwprof.advise import fix

    good = fix(_hardsigmoid_times_x(1 / 6))
    assert good.applied == {"hswish": 1} and not good.refused and good.max_abs_diff <= 1e-4
    bad = _hardsigmoid_times_x(0.2)  # x * hardsigmoid(x) with another slope is not h-swish
    result = fix(bad)
    assert result.applied == {} and "hswish" in result.refused
    assert [n.op_type for n in result.model.graph.node] == ["HardSigmoid", "Mul"]
    path = tmp_path / "bad.onnx"
    onnx.save(bad, str(path))
    proc = run_cli("hwprof", "advise", str(path), "--device", "kirin-npu", "--fix", str(tmp_path / "out.onnx"),
                   "--json", check=True)
    assert json.loads(proc.stdout)["fix"]["refused"]["hswish"].startswith("1 of 1 chain(s) would change")


def test_advise_cli_on_a_torch_export(tmp_path):
    path, fixed = tmp_path / "manual.onnx", tmp_path / "fixed.onnx"
    onnx.save(_manual_model(), str(path))
    proc = run_cli("hwprof", "advise", str(path), "--device", "cpu", "--fix", str(fixed), "--rounds", "1", "--json",
                   check=True)
    report = json.loads(proc.stdout)
    kinds = {f["kind"]: f for f in report["findings"]}
    assert set(kinds) == {"hswish", "hsigmoid", "mean-pool"}
    assert all(f["nodes_ms"] > 0 for f in kinds.values()) and report["layout_ms"] > 0
    assert report["fix"]["applied"] == {"hswish": 2, "hsigmoid": 1, "mean-pool": 1}
    assert report["fix"]["max_abs_diff"] <= 1e-4 and report["fix"]["before_ms"] > 0
    assert max_output_difference(onnx.load(str(path)), onnx.load(str(fixed))) <= 1e-4


def test_advise_bad_input(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    _one_line_exit_2(run_cli("hwprof", "advise", str(junk), "--device", "cpu"), "is not a valid ONNX model")
    _one_line_exit_2(run_cli("hwprof", "advise", str(tmp_path / "missing.onnx")), "does not exist")


def _trained(arch):
    from hwprof.build_torch import build_torch

    torch.manual_seed(1)
    module = build_torch(arch)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return module.eval()


def test_export_weights_into_hwprof_form(tmp_path):
    import onnxruntime as ort
    from safetensors.torch import save_file

    arch = get_space("ofa").sample(np.random.default_rng(2))
    (tmp_path / "a.json").write_text(arch.to_json())
    module = _trained(arch)
    state = module.state_dict()
    save_file(state, str(tmp_path / "w.safetensors"))
    run_cli("nas", "export", str(tmp_path / "a.json"), "--onnx", str(tmp_path / "a.onnx"), "--weights",
            str(tmp_path / "w.safetensors"), check=True)
    x = np.random.default_rng(0).standard_normal(arch.input_shape).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(got - want)) <= 1e-4
    names = sorted(state)
    # a missing tensor and a wrong shape are each named
    first = next(k for k in names if k.endswith(".weight"))
    save_file({k: v for k, v in state.items() if k != first}, str(tmp_path / "missing.safetensors"))
    _one_line_exit_2(run_cli("nas", "export", str(tmp_path / "a.json"), "--onnx", str(tmp_path / "b.onnx"),
                             "--weights", str(tmp_path / "missing.safetensors")), f"lack tensor '{first}'")
    save_file({**state, first: torch.zeros(3, 3)}, str(tmp_path / "shape.safetensors"))
    _one_line_exit_2(run_cli("nas", "export", str(tmp_path / "a.json"), "--onnx", str(tmp_path / "b.onnx"),
                             "--weights", str(tmp_path / "shape.safetensors")), f"tensor '{first}'")
    assert not (tmp_path / "b.onnx").exists()


def test_measure_refuses_unwritable_out_before_measuring(tmp_path):
    proc = run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "-n", "2",
                   "--out", "/proc/forbidden")
    _one_line_exit_2(proc, "cannot be written")
    _one_line_exit_2(run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "-n", "2",
                             "--graph-style", "keras", "--out", str(tmp_path / "x")), "unknown graph style 'keras'")


@pytest.mark.slow
def test_search_predicts_and_verifies_the_graph_style_shipped(two_styles, tmp_path, monkeypatch):
    from hwprof.predictors import store

    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    both, single = tmp_path / "both.pred", tmp_path / "hwprof.pred"
    store.save(fit_on("kernel-rf", load_styles([two_styles])), both)
    store.save(fit_on("kernel-rf", load_measurements(two_styles, style="hwprof")), single)
    args = ("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--budget", "12", "--latency-ms", "8",
            "--out", str(tmp_path / "s"), "--json")
    summaries = {style: json.loads(run_cli(*args, "--predictor", str(both), "--graph-style", style,
                                           check=True).stdout) for style in ("hwprof", "torch-manual")}
    for style, summary in summaries.items():
        assert summary["graph_style"] == style
        assert abs(summary["best"]["prediction_error"]) < 0.5  # predicted and measured in the same form
    _one_line_exit_2(run_cli(*args, "--predictor", str(single), "--graph-style", "torch-manual"),
                     "fitted on graph style(s) hwprof, not 'torch-manual'")


def test_profiled_blocks_fix_kernel_shares_in_kernel_rf(tmp_path):
    """--per-op profiles blocks too; kernel-rf takes each profiled kernel's time instead of guessing it."""
    from hwprof.protocol import Protocol

    archs = [get_space("ofa").sample(np.random.default_rng(s)) for s in (1, 2)]
    quick = Protocol(warmup=2, min_samples=3, max_samples=5, time_cap_s=0.05)
    measure_into(Dataset(tmp_path), resolve("cpu"), archs, mode="both", protocol=quick, per_op_runs=2)
    data = load_measurements(tmp_path)
    assert data.block_node_ms is not None and set(data.block_node_ms) == set(data.blocks)
    block = next(b for b in data.block_node_ms if b.se)
    runtime = runtime_for(data.device, data.settings, data.simulated)
    kernel_nodes = {n for k in target_kernels(block, data.graph_style, runtime) for n in k.nodes}
    assert kernel_nodes & set(data.block_node_ms[block])  # profiler names are the executed graph's names

    profiled = fit_on("kernel-rf", data, seed=0)
    n_kernels = sum(len(target_kernels(b, data.graph_style, runtime)) for b in data.blocks)
    assert 0.8 * n_kernels <= profiled.profiled_kernels_ <= n_kernels
    assert profiled.provenance_["profiled_kernels"] == profiled.profiled_kernels_
    plain = fit_on("kernel-rf", dataclasses.replace(data, block_node_ms=None), seed=0)
    assert plain.profiled_kernels_ == 0
    for model in (profiled, plain):
        assert np.all(np.isfinite(model.predict(archs))) and np.all(model.predict(archs) > 0)

    # whole graphs (predict_onnx) get their own network term, fitted on the training networks' graphs
    from hwprof.predictors import store

    graphs = [build_model(a, data.graph_style) for a in data.archs]
    assert profiled.graph_overhead_ is not None
    np.testing.assert_allclose(profiled.predict_onnx(graphs), data.latency_ms, rtol=0.01)  # 2 rows: interpolated
    reloaded = store.loads(store.dumps(profiled))
    np.testing.assert_allclose(reloaded.predict_onnx(graphs), profiled.predict_onnx(graphs))
    meta, arrays, models = profiled.get_state()
    arrays.pop("graph_overhead")  # a file fitted before whole-graph terms falls back to the block path's term
    profiled.set_state(meta, arrays, models)
    assert profiled.graph_overhead_ is None and np.all(profiled.predict_onnx(graphs) > 0)


def test_advise_caps_a_predicted_saving_at_what_its_nodes_take():
    """A predictor that says a rewrite saves 10 ms is capped at the rewritten nodes' profiled time."""
    from devices import resolve
    from hwprof.advise import advise

    model = _manual_model()

    class Overeager:  # predicts 10 ms for the model as given and 0 ms for any rewrite of it
        def predict_onnx(self, models):
            return np.array([10.0 if m is model else 0.0 for m in models])

    findings = advise(model, resolve("cpu"), Overeager()).findings
    assert findings and all(0 < f.predicted_saving_ms == f.nodes_ms for f in findings)
