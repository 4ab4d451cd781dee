"""Attention spaces (vit, hybrid): builders, counts, simulated chips, kernels of torch-exported transformers."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from devices import resolve
from hwprof.arch import Block
from hwprof.build_onnx import build_onnx
from hwprof.build_torch import build_torch, count_torch_params
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.onnx_stats import count_macs, count_params
from hwprof.predictors.data import load_measurements
from hwprof.predictors.kernels import onnx_kernels
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from hwprof.torch_export import export_module
from hwprof.weights import apply_weights
from nas.accuracy.proxies import SynflowProxy
from nas.dimensions import hold_unseen
from nas.searchers import Constraint, create_searcher
from nas.spaces import get_space
from tests.conftest import ATTENTION_SPACES, samples


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("space", ATTENTION_SPACES)
def test_macs_and_params_agree_with_torch_and_the_onnx_graph(space):
    """MACs count attention's Q K^T and A V products: IR == ONNX graph == torch's flop counter."""
    for arch in samples(space, 2, seed=1):
        model = build_onnx(arch)
        onnx.checker.check_model(model)
        net = build_torch(arch).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = net(torch.zeros(arch.input_shape))
        assert tuple(out.shape) == arch.output_shape == (1, 1000)
        assert arch.macs == count_macs(model) == counter.get_total_flops() // 2
        assert arch.params == count_params(model) == count_torch_params(net)


@pytest.mark.parametrize("space", ATTENTION_SPACES)
def test_torch_and_onnx_compute_the_same_function(space):
    arch = samples(space, 1, seed=4)[0]
    net = build_torch(arch).eval()
    with torch.no_grad():  # make LayerNorm/BatchNorm and position embeddings non-trivial
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    model = apply_weights(build_onnx(arch), arch, state)
    x = np.random.default_rng(0).standard_normal(arch.input_shape).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(model, x), ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_every_attention_block_builds_alone_at_its_token_shape():
    arch = next(a for a in samples("hybrid", 20, seed=2) if any(b.op == "transformer" for b in a.blocks))
    vit = samples("vit", 1)[0]
    seen = set()
    for block in (*arch.blocks, *vit.blocks):
        if block.op in seen:
            continue
        seen.add(block.op)
        model = build_onnx(block)
        out = _run(model, np.ones(block.input_shape, np.float32))
        assert out.shape == block.output_shape, block.describe()
    assert {"patchembed", "flatten", "transformer", "tokenhead", "poolmixer"} <= seen


def test_bad_attention_options_are_clear_errors():
    with pytest.raises(HwprofError, match="5 heads do not divide the embedding dimension 192"):
        Block("transformer", 192, 192, 14, groups=5, mid=768, act="gelu")
    with pytest.raises(HwprofError, match="not a multiple of the patch size 16"):
        Block("patchembed", 3, 192, 200, kernel=(16,), stride=16)
    with pytest.raises(HwprofError, match="stride == kernel"):
        Block("patchembed", 3, 192, 224, kernel=(16,), stride=8)


def test_the_tanh_gelu_form_builds_as_torch_exports_it_and_survives_a_saved_space(tmp_path):
    from nas.spaces.reduced import load_reduced_space

    space = get_space("vit", gelu="tanh")
    arch = space.sample(np.random.default_rng(3))
    assert {b.act for b in arch.blocks if b.op == "transformer"} == {"gelu_tanh"}
    ops = {n.op_type for n in build_onnx(arch).graph.node}
    assert "Tanh" in ops and "Erf" not in ops
    net = build_torch(arch).eval()
    assert any(isinstance(m, torch.nn.GELU) and m.approximate == "tanh" for m in net.modules())
    assert space.params == {"gelu": "tanh"} and get_space("vit").params == {}
    reduced, _ = hold_unseen(space, SynflowProxy())
    path = tmp_path / "r.json"
    path.write_text(json.dumps(reduced.to_dict()))
    assert load_reduced_space(str(path)).base.params == {"gelu": "tanh"}
    with pytest.raises(HwprofError, match="unknown GELU form 'fast'") as err:
        get_space("hybrid", gelu="fast")
    assert "erf, tanh" in err.value.hint


def test_a_fixed_resolution_proxy_holds_the_patch_size_it_cannot_judge():
    space, held = hold_unseen(get_space("vit"), SynflowProxy())
    assert {h.variable: h.value for h in held} == {"patch": "16", "resolution": "224"}
    assert "does not reward the finer input sampling" in next(h.reason for h in held if h.variable == "patch")
    assert {a.blocks[0].stride for a in (space.sample(np.random.default_rng(i)) for i in range(5))} == {16}


def test_chips_say_where_attention_ops_fall_back():
    arch = samples("vit", 1)[0]
    model = build_onnx(arch)
    hexagon = resolve("hexagon-dsp").cost_model.op_costs(model)
    kirin = resolve("kirin-npu").cost_model.op_costs(model)
    fell_back = {c.op_type for c in hexagon if c.fallback}
    assert {"Softmax", "LayerNormalization", "Erf"} <= fell_back
    assert not any(c.fallback for c in kirin)
    products = [c for c in kirin if c.op_class == "matmul"]
    assert sum(c.macs for c in products) == sum(layer.macs for layer in arch.layers if layer.kind == "attention")


class PlainViT(torch.nn.Module):
    """A small ViT written in plain torch, as a user would (not hwprof's builder)."""

    def __init__(self, dim: int = 96, depth: int = 2, heads: int = 3, patch: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Conv2d(3, dim, patch, patch)
        layer = torch.nn.TransformerEncoderLayer(dim, heads, 3 * dim, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = torch.nn.Linear(dim, 10)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.encoder(tokens).mean(dim=1))


@pytest.fixture(scope="module")
def vit_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("vit")
    measure_into(Dataset(data), resolve("kirin-npu", seed=0), samples("vit", 40, seed=3), mode="both")
    return data


def test_kernel_rf_from_our_vit_data_reads_a_torch_exported_transformer(vit_data, tmp_path):
    from hwprof.predictors import store
    from tests.conftest import run_cli

    predictor = fit_on("kernel-rf", load_measurements(vit_data))
    exported = export_module(PlainViT(), (1, 3, 128, 128))
    types = {k.type for k in onnx_kernels(exported)}
    assert {"matmul", "softmax", "layernorm", "fc"} <= types
    ours = {k.type for k in onnx_kernels(build_onnx(samples("vit", 1)[0]))}
    assert {"matmul", "softmax", "layernorm", "fc"} <= ours
    predicted = predictor.predict_onnx([exported])[0]
    simulated = resolve("kirin-npu", seed=0).latency(exported)[0] * 1e3
    assert 0.5 * simulated < predicted < 2.0 * simulated
    (tmp_path / "vit.onnx").write_bytes(exported.SerializeToString())
    store.save(predictor, tmp_path / "k.pred")
    out = run_cli("hwprof", "predict", "--predictor", str(tmp_path / "k.pred"), "--model", str(tmp_path / "vit.onnx"),
                  "--json", check=True)
    assert '"predicted_ms"' in out.stdout


def test_sweep_shows_what_each_attention_block_costs_per_chip(tmp_path):
    from hwprof.space_profile import sweep_variable

    space = get_space("hybrid")
    kirin = sweep_variable(space, "kirin-npu", "attention", tmp_path / "k", networks=4)
    hexagon = sweep_variable(space, "hexagon-dsp", "attention", tmp_path / "h", networks=4)
    assert kirin["options"] == [str(k) for k in range(7)] and kirin["median_ratio"][0] == 1.0
    assert all(b >= a - 1e-9 for a, b in zip(kirin["median_ratio"], kirin["median_ratio"][1:]))
    # attention costs relatively more where Softmax/LayerNorm/Erf fall back to the host
    assert hexagon["median_ratio"][-1] > kirin["median_ratio"][-1]
    again = sweep_variable(space, "kirin-npu", "attention", tmp_path / "k", networks=4)
    assert again == kirin  # resumed from what was measured: same numbers


@pytest.mark.parametrize("space", ATTENTION_SPACES)
def test_searchers_search_the_attention_spaces_under_a_target(space, vit_data, tmp_path):
    data = vit_data
    if space != "vit":
        data = tmp_path / space
        measure_into(Dataset(data), resolve("kirin-npu", seed=0), samples(space, 30, seed=5), mode="both")
    predictor = fit_on("lut", load_measurements(data))
    sp = get_space(space)
    rng = np.random.default_rng(0)
    target = float(np.median(predictor.predict_genes(sp, np.array([sp.sample_genes(rng, sp.option_mask())
                                                                    for _ in range(50)]))))

    class ParamScore:
        name, kind, label = "log-params", "proxy", "log-params proxy"

        def score(self, archs):
            return np.log([a.params for a in archs])

    for name in ("evolutionary", "random", "hurricane"):
        result = create_searcher(name).search(sp, predictor, ParamScore(), Constraint(target), budget=24, seed=0)
        assert result.best is not None and result.best.latency_ms <= target, name


def test_shape_plumbing_is_folded_as_runtimes_fold_it():
    """torch's encoder layer (its fused fast path off for export) computes the attention scale from
    x.size(): those nodes, like a transposed weight, are folded at load, so neither the simulator nor
    kernel-rf prices them, and the q/k/v projection reads as a weight product."""
    from hwprof.onnx_shapes import constant_folded

    exported = export_module(PlainViT(heads=4), (1, 3, 64, 64))  # 4 heads: the fast path would run in eval
    _, folded = constant_folded(exported)
    nodes = list(exported.graph.node)
    plumbing = {i for i, n in enumerate(nodes) if n.op_type in ("Shape", "Sqrt", "Cast")}
    assert plumbing and plumbing <= folded
    costs = resolve("kirin-npu").latency(exported)[1]
    assert all(c.time_s == 0 for c in costs if c.op_type in ("Shape", "Sqrt", "Cast"))
    kernel_nodes = {name for k in onnx_kernels(exported) for name in k.nodes}
    assert not any(nodes[i].name in kernel_nodes for i in folded)
